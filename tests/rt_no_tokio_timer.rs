//! A tokio runtime built without its timer (no `enable_time`) is enough:
//! the runtime builds quietly (no panic, caught or not) and its deadlines
//! (task timeouts, retry backoff, `wait`'s timeout, actors' idle linger)
//! run on its own timer. One test alone in its process, as it watches
//! every panic of the process.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use rustyray::prelude::*;

static PANICS: AtomicUsize = AtomicUsize::new(0);
static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[rustyray::remote]
async fn never_ends() -> u32 {
    std::future::pending::<()>().await;
    0
}

#[rustyray::remote]
async fn fails_twice() -> Result<u32, String> {
    let attempt = ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt < 3 { Err(format!("attempt {attempt} fails")) } else { Ok(attempt) }
}

#[rustyray::actor]
#[derive(Default)]
pub struct Counter {
    n: u32,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn incr(&mut self) -> u32 {
        self.n += 1;
        self.n
    }
}

#[test]
fn a_tokio_runtime_without_a_timer_builds_quietly_and_deadlines_work() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let rt = Runtime::builder().num_cpus(2).tokio_handle(tokio.handle().clone()).build();
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "building panicked (even if the panic was caught)");
    let rt = rt.expect("a runtime without tokio's timer is enough");
    let scoped = rt.clone();
    let checks = async move {
        scoped
            .scope(async {
                let timed = never_ends::options().timeout(Duration::from_millis(10)).remote();
                assert!(matches!(timed.get().await, Err(Error::TimedOut { .. })), "the timeout fired");
                let retried = fails_twice::options()
                    .max_retries(2)
                    .backoff(Duration::from_millis(1), Duration::from_millis(2))
                    .remote();
                assert_eq!(retried.get().await.unwrap(), 3, "retried after its backoff");
                let pending = never_ends::remote();
                let (ready, not_ready) = rustyray::wait([&pending], 1, Some(Duration::from_millis(10))).await;
                assert_eq!((ready.len(), not_ready.len()), (0, 1), "wait gave up at its timeout");
                rustyray::cancel(&pending);
                let counter = Counter::remote();
                for expected in 1..=3 {
                    assert_eq!(counter.incr().get().await.unwrap(), expected);
                }
            })
            .await
    };
    // The guard uses tokio's timer, of the test's own runtime, which has one.
    let guard = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let handle = tokio.handle().clone();
    guard
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), handle.spawn(checks)).await })
        .expect("the checks finished")
        .expect("the checks passed");
    guard.block_on(rt.shutdown());
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}
