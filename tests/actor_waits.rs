//! Plain actor methods that wait: a sync method may `get_blocking` on any
//! ref (a plain task, an async task, another actor's call, with or without a
//! timeout), nested to any depth, like a plain task body; the actor lives on,
//! and the CPUs it holds are given back while it waits.

use std::time::Duration;

use rustyray::prelude::*;

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
async fn add_async(a: i64, b: i64) -> i64 {
    tokio::task::yield_now().await;
    a + b
}

#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new(start: i64) -> Self {
        Counter { n: start }
    }

    pub fn incr(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }

    /// Waits, inside its own call, for a plain task.
    pub fn incr_by_sum(&mut self, a: i64, b: i64) -> rustyray::Result<i64> {
        self.n += add::remote(a, b).get_blocking()?;
        Ok(self.n)
    }
}

#[rustyray::actor]
#[derive(Default)]
pub struct Waiter {
    calls: u64,
}

#[rustyray::actor]
impl Waiter {
    pub fn new() -> Self {
        Waiter { calls: 0 }
    }

    pub fn on_plain_task(&mut self) -> rustyray::Result<i64> {
        self.calls += 1;
        add::remote(1, 2).get_blocking()
    }

    pub fn on_async_task(&mut self) -> rustyray::Result<i64> {
        self.calls += 1;
        add_async::remote(3, 4).get_blocking()
    }

    pub fn on_actor_call(&mut self, counter: ActorHandle<Counter>) -> rustyray::Result<i64> {
        self.calls += 1;
        counter.incr(5).get_blocking()
    }

    pub fn with_timeout(&mut self) -> rustyray::Result<i64> {
        self.calls += 1;
        add::remote(6, 7).get_blocking_timeout(Duration::from_secs(30))
    }

    /// Waits for a task that calls another actor whose method waits too.
    pub fn nested(&mut self, counter: ActorHandle<Counter>) -> rustyray::Result<i64> {
        self.calls += 1;
        through_actor::remote(counter, 10, 20).get_blocking()
    }

    /// Waits for an async task that needs a whole CPU of its own.
    pub fn on_cpu_task(&mut self) -> rustyray::Result<i64> {
        self.calls += 1;
        add_async::options().num_cpus(1.0).remote(8, 9).get_blocking()
    }

    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Keeps the actor's thread busy for `ms`.
    pub fn busy(&mut self, ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }

    /// A call that ends at once.
    pub fn produce(&mut self) -> i64 {
        21
    }

    /// [`gather`](Self::gather), awaiting the refs in an async call.
    pub async fn gather_async(&mut self, refs: Vec<ObjectRef<i64>>) -> rustyray::Result<i64> {
        let mut sum = 0;
        for r in refs {
            sum += r.get().await?;
        }
        Ok(sum)
    }

    /// Waits for refs handed in whole (not as arguments the call waits for).
    pub fn gather(&mut self, refs: Vec<ObjectRef<i64>>) -> rustyray::Result<i64> {
        let mut sum = 0;
        for r in refs {
            sum += r.get_blocking()?;
        }
        Ok(sum)
    }
}

#[rustyray::remote]
fn double(x: i64) -> i64 {
    2 * x
}

/// A plain task that waits on an actor call which itself waits on a task.
#[rustyray::remote]
fn through_actor(counter: ActorHandle<Counter>, a: i64, b: i64) -> rustyray::Result<i64> {
    counter.incr_by_sum(a, b).get_blocking()
}

/// Awaits `work`, failing the test (rather than hanging the run) if it never
/// ends; the runtime is shut down first, so that no thread stays blocked.
async fn finishes<T>(rt: &Runtime, work: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), work).await {
        Ok(done) => done,
        Err(_) => {
            rt.shutdown().await;
            panic!("the calls did not finish");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_method_waits_on_tasks_actor_calls_and_timeouts() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let waiter = Waiter::remote();
        let counter = Counter::remote(0);
        assert_eq!(finishes(&rt, waiter.on_plain_task().get()).await.unwrap(), 3, "a plain task");
        assert_eq!(finishes(&rt, waiter.on_async_task().get()).await.unwrap(), 7, "an async task");
        assert_eq!(finishes(&rt, waiter.on_actor_call(counter.clone()).get()).await.unwrap(), 5, "an actor call");
        assert_eq!(finishes(&rt, waiter.with_timeout().get()).await.unwrap(), 13, "a wait with a timeout");
        // The actor lived through all of it, on one state.
        assert_eq!(finishes(&rt, waiter.calls().get()).await.unwrap(), 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_method_may_wait_on_a_call_of_another_actor_that_waits() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let waiter = Waiter::remote();
        let counter = Counter::remote(100);
        assert_eq!(finishes(&rt, waiter.nested(counter.clone()).get()).await.unwrap(), 130);
        assert_eq!(finishes(&rt, counter.incr(1).get()).await.unwrap(), 131);
        assert_eq!(finishes(&rt, waiter.calls().get()).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_may_wait_on_a_task_that_needs_the_call_just_before_it() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let waiter = Waiter::remote();
        waiter.ready().await.unwrap();
        // While the actor is busy, three calls queue behind it: one that
        // ends at once, a task that needs its result, and a call that waits
        // for that task. The manager must hear that the first ended, though
        // the actor goes straight on to the next call.
        let busy = waiter.busy(100);
        let produced = waiter.produce();
        let doubled = double::remote(&produced);
        let gathered = waiter.gather(vec![doubled]);
        assert_eq!(finishes(&rt, gathered.get()).await.unwrap(), 42);
        assert_eq!(finishes(&rt, busy.get()).await.unwrap(), 100);
        // The same with an async call that awaits.
        let busy = waiter.busy(100);
        let produced = waiter.produce();
        let doubled = double::remote(&produced);
        let gathered = waiter.gather_async(vec![doubled]);
        assert_eq!(finishes(&rt, gathered.get()).await.unwrap(), 42);
        assert_eq!(finishes(&rt, busy.get()).await.unwrap(), 100);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_actor_gives_back_the_cpus_it_holds() {
    // The actor holds the only CPU; the task it waits for needs one too.
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let waiter = Waiter::options().num_cpus(1.0).remote();
        waiter.ready().await.unwrap();
        assert_eq!(rt.load().0, 0.0, "the actor holds the CPU while it lives");
        assert_eq!(finishes(&rt, waiter.on_cpu_task().get()).await.unwrap(), 17);
        assert_eq!(finishes(&rt, waiter.on_plain_task().get()).await.unwrap(), 3);
        assert_eq!(finishes(&rt, waiter.calls().get()).await.unwrap(), 2);
        rt.wait_idle().await;
        assert_eq!(rt.load().0, 0.0, "it took the CPU back after each wait");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_plain_method_waits_on_a_current_thread_runtime() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let waiter = Waiter::remote();
        let counter = Counter::remote(0);
        assert_eq!(finishes(&rt, waiter.on_plain_task().get()).await.unwrap(), 3);
        assert_eq!(finishes(&rt, waiter.on_async_task().get()).await.unwrap(), 7);
        assert_eq!(finishes(&rt, waiter.nested(counter).get()).await.unwrap(), 30);
    })
    .await;
}
