"""Celery with Redis: N trivial jobs enqueued, then one worker runs them all.

Run by `run.sh`; prints `celery enqueue <jobs/s>` and `celery end_to_end <jobs/s>`.
"""
import os
import subprocess
import sys
import time

import redis
from celery import Celery

N = int(os.environ.get("N", "10000"))
URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("celery_bench", broker=URL)
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False
counter = redis.Redis.from_url(URL)


@app.task(name="noop")
def noop(i):
    counter.incr("rustyray-bench-done")
    return i


def main():
    r = redis.Redis.from_url(URL)
    r.flushdb()
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for i in range(N):
            noop.apply_async((i,), producer=producer)
    print(f"celery enqueue {N / (time.perf_counter() - start):.0f}", flush=True)
    start = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "--concurrency", str(os.cpu_count() or 2),
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while int(r.get("rustyray-bench-done") or 0) < N:
            if worker.poll() is not None:
                sys.exit("the celery worker exited early")
            time.sleep(0.02)
        print(f"celery end_to_end {N / (time.perf_counter() - start):.0f}", flush=True)
    finally:
        worker.terminate()
        worker.wait()
        r.flushdb()


if __name__ == "__main__":
    main()
