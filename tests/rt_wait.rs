//! `wait` under racing completions: refs that become ready while `wait` is
//! looking at them are counted once, so it never waits for what already happened.

use std::time::Duration;

use rustyray::prelude::*;

#[rustyray::remote]
async fn small_value() -> u64 {
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_all_of_many_racing_tasks_returns() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        for _ in 0..200 {
            let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| small_value::remote()).collect();
            let (ready, pending) = tokio::time::timeout(Duration::from_secs(30), rustyray::wait(&refs, 1000, None))
                .await
                .expect("wait returned");
            assert_eq!((ready.len(), pending.len()), (1000, 0));
        }
    })
    .await;
}
