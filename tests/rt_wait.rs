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

#[rustyray::remote]
async fn never_ready() -> u64 {
    std::future::pending::<()>().await;
    0
}

#[test]
fn wait_with_a_timeout_works_when_polled_outside_any_tokio_runtime() {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rt = Runtime::builder().num_cpus(2).tokio_handle(tokio.handle().clone()).build().unwrap();
    let (done, pending) = {
        let _entered = rt.enter();
        (rt.put(1u64), never_ready::remote())
    };
    // A plain executor on a plain thread: no tokio runtime, no RustyRay scope.
    let (ready, not_ready) =
        futures::executor::block_on(rustyray::wait([&done, &pending], 2, Some(Duration::from_millis(10))));
    assert_eq!(ready, vec![done.clone()]);
    assert_eq!(not_ready, vec![pending.clone()]);
    // And with nothing to wait for, it returns at once.
    let (ready, _) = futures::executor::block_on(rustyray::wait([&done], 1, Some(Duration::from_secs(3600))));
    assert_eq!(ready, vec![done]);
    rustyray::cancel(&pending);
    tokio.block_on(rt.shutdown());
}
