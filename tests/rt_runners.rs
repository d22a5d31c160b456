//! Bursts of plain tasks with pauses between them: runners go idle, linger,
//! pick up new work or give their thread back, and no task is ever lost or
//! run twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustyray::prelude::*;

static RUNS: AtomicU64 = AtomicU64::new(0);

#[rustyray::remote]
fn spin(micros: u64, value: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    let until = std::time::Instant::now() + Duration::from_micros(micros);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_with_pauses_run_every_task_once() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let mut seed = 0x1234_5678u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut expected_runs = 0;
    rt.scope(async {
        for round in 0..60u64 {
            let size = 1 + next() % 300;
            let micros = next() % 60;
            let refs: Vec<ObjectRef<u64>> = (0..size).map(|i| spin::remote(micros, round * 1000 + i)).collect();
            expected_runs += size;
            let values = tokio::time::timeout(Duration::from_secs(30), rustyray::get_all(&refs))
                .await
                .unwrap_or_else(|_| panic!("round {round} ({size} tasks of {micros} us) never finished"))
                .unwrap();
            assert_eq!(values, (0..size).map(|i| round * 1000 + i).collect::<Vec<_>>());
            // Pauses around the runners' linger: some find their runner still
            // waiting, some find it gone.
            tokio::time::sleep(Duration::from_micros(next() % 4000)).await;
        }
    })
    .await;
    rt.wait_idle().await;
    assert_eq!(RUNS.load(Ordering::SeqCst), expected_runs, "each task ran once");
    let stats = rt.stats();
    assert_eq!(stats.succeeded, expected_runs);
    assert_eq!(rt.load().0, 2.0, "every CPU was given back");
}
