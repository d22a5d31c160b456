"""procrastinate on PostgreSQL: N trivial jobs deferred in one batch, then one
worker runs them all.

Run by `run.sh`; prints `procrastinate enqueue <jobs/s>` and
`procrastinate end_to_end <jobs/s>`.
"""
import os
import subprocess
import sys
import time

import procrastinate
import psycopg

N = int(os.environ.get("N", "10000"))
URL = os.environ["PROCRASTINATE_URL"]

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=URL))


@app.task(name="noop", queue="bench")
def noop(i):
    return i


def succeeded():
    with psycopg.connect(URL) as conn:
        return conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]


def main():
    with app.open():
        start = time.perf_counter()
        noop.batch_defer(*({"i": i} for i in range(N)))
        print(f"procrastinate enqueue {N / (time.perf_counter() - start):.0f}", flush=True)
    start = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "procrastinate", "--app", "procrastinate_bench.app", "worker", "--concurrency", "64",
         "--queues", "bench"],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while succeeded() < N:
            if worker.poll() is not None:
                sys.exit("the procrastinate worker exited early")
            time.sleep(0.02)
        print(f"procrastinate end_to_end {N / (time.perf_counter() - start):.0f}", flush=True)
    finally:
        worker.terminate()
        worker.wait()


if __name__ == "__main__":
    main()
