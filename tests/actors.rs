//! Actors through the public API: ordering, concurrency, handles through
//! tasks, restarts, kill, names and dead-actor errors.

use std::time::Duration;

use rustyray::prelude::*;
use rustyray::{ActorState, DeathReason, TaskState, get_actor};

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

    pub async fn read(&self) -> i64 {
        self.n
    }

    pub fn checked(&mut self, by: i64) -> Result<i64, String> {
        if by < 0 {
            return Err(format!("refusing to add {by}"));
        }
        self.n += by;
        Ok(self.n)
    }

    pub fn crash(&mut self) -> i64 {
        panic!("counter crashed at {}", self.n)
    }

    pub async fn slow_read(&self, millis: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.n
    }

    /// Not `pub`: stays a plain method, not a remote one.
    fn reset(&mut self) {
        self.n = 0;
    }
}

#[rustyray::actor]
#[derive(Default)]
pub struct Log {
    entries: Vec<u64>,
}

#[rustyray::actor]
impl Log {
    pub fn new() -> Self {
        Log { entries: Vec::new() }
    }

    pub fn push(&mut self, value: u64) {
        self.entries.push(value);
    }

    pub fn all(&self) -> Vec<u64> {
        self.entries.clone()
    }

    /// Keeps the actor's thread busy for a while.
    pub fn hold(&self, millis: u64) -> bool {
        std::thread::sleep(Duration::from_millis(millis));
        true
    }

    /// Panics: the actor crashes.
    pub fn crash(&mut self) -> u64 {
        panic!("the log crashed on purpose")
    }
}

