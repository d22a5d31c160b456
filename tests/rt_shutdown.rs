//! However a runtime goes away (an explicit shutdown, its handles dropped,
//! or the tokio runtime beneath it dropped without a shutdown), every
//! unfinished object fails with `RuntimeShutdown`: nobody waits forever.
//! Each test builds its tokio runtime by hand, so it can drop it.

use std::time::Duration;

use rustyray::prelude::*;

#[rustyray::remote]
async fn never_ends() -> i64 {
    std::future::pending::<()>().await;
    0
}

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
async fn add_async(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::actor]
#[derive(Default)]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn add(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn runtime_on(tokio: &tokio::runtime::Runtime) -> Runtime {
    Runtime::builder().num_cpus(2).tokio_handle(tokio.handle().clone()).build().unwrap()
}

/// A graph that cannot finish: a task that never ends, and a plain task, an
/// async task and an actor call waiting (directly or not) for it. The last
/// ones are submitted just before the caller takes the runtime away, so
/// some may still be on their way to the manager.
fn pending_graph(rt: &Runtime) -> (Vec<ObjectRef<i64>>, ActorHandle<Counter>) {
    let _entered = rt.enter();
    let never = never_ends::remote();
    let plain = add::remote(&never, 1);
    let counter = Counter::remote();
    let call = counter.add(&plain);
    let after = add_async::remote(&call, 1);
    (vec![never, plain, call, after], counter)
}

/// Every ref fails with `RuntimeShutdown`, read by a blocking wait and by a
/// `get` on a tokio runtime of its own. The timeouts only keep a hang from
/// stalling the test run.
fn assert_all_shut_down(refs: &[ObjectRef<i64>]) {
    for r in refs {
        let got = r.get_blocking_timeout(Duration::from_secs(30));
        assert!(matches!(got, Err(Error::RuntimeShutdown)), "get_blocking_timeout gave {got:?}");
    }
    let other = current_thread();
    for r in refs {
        let got = other.block_on(async { tokio::time::timeout(Duration::from_secs(30), r.get()).await });
        assert!(matches!(got, Ok(Err(Error::RuntimeShutdown))), "get gave {got:?}");
    }
}

#[test]
fn an_explicit_shutdown_fails_unfinished_work() {
    let tokio = multi_thread();
    let rt = runtime_on(&tokio);
    let (refs, _counter) = pending_graph(&rt);
    tokio.block_on(rt.shutdown());
    assert!(rt.is_shut_down());
    assert_all_shut_down(&refs);
    drop(tokio);
}

#[test]
fn dropping_the_tokio_runtime_with_the_handle_kept_fails_unfinished_work() {
    let tokio = multi_thread();
    let rt = runtime_on(&tokio);
    let (refs, _counter) = pending_graph(&rt);
    drop(tokio);
    assert!(rt.is_shut_down());
    assert_all_shut_down(&refs);
    // Later work fails the same way.
    let later = rt.scope_blocking_add();
    assert!(matches!(later.get_blocking_timeout(Duration::from_secs(30)), Err(Error::RuntimeShutdown)));
}

#[test]
fn dropping_the_tokio_runtime_of_a_current_thread_runtime_fails_unfinished_work() {
    let tokio = current_thread();
    let rt = runtime_on(&tokio);
    let (refs, _counter) = pending_graph(&rt);
    // Let the manager see some of it first.
    tokio.block_on(tokio::task::yield_now());
    drop(tokio);
    assert!(rt.is_shut_down());
    assert_all_shut_down(&refs);
}

#[test]
fn dropping_the_last_handle_then_the_tokio_runtime_fails_unfinished_work() {
    let tokio = multi_thread();
    let rt = runtime_on(&tokio);
    let (refs, counter) = pending_graph(&rt);
    drop(rt);
    drop(counter);
    drop(tokio);
    assert_all_shut_down(&refs);
}

/// Submits a task in `self`, outside any tokio runtime.
trait ScopeBlocking {
    fn scope_blocking_add(&self) -> ObjectRef<i64>;
}

impl ScopeBlocking for Runtime {
    fn scope_blocking_add(&self) -> ObjectRef<i64> {
        let _entered = self.enter();
        add::remote(1, 2)
    }
}