fn runtime() -> Runtime {
    Runtime::builder().num_cpus(2).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_run_on_the_actor_state() {
    let rt = runtime();
    rt.scope(async {
        let c: ActorHandle<Counter> = Counter::remote(10);
        let r: ObjectRef<i64> = c.incr(5);
        assert_eq!(r.get().await.unwrap(), 15);
        assert_eq!(c.read().get().await.unwrap(), 15);
        c.ready().await.unwrap();
        let mut plain = Counter::new(3);
        plain.reset();
        assert_eq!(plain.incr(1), 1, "the type stays an ordinary type");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_from_one_caller_run_in_order() {
    let rt = runtime();
    rt.scope(async {
        let log = Log::remote();
        let gate = slow_value::remote(0);
        // Some calls wait for an object; later calls must still run after them.
        let calls: Vec<ObjectRef<()>> =
            (0..10_000u64).map(|i| if i == 10 { log.push(&gate) } else { log.push(i) }).collect();
        rustyray::get_all(&calls).await.unwrap();
        let mut expected: Vec<u64> = (0..10_000).collect();
        expected[10] = 0;
        assert_eq!(log.all().get().await.unwrap(), expected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_running_actor_never_overtake_one_waiting_for_an_argument() {
    let rt = runtime();
    rt.scope(async {
        let log = Log::remote();
        // The actor is up and idle: calls with ready arguments start at once.
        assert!(log.all().get().await.unwrap().is_empty());
        let gates = [slow_value::remote(1_000_000), slow_value::remote(2_000_000)];
        let calls: Vec<ObjectRef<()>> = (0..3_000u64)
            .map(|i| match i {
                500 => log.push(&gates[0]),
                2_000 => log.push(&gates[1]),
                _ => log.push(i),
            })
            .collect();
        rustyray::get_all(&calls).await.unwrap();
        let mut expected: Vec<u64> = (0..3_000).collect();
        expected[500] = 1_000_000;
        expected[2_000] = 2_000_000;
        assert_eq!(log.all().get().await.unwrap(), expected);
        // Once the line is empty again, calls still run in order.
        let more: Vec<ObjectRef<()>> = (3_000..4_000u64).map(|i| log.push(i)).collect();
        rustyray::get_all(&more).await.unwrap();
        let all = log.all().get().await.unwrap();
        assert_eq!(&all[3_000..], (3_000..4_000).collect::<Vec<u64>>().as_slice());
    })
    .await;
}

#[rustyray::remote]
async fn slow_value(v: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_actors_at_once() {
    let rt = runtime();
    rt.scope(async {
        let counters: Vec<ActorHandle<Counter>> = (0..200).map(Counter::remote).collect();
        let bumps: Vec<ObjectRef<i64>> = counters.iter().flat_map(|c| (0..10).map(|_| c.incr(1))).collect();
        rustyray::get_all(&bumps).await.unwrap();
        let reads: Vec<ObjectRef<i64>> = counters.iter().map(|c| c.read()).collect();
        let values = rustyray::get_all(&reads).await.unwrap();
        assert_eq!(values, (0..200).map(|i| i + 10).collect::<Vec<i64>>());
        let alive = rt.actors().iter().filter(|a| a.state == ActorState::Alive).count();
        assert_eq!(alive, 200);
    })
    .await;
}

#[rustyray::remote]
fn bump_through(counter: ActorHandle<Counter>, by: i64) -> i64 {
    counter.incr(by).get_blocking().unwrap_or(-1)
}

#[rustyray::remote]
fn make_counter(start: i64) -> ActorHandle<Counter> {
    Counter::remote(start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_pass_through_tasks_both_ways() {
    let rt = runtime();
    rt.scope(async {
        let c = Counter::remote(0);
        let bumps: Vec<ObjectRef<i64>> = (0..20).map(|_| bump_through::remote(c.clone(), 1)).collect();
        rustyray::get_all(&bumps).await.unwrap();
        assert_eq!(c.read().get().await.unwrap(), 20);

        let made: ActorHandle<Counter> = make_counter::remote(100).get().await.unwrap();
        assert_eq!(made.incr(1).get().await.unwrap(), 101);
        // A handle serializes as its id and decodes back in its runtime.
        let bytes = rustyray::codec::encode(&made).unwrap();
        let back: ActorHandle<Counter> = rt.scope(async { rustyray::codec::decode(&bytes) }).await.unwrap();
        assert_eq!(back, made);
        assert_eq!(back.read().get().await.unwrap(), 101);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_err_fails_only_that_call() {
    let rt = runtime();
    rt.scope(async {
        let c = Counter::remote(1);
        let bad = c.checked(-1).get().await.unwrap_err();
        assert!(matches!(&bad, Error::TaskFailed { message, .. } if message == "refusing to add -1"), "{bad}");
        assert_eq!(c.checked(2).get().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_kills_an_actor_without_restarts() {
    let rt = runtime();
    rt.scope(async {
        let c = Counter::remote(7);
        assert_eq!(c.incr(1).get().await.unwrap(), 8);
        let crash = c.crash();
        let error = crash.get().await.unwrap_err();
        assert!(
            matches!(&error, Error::TaskPanicked { message, .. } if message.contains("counter crashed at 8")),
            "{error}"
        );
        let later = c.read().get().await.unwrap_err();
        match &later {
            Error::ActorDied { actor, reason, .. } => {
                assert_eq!(*actor, c.id());
                assert!(matches!(reason, DeathReason::Crashed { error: Some(_) }), "{reason}");
                assert!(later.to_string().contains("a method panicked"), "{later}");
            }
            other => panic!("expected ActorDied, got {other:?}"),
        }
        let info = rt.actors().into_iter().find(|a| a.id == c.id()).unwrap();
        assert_eq!(info.state, ActorState::Dead);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_actor_is_rebuilt_from_its_constructor_arguments() {
    let rt = runtime();
    rt.scope(async {
        let c = Counter::options().max_restarts(1).remote(100);
        assert_eq!(c.incr(5).get().await.unwrap(), 105);
        assert!(c.crash().get().await.is_err());
        // Rebuilt from `new(100)`: the increment is gone.
        assert_eq!(c.incr(1).get().await.unwrap(), 101);
        // State is what the manager has heard: let it catch up with the reports.
        rt.wait_idle().await;
        let info = rt.actors().into_iter().find(|a| a.id == c.id()).unwrap();
        assert_eq!((info.state, info.restarts), (ActorState::Alive, 1));
        // The one restart is used up: the next panic kills it.
        assert!(c.crash().get().await.is_err());
        assert!(matches!(c.read().get().await, Err(Error::ActorDied { .. })));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_fails_pending_calls_promptly() {
    let rt = runtime();
    rt.scope(async {
        let c = Counter::remote(0);
        let busy = c.slow_read(200);
        let queued: Vec<ObjectRef<i64>> = (0..5).map(|_| c.incr(1)).collect();
        rustyray::kill(&c);
        for r in &queued {
            let error =
                tokio::time::timeout(Duration::from_secs(5), r.get()).await.expect("failed promptly").unwrap_err();
            assert!(matches!(error, Error::ActorDied { .. }), "{error}");
        }
        assert!(matches!(c.incr(1).get().await, Err(Error::ActorDied { .. })));
        let _ = busy.get().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_after_kill_returns_fails_and_never_runs() {
    let rt = runtime();
    rt.scope(async {
        let all = async {
            for i in 0..200 {
                // Named and unnamed actors, each with its thread running (its
                // first call just returned), where later calls go straight to it.
                let c = if i % 2 == 0 {
                    Counter::options().name(format!("killed-{i}")).remote(0)
                } else {
                    Counter::remote(0)
                };
                assert_eq!(c.incr(1).get().await.unwrap(), 1);
                rustyray::kill(&c);
                let after = c.incr(1).get().await;
                assert!(
                    matches!(after, Err(Error::ActorDied { .. })),
                    "iteration {i}: a call after kill gave {after:?}"
                );
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all).await.expect("every call returned");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_actors_are_found_by_name() {
    let rt = runtime();
    rt.scope(async {
        let c2 = Counter::options().max_restarts(2).name("hits").remote(0);
        c2.incr(3).get().await.unwrap();
        let same: ActorHandle<Counter> = get_actor("hits").unwrap();
        assert_eq!(same, c2);
        assert_eq!(same.read().get().await.unwrap(), 3);

        let duplicate = Counter::options().name("hits").remote(0);
        let error = duplicate.ready().await.unwrap_err();
        assert!(matches!(&error, Error::ActorNameTaken { name } if name == "hits"), "{error}");
        assert!(matches!(duplicate.incr(1).get().await, Err(Error::ActorDied { .. })));

        assert!(matches!(get_actor::<Counter>("nobody"), Err(Error::ActorNotFound { .. })));
        assert!(matches!(get_actor::<Log>("hits"), Err(Error::ActorTypeMismatch { .. })));

        rustyray::kill(&same);
        // The name is free again once the actor is dead.
        rt.wait_idle().await;
        let again = Counter::options().name("hits").remote(1);
        again.ready().await.unwrap();
    })
    .await;
}

/// Counts its `&self` async calls in flight, and the most there ever were.
#[rustyray::actor]
#[derive(Default)]
pub struct Gate {
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

#[rustyray::actor]
impl Gate {
    pub fn new() -> Self {
        Gate::default()
    }

    /// Enters, then waits (yielding, so other calls may interleave) until
    /// `together` calls have been in flight at once; returns `gate`.
    pub async fn wait_together(&self, gate: u64, together: usize) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        while self.peak.load(SeqCst) < together {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        gate
    }

    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_async_calls_interleave_up_to_max_concurrency() {
    let rt = runtime();
    rt.scope(async {
        let all = async {
            // Every call waits until four were in flight at once: they finish
            // only if four interleave, and the peak says no more ever did.
            let g = Gate::options().max_concurrency(4).remote();
            let waits: Vec<ObjectRef<u64>> = (0..8).map(|i| g.wait_together(i, 4)).collect();
            assert_eq!(rustyray::get_all(&waits).await.unwrap(), (0..8).collect::<Vec<_>>());
            assert_eq!(g.peak().get().await.unwrap(), 4, "at most max_concurrency calls interleave");
            // By default one call runs at a time.
            let serial = Gate::remote();
            let waits: Vec<ObjectRef<u64>> = (0..8).map(|i| serial.wait_together(i, 1)).collect();
            rustyray::get_all(&waits).await.unwrap();
            assert_eq!(serial.peak().get().await.unwrap(), 1, "calls ran one at a time");
        };
        // The timeout only keeps a hang (calls that never interleave) from stalling the run.
        tokio::time::timeout(Duration::from_secs(60), all).await.expect("the calls interleaved");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_exits_when_its_last_handle_is_dropped() {
    let rt = runtime();
    let id = rt
        .scope(async {
            let c = Counter::remote(0);
            let last = c.incr(1);
            let id = c.id();
            drop(c);
            assert_eq!(last.get().await.unwrap(), 1, "calls made before the drop still run");
            id
        })
        .await;
    rt.wait_idle().await;
    let info = rt.actors().into_iter().find(|a| a.id == id).unwrap();
    assert_eq!(info.state, ActorState::Dead);
}

/// Set by [`Keeper`]'s `Drop` once it has read the runtime's statistics.
static KEEPER_DROPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[rustyray::actor]
#[derive(Default)]
pub struct Keeper {
    rt: Option<Runtime>,
}

#[rustyray::actor]
impl Keeper {
    pub fn new() -> Self {
        Keeper { rt: Runtime::current() }
    }

    pub fn ping(&self) -> bool {
        self.rt.is_some()
    }
}

impl Drop for Keeper {
    /// Calls back into the runtime, as a user's `Drop` may: it must not run
    /// where the runtime holds the task manager's lock.
    fn drop(&mut self) {
        if let Some(rt) = &self.rt {
            let _ = rt.stats();
            KEEPER_DROPPED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn a_killed_actors_state_is_dropped_where_its_drop_may_call_the_runtime() {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dropped = tokio.block_on(async {
        let rt = runtime();
        rt.scope(async {
            let keeper = Keeper::remote();
            assert!(keeper.ping().get().await.unwrap(), "the constructor found its runtime");
            // Let the idle actor park its state (it keeps its thread for a
            // moment after a call), so the kill drops the parked state. Had
            // it not parked yet, its own thread drops the state instead and
            // the test passes without saying anything.
            tokio::time::sleep(Duration::from_millis(100)).await;
            rustyray::kill(&keeper);
            // A state dropped under the manager's lock deadlocks the manager
            // in `stats()`: the flag is then never set. The timeout only
            // keeps that from hanging the test run.
            let set = async {
                while !KEEPER_DROPPED.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), set).await.is_ok()
        })
        .await
    });
    // A deadlocked manager never lets the tokio runtime shut down cleanly.
    tokio.shutdown_background();
    assert!(dropped, "the killed actor's state was dropped and its Drop could read the runtime's stats");
}

/// An actor whose methods return and take its own type, and one method
/// visible in the crate only.
#[rustyray::actor]
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Point {
    x: i64,
    y: i64,
}

#[rustyray::actor]
impl Point {
    pub fn new(x: i64, y: i64) -> Self {
        Point { x, y }
    }

    pub fn snapshot(&self) -> Self {
        self.clone()
    }

    pub fn moved_by(&mut self, by: Self) -> Result<Self, String> {
        self.x += by.x;
        self.y += by.y;
        Ok(self.clone())
    }

    pub(crate) fn sum(&self) -> i64 {
        self.x + self.y
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_may_take_and_return_self_and_be_visible_in_the_crate_only() {
    let rt = runtime();
    rt.scope(async {
        let p = Point::remote(1, 2);
        let moved: Point = p.moved_by(Point { x: 10, y: 20 }).get().await.unwrap();
        assert_eq!((moved.x, moved.y), (11, 22));
        let now: Point = p.snapshot().get().await.unwrap();
        assert_eq!((now.x, now.y), (11, 22));
        assert_eq!(p.sum().get().await.unwrap(), 33);
    })
    .await;
}

#[rustyray::remote]
async fn slow_start(v: i64) -> i64 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_while_the_constructor_waits_for_its_argument_run_on_the_built_state() {
    let rt = runtime();
    rt.scope(async {
        let counter = Counter::remote(slow_start::remote(40));
        let first = counter.incr(1);
        let second = counter.incr(1);
        assert_eq!(first.get().await.unwrap(), 41);
        assert_eq!(second.get().await.unwrap(), 42);
        assert_eq!(counter.read().get().await.unwrap(), 42);
    })
    .await;
}

/// Set once `Doomed::crash_later` runs.
static CRASH_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[rustyray::actor]
#[derive(Default)]
pub struct Doomed {
    lives: u32,
}

#[rustyray::actor]
impl Doomed {
    pub fn new() -> Self {
        Doomed { lives: 0 }
    }

    /// Panics once the caller had time to cancel it.
    pub fn crash_later(&mut self) -> u32 {
        CRASH_STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        panic!("crashed after being cancelled")
    }

    pub fn ping(&mut self) -> u32 {
        self.lives += 1;
        self.lives
    }
}

#[rustyray::remote]
fn slowly(n: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(200));
    n
}

/// Bounds a wait that would hang on a lost restart or creation.
async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), work).await {
        Ok(done) => done,
        Err(_) => panic!("{what} did not finish"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_while_it_runs_that_then_panics_restarts_the_actor() {
    let rt = runtime();
    rt.scope(async {
        let actor = Doomed::options().max_restarts(1).remote();
        let doomed = actor.crash_later();
        within("the call to start", async {
            while !CRASH_STARTED.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        rustyray::cancel(&doomed);
        assert!(doomed.get().await.unwrap_err().is_cancelled());
        // The panic still took the state: the actor restarts and serves on.
        assert_eq!(within("a call after the crash", actor.ping().get()).await.unwrap(), 1);
        within("the runtime to go idle", rt.wait_idle()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_killed_before_its_constructor_ran_is_dead_not_pending() {
    let rt = runtime();
    rt.scope(async {
        // The constructor waits for an argument; the kill comes first.
        let slow = slowly::remote(5);
        let counter = Counter::remote(&slow);
        rustyray::kill(&counter);
        let error = within("ready", counter.ready()).await.unwrap_err();
        assert!(matches!(error, rustyray::Error::ActorDied { .. }), "{error}");
        assert!(counter.incr(1).get().await.is_err());
        within("the runtime to go idle", rt.wait_idle()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_while_it_waits_at_its_running_actor_never_runs() {
    let rt = runtime();
    rt.scope(async {
        let log = Log::remote();
        log.ready().await.unwrap();
        // The actor's thread runs `hold`: the calls after it wait in its slot,
        // left there by this caller.
        let held = log.hold(300);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let doomed = log.push(1);
        let kept = log.push(2);
        doomed.cancel();
        assert!(held.get().await.unwrap());
        kept.get().await.unwrap();
        assert!(matches!(doomed.get().await, Err(Error::Cancelled { .. })));
        assert_eq!(log.all().get().await.unwrap(), vec![2], "the cancelled call never ran");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_idle_waits_for_every_call_left_at_a_running_actor() {
    let rt = runtime();
    rt.scope(async {
        let log = Log::remote();
        log.ready().await.unwrap();
        let held = log.hold(100);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let calls: Vec<ObjectRef<()>> = (0..2_000u64).map(|i| log.push(i)).collect();
        rt.wait_idle().await;
        assert!(held.is_ready() && calls.iter().all(ObjectRef::is_ready), "idle only once every call ended");
        let pushes = rt.tasks().into_iter().filter(|t| t.function.name().ends_with("push")).collect::<Vec<_>>();
        assert_eq!(pushes.len(), 2_000, "every call is in the records once idle");
        assert!(pushes.iter().all(|t| t.state == TaskState::Succeeded), "every call succeeded");
        let stats = rt.stats();
        assert_eq!((stats.running, stats.pending), (0, 0), "{stats:?}");
        assert_eq!(stats.succeeded, 2_002, "the creation, hold and every push counted: {stats:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_left_at_a_running_actor_run_after_its_last_handle_is_dropped() {
    let rt = runtime();
    rt.scope(async {
        let log = Log::remote();
        // A short call: the actor's thread reports it once its slot is empty
        // (a moment later) and lingers for the next, which its caller then
        // leaves at the actor itself, as the ones after it.
        log.push(0).get().await.unwrap();
        std::thread::sleep(Duration::from_micros(300));
        let held = log.hold(100);
        let calls: Vec<ObjectRef<()>> = (1..100u64).map(|i| log.push(i)).collect();
        let all = log.all();
        // The actor ends once the calls already submitted are done, not before.
        drop(log);
        assert!(held.get().await.unwrap());
        for call in &calls {
            call.get().await.unwrap();
        }
        assert_eq!(all.get().await.unwrap(), (0..100).collect::<Vec<u64>>());
    })
    .await;
}

#[rustyray::actor]
#[derive(Default)]
pub struct Relay;

#[rustyray::actor]
impl Relay {
    pub fn new() -> Self {
        Relay
    }

    /// Calls an actor that may live in another runtime.
    pub fn forward(&self, to: ActorHandle<Log>, value: u64) -> bool {
        drop(to.push(value));
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_calling_another_runtimes_actor_leaves_both_able_to_go_idle() {
    let (first, second) = (runtime(), runtime());
    let log = second.scope(async { Log::remote() }).await;
    first
        .scope(async {
            let relay = Relay::remote();
            relay.ready().await.unwrap();
            let calls: Vec<ObjectRef<bool>> = (0..500u64).map(|i| relay.forward(log.clone(), i)).collect();
            assert!(rustyray::get_all(&calls).await.unwrap().into_iter().all(|sent| sent));
        })
        .await;
    let idle = Duration::from_secs(20);
    tokio::time::timeout(idle, first.wait_idle()).await.expect("the calling runtime goes idle");
    tokio::time::timeout(idle, second.wait_idle()).await.expect("the called runtime goes idle");
    let all = second.scope(async { log.all().get().await }).await.unwrap();
    assert_eq!(all, (0..500).collect::<Vec<u64>>(), "every forwarded call ran, in order");
}

/// Leaves a call at `log`, then keeps running (a plain body cannot be stopped).
#[rustyray::remote]
fn push_then_linger(log: ActorHandle<Log>, value: u64, millis: u64) -> bool {
    drop(log.push(value));
    std::thread::sleep(Duration::from_millis(millis));
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_a_cancelled_task_taken_back_by_a_crash_is_cancelled_and_the_runtime_goes_idle() {
    let rt = runtime();
    rt.scope(async {
        let log = Log::options().max_restarts(1).remote();
        log.ready().await.unwrap();
        // The actor's thread is busy; a crash waits behind it, and a task's
        // call behind the crash.
        let held = log.hold(300);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let crash = log.crash();
        let parent = push_then_linger::remote(log.clone(), 7, 1_500);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Cancelled while it runs on: its call, taken back from the slot by
        // the crash, is cancelled with it.
        parent.cancel();
        assert!(held.get().await.unwrap());
        assert!(matches!(crash.get().await, Err(Error::TaskPanicked { .. })));
        tokio::time::timeout(Duration::from_secs(20), rt.wait_idle()).await.expect("the runtime goes idle");
        assert!(!log.all().get().await.unwrap().contains(&7), "the cancelled task's call never ran");
    })
    .await;
}
