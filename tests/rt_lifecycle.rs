//! Task lifecycle through the public API: retries with backoff, timeouts,
//! cancellation, priority, queues, resources, the in-flight limit, state,
//! statistics, and bad input.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyray::prelude::*;
use rustyray::{AttemptOutcome, BuildError, TaskFilter, TaskState};

/// How many times each key has been attempted.
static ATTEMPTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn attempt(key: &str) -> u32 {
    let mut map = ATTEMPTS.lock().unwrap();
    let n = map.get_or_insert_with(HashMap::new).entry(key.to_string()).or_insert(0);
    *n += 1;
    *n
}

/// Fails its first `failures` attempts, then returns the attempt number.
#[rustyray::remote]
fn flaky(key: String, failures: u32) -> Result<u32, String> {
    let n = attempt(&key);
    if n <= failures { Err(format!("{key}: attempt {n} failed")) } else { Ok(n) }
}

/// Panics on its first `failures` attempts.
#[rustyray::remote]
async fn flaky_panic(key: String, failures: u32) -> u32 {
    let n = attempt(&key);
    if n <= failures {
        panic!("{key}: attempt {n} panicked");
    }
    n
}

/// Sleeps far past any timeout on its first `failures` attempts.
#[rustyray::remote]
async fn slow_then_fast(key: String, failures: u32) -> u32 {
    let n = attempt(&key);
    if n <= failures {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    n
}

fn runtime(cpus: usize) -> Runtime {
    Runtime::builder().num_cpus(cpus).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_rerun_failed_attempts_and_record_each() {
    let rt = runtime(2);
    rt.scope(async {
        let r = flaky::options().max_retries(3).remote("retry-ok".to_string(), 2);
        assert_eq!(r.get().await.unwrap(), 3);
        rt.wait_idle().await;
        let info = rt.task(r.task().unwrap()).unwrap();
        assert_eq!(info.state, TaskState::Succeeded);
        assert_eq!(info.attempts.len(), 3);
        assert!(matches!(&info.attempts[0].outcome, AttemptOutcome::Failed(e) if e.to_string().contains("attempt 1")));
        assert!(matches!(info.attempts[2].outcome, AttemptOutcome::Succeeded));
        assert!(info.attempts.iter().all(|a| a.duration.is_some()));
        assert_eq!(rt.stats().retried, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_error_names_the_last_failure_and_the_attempt_count() {
    let rt = runtime(2);
    rt.scope(async {
        let error = flaky::options().max_retries(1).remote("retry-fail".to_string(), 5).get().await.unwrap_err();
        match &error {
            Error::TaskFailed { message, attempts, .. } => {
                assert_eq!(*attempts, 2);
                assert!(message.contains("attempt 2 failed"), "{message}");
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        let error = flaky_panic::options().max_retries(2).remote("panic-fail".to_string(), 9).get().await.unwrap_err();
        assert!(matches!(&error, Error::TaskPanicked { attempts: 3, message, .. } if message.contains("attempt 3")));
        let ok = flaky_panic::options().max_retries(2).remote("panic-ok".to_string(), 1).get().await.unwrap();
        assert_eq!(ok, 2, "a panic is retried like an error");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_waits_between_attempts() {
    let rt = runtime(2);
    rt.scope(async {
        let r = flaky::options()
            .max_retries(2)
            .backoff(Duration::from_millis(40), Duration::from_millis(200))
            .remote("backoff".to_string(), 2);
        assert_eq!(r.get().await.unwrap(), 3);
        rt.wait_idle().await;
        let info = rt.task(r.task().unwrap()).unwrap();
        let gaps: Vec<Duration> = info
            .attempts
            .windows(2)
            .map(|w| w[1].started_at.duration_since(w[0].started_at).unwrap_or_default())
            .collect();
        // Jitter draws each delay between half and all of it: 40 ms, then 80 ms.
        assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(40), "{gaps:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fails_the_attempt_and_is_retried_if_allowed() {
    let rt = runtime(2);
    rt.scope(async {
        let error = slow_then_fast::options()
            .timeout(Duration::from_millis(30))
            .remote("timeout-fail".to_string(), 1)
            .get()
            .await
            .unwrap_err();
        assert!(matches!(error, Error::TimedOut { attempts: 1, .. }), "{error}");
        let ok = slow_then_fast::options()
            .timeout(Duration::from_millis(30))
            .max_retries(2)
            .remote("timeout-retry".to_string(), 2)
            .get()
            .await
            .unwrap();
        assert_eq!(ok, 3);
    })
    .await;
}

static PLAIN_RELEASE: AtomicBool = AtomicBool::new(false);

/// A plain body that ignores its timeout: it can only be abandoned.
#[rustyray::remote]
fn stubborn() -> u32 {
    while !PLAIN_RELEASE.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
    7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_plain_body_is_abandoned_and_keeps_its_cpu_until_it_returns() {
    let rt = runtime(1);
    rt.scope(async {
        let r = stubborn::options().timeout(Duration::from_millis(20)).remote();
        assert!(matches!(r.get().await, Err(Error::TimedOut { .. })));
        // The body still runs: its CPU is still held.
        assert_eq!(rt.load().0, 0.0);
        PLAIN_RELEASE.store(true, Ordering::Release);
        rt.wait_idle().await;
        assert_eq!(rt.load().0, 1.0);
        // Its late result was discarded.
        assert!(matches!(r.get().await, Err(Error::TimedOut { .. })));
    })
    .await;
}

/// Gates the test opens, and what the attempts of `waits_then_retries` have reached.
static GATE_A: AtomicBool = AtomicBool::new(false);
static GATE_A_RETURN: AtomicBool = AtomicBool::new(false);
static GATE_B: AtomicBool = AtomicBool::new(false);
static FIRST_WOKE: AtomicBool = AtomicBool::new(false);
static RETRY_STARTED: AtomicBool = AtomicBool::new(false);

/// An async task that holds no CPU and returns once `gate` is open.
#[rustyray::remote]
async fn open_when(gate: u8) -> u8 {
    let flag = if gate == b'A' { &GATE_A } else { &GATE_B };
    while !flag.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gate
}

/// Its first attempt waits on gate A past its timeout, then (abandoned)
/// waits for the test before it returns; the retry waits on gate B.
#[rustyray::remote]
fn waits_then_retries(key: String) -> u32 {
    let n = attempt(&key);
    if n == 1 {
        let _ = open_when::remote(b'A').get_blocking();
        FIRST_WOKE.store(true, Ordering::Release);
        while !GATE_A_RETURN.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
    } else {
        RETRY_STARTED.store(true, Ordering::Release);
        let _ = open_when::remote(b'B').get_blocking();
    }
    n
}

/// Polls `check` until it holds, failing the test if it never does.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_attempts_waits_count_against_it_not_against_its_retry() {
    let rt = runtime(1);
    rt.scope(async {
        let r = waits_then_retries::options()
            .timeout(Duration::from_millis(500))
            .max_retries(1)
            .remote("abandoned-waits".to_string());
        // The first attempt timed out while it waited; the retry waits too,
        // so the one CPU is free.
        eventually("the retry started", || RETRY_STARTED.load(Ordering::Acquire)).await;
        eventually("the retry's CPU is given back while it waits", || rt.load().0 == 1.0).await;
        // The abandoned attempt stops waiting: it runs again, on its own CPU.
        GATE_A.store(true, Ordering::Release);
        eventually("the first attempt woke", || FIRST_WOKE.load(Ordering::Acquire)).await;
        eventually("the woken attempt holds the CPU", || rt.load().0 == 0.0).await;
        // It returns: its CPU is free again, as the retry still waits. (Its
        // wait's end, counted against the retry, would have taken the CPU
        // for a retry that is not running.)
        GATE_A_RETURN.store(true, Ordering::Release);
        eventually("the CPU is free while the retry waits", || rt.load().0 == 1.0).await;
        GATE_B.store(true, Ordering::Release);
        assert_eq!(r.get().await.unwrap(), 2);
        rt.wait_idle().await;
        assert_eq!(rt.load(), (1.0, 0));
    })
    .await;
}

static RAN: AtomicUsize = AtomicUsize::new(0);

#[rustyray::remote]
fn one_of(_x: u32) -> u32 {
    1
}

#[rustyray::remote]
fn count_run(_gate: u32) -> u32 {
    RAN.fetch_add(1, Ordering::SeqCst);
    1
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

static DROPPED: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);

#[rustyray::remote]
async fn hang_until_dropped() -> u32 {
    let flag = DROPPED.lock().unwrap().clone().unwrap();
    let _guard = SetOnDrop(flag);
    HANGING.fetch_add(1, Ordering::SeqCst);
    std::future::pending::<()>().await;
    0
}

/// Children whose bodies have begun (and hold their drop guard).
static HANGING: AtomicUsize = AtomicUsize::new(0);

#[rustyray::remote]
async fn parent_of_hangers(children: u32) -> u32 {
    let kids: Vec<ObjectRef<u32>> = (0..children).map(|_| hang_until_dropped::remote()).collect();
    rustyray::get_all(&kids).await.map(|v| v.len() as u32).unwrap_or(0)
}

#[rustyray::remote]
async fn gate(v: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(50)).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_is_immediate_for_refs_and_reaches_dependents_and_children() {
    let rt = runtime(2);
    rt.scope(async {
        // A task still waiting for its input never runs.
        let g = gate::remote(1);
        let queued = count_run::remote(&g);
        let dependent = count_run::remote(&queued);
        rustyray::cancel(&queued);
        assert!(queued.get().await.unwrap_err().is_cancelled());
        let error = dependent.get().await.unwrap_err();
        assert!(error.is_cancelled());
        assert_eq!(error.origin().map(|o| o.task), queued.task(), "{error}");
        g.get().await.unwrap();
        rt.wait_idle().await;
        assert_eq!(RAN.load(Ordering::SeqCst), 0);

        // A running async body is dropped, and so are the children it submitted.
        let flag = Arc::new(AtomicBool::new(false));
        *DROPPED.lock().unwrap() = Some(flag.clone());
        let parent = parent_of_hangers::remote(3);
        // Wait until every child's body has begun: a task counted as running
        // may not have been polled yet, and an unpolled body holds no guard.
        while HANGING.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        rustyray::cancel(&parent);
        assert!(parent.get().await.unwrap_err().is_cancelled());
        rt.wait_idle().await;
        // An aborted tokio task's future is dropped on the runtime's next
        // turn for it, which may come just after the manager settled it.
        let dropped = tokio::time::timeout(Duration::from_secs(10), async {
            while !flag.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(dropped.await.is_ok(), "the children's bodies were dropped");
        let cancelled = rt.tasks_where(&TaskFilter { state: Some(TaskState::Cancelled), ..Default::default() });
        assert!(cancelled.iter().filter(|t| t.function.name().ends_with("hang_until_dropped")).count() == 3);

        // Cancelling a finished task does nothing.
        let done = count_run::remote(5);
        assert_eq!(done.get().await.unwrap(), 1);
        rustyray::cancel(&done);
        assert_eq!(done.get().await.unwrap(), 1);
    })
    .await;
}

/// Records the order tasks run in.
static ORDER: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[rustyray::remote]
fn record(v: u32) {
    ORDER.lock().unwrap().push(v);
}

#[rustyray::remote]
fn hold_cpu(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_runs_first_and_fifo_within_a_priority() {
    let rt = runtime(1);
    rt.scope(async {
        let blocker = hold_cpu::remote(100);
        // The blocker holds the only CPU before the others are submitted.
        while rt.stats().running == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut refs = Vec::new();
        for (v, priority) in [(1, 0), (2, 5), (3, 0), (4, 10), (5, 5)] {
            refs.push(record::options().priority(priority).remote(v));
        }
        blocker.get().await.unwrap();
        rustyray::get_all(&refs).await.unwrap();
        assert_eq!(*ORDER.lock().unwrap(), vec![4, 2, 5, 1, 3]);
    })
    .await;
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Enters, then waits until three of these have run at once.
#[rustyray::remote]
async fn io_work() -> u32 {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    while PEAK.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_caps_its_tasks_concurrency() {
    let rt = Runtime::builder().num_cpus(2).queue_limit("io", 3).build().unwrap();
    rt.scope(async {
        // The tasks finish only once three ran at once; the peak says no
        // more ever did. The timeout only keeps a hang from stalling the run.
        let refs: Vec<ObjectRef<u32>> = (0..30).map(|_| io_work::options().queue("io").remote()).collect();
        let all = tokio::time::timeout(Duration::from_secs(60), rustyray::get_all(&refs)).await;
        assert_eq!(all.expect("three tasks of the queue ran at once").unwrap().len(), 30);
        assert_eq!(PEAK.load(Ordering::SeqCst), 3, "the queue's limit capped its tasks");
    })
    .await;
}

static GPU_BUSY: AtomicUsize = AtomicUsize::new(0);
static GPU_PEAK: AtomicUsize = AtomicUsize::new(0);

#[rustyray::remote]
fn on_gpu() -> u32 {
    let now = GPU_BUSY.fetch_add(1, Ordering::SeqCst) + 1;
    GPU_PEAK.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(5));
    GPU_BUSY.fetch_sub(1, Ordering::SeqCst);
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_held_while_running_and_impossible_demands_fail_at_once() {
    let rt = Runtime::builder().num_cpus(4).resource("gpu", 1.0).build().unwrap();
    rt.scope(async {
        let refs: Vec<ObjectRef<u32>> = (0..8).map(|_| on_gpu::options().resource("gpu", 1.0).remote()).collect();
        rustyray::get_all(&refs).await.unwrap();
        assert_eq!(GPU_PEAK.load(Ordering::SeqCst), 1);
        let error = on_gpu::options().resource("gpu", 2.0).remote().get().await.unwrap_err();
        assert!(
            matches!(&error, Error::Unschedulable { resource, demand, capacity, .. }
                if &**resource == "gpu" && *demand == 2.0 && *capacity == 1.0),
            "{error}"
        );
        let error = on_gpu::options().num_cpus(8.0).remote().get().await.unwrap_err();
        assert!(matches!(&error, Error::Unschedulable { resource, .. } if &**resource == "CPU"), "{error}");
    })
    .await;
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static IN_FLIGHT_PEAK: AtomicUsize = AtomicUsize::new(0);

/// A plain task that enters, then waits until two tasks ran at once.
#[rustyray::remote]
fn in_flight_work() {
    let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    IN_FLIGHT_PEAK.fetch_max(now, Ordering::SeqCst);
    while IN_FLIGHT_PEAK.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_limit_caps_all_tasks() {
    let rt = Runtime::builder().num_cpus(8).max_in_flight(2).build().unwrap();
    rt.scope(async {
        // CPUs enough for all six: only the in-flight limit holds them back.
        // They finish only once two ran at once; the peak says no more ever
        // did. The timeout only keeps a hang from stalling the run.
        let refs: Vec<ObjectRef<()>> = (0..6).map(|_| in_flight_work::remote()).collect();
        let all = tokio::time::timeout(Duration::from_secs(60), rustyray::get_all(&refs)).await;
        all.expect("two tasks ran at once").unwrap();
        assert_eq!(IN_FLIGHT_PEAK.load(Ordering::SeqCst), 2, "no more than two tasks ran at once");
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_an_error_at_the_call_or_at_build() {
    let rt = Runtime::builder().num_cpus(1).queue_limit("io", 1).build().unwrap();
    rt.scope(async {
        let cases = [
            on_gpu::options().num_cpus(f64::NAN).remote(),
            on_gpu::options().num_cpus(-1.0).remote(),
            on_gpu::options().resource("gpu", f64::INFINITY).remote(),
            on_gpu::options().timeout(Duration::ZERO).remote(),
            on_gpu::options().backoff(Duration::from_secs(2), Duration::from_secs(1)).remote(),
        ];
        for r in cases {
            let error = r.get().await.unwrap_err();
            assert!(matches!(error, Error::InvalidOption { .. }), "{error}");
        }
        let error = on_gpu::options().queue("nope").remote().get().await.unwrap_err();
        assert!(
            matches!(&error, Error::UnknownQueue { queue, known, .. } if &**queue == "nope" && known == "io"),
            "{error}"
        );
    })
    .await;
    for builder in [
        Runtime::builder().queue_limit("io", 0),
        Runtime::builder().resource("gpu", -1.0),
        Runtime::builder().resource("gpu", f64::NAN),
        Runtime::builder().max_in_flight(0),
    ] {
        assert!(matches!(builder.build(), Err(BuildError::InvalidOption { .. })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_records_are_bounded_and_filterable() {
    let rt = Runtime::builder().num_cpus(2).max_finished_records(5).build().unwrap();
    rt.scope(async {
        // Not `count_run`: the cancel test counts its runs, and runs beside this one.
        let refs: Vec<ObjectRef<u32>> = (0..20).map(|i| one_of::options().name(format!("n{i}")).remote(1)).collect();
        rustyray::get_all(&refs).await.unwrap();
        let bad = flaky::options().name("bad").remote("filter".to_string(), 9);
        assert!(bad.get().await.is_err());
        rt.wait_idle().await;
        let tasks = rt.tasks();
        assert_eq!(tasks.len(), 5, "oldest finished records were evicted");
        assert_eq!(tasks.last().map(|t| t.name.as_deref()), Some(Some("bad")));
        let failed = rt.tasks_where(&TaskFilter { state: Some(TaskState::Failed), ..Default::default() });
        assert_eq!(failed.len(), 1);
        assert!(failed[0].error.is_some());
        let by_name = rt.tasks_where(&TaskFilter { name: Some("bad".into()), ..Default::default() });
        assert_eq!(by_name.len(), 1);
        let by_function =
            rt.tasks_where(&TaskFilter { function: Some("rt_lifecycle::flaky".into()), ..Default::default() });
        assert_eq!(by_function.len(), 1);
        let stats = rt.stats();
        assert_eq!(stats.submitted, 21);
        assert_eq!((stats.succeeded, stats.failed, stats.pending, stats.running), (20, 1, 0, 0));
        assert!(stats.p99_run_time >= stats.p50_run_time);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_finished_records_kept_the_counts_still_add_up() {
    let rt = Runtime::builder().num_cpus(2).max_finished_records(0).build().unwrap();
    rt.scope(async {
        let refs: Vec<ObjectRef<u32>> = (0..20).map(|_| one_of::remote(1)).collect();
        rustyray::get_all(&refs).await.unwrap();
        assert!(flaky::options().name("bad").remote("no records".to_string(), 9).get().await.is_err());
        rt.wait_idle().await;
        assert!(rt.tasks().is_empty(), "no finished task is kept");
        let stats = rt.stats();
        assert_eq!(stats.submitted, 21);
        assert_eq!((stats.succeeded, stats.failed, stats.pending, stats.running), (20, 1, 0, 0));
    })
    .await;
}

/// Records the order of the starvation test's tasks.
static STREAM: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[rustyray::remote]
fn stream(v: u32) {
    STREAM.lock().unwrap().push(v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_priority_task_runs_when_the_high_priority_stream_pauses() {
    let rt = runtime(1);
    rt.scope(async {
        let low = stream::options().priority(-10).remote(99);
        for burst in 0..3 {
            let highs: Vec<ObjectRef<()>> =
                (0..20).map(|i| stream::options().priority(10).remote(burst * 100 + i)).collect();
            rustyray::get_all(&highs).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), low.get()).await.expect("the low task ran").unwrap();
        let order = STREAM.lock().unwrap().clone();
        let low_at = order.iter().position(|v| *v == 99).unwrap();
        assert!(low_at < order.len() - 20, "it ran in a pause between bursts, not after all of them: {order:?}");
    })
    .await;
}

#[rustyray::actor]
#[derive(Default)]
pub struct Fragile {
    calls: u32,
}

#[rustyray::actor]
impl Fragile {
    pub fn new() -> Self {
        Fragile { calls: 0 }
    }

    pub async fn slow_then_crash_elsewhere(&self, millis: u64) -> u32 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.calls
    }

    pub async fn crash(&self) -> u32 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        panic!("fragile crashed")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_at_a_crash_are_retried_with_max_task_retries() {
    let rt = runtime(2);
    rt.scope(async {
        let retried = Fragile::options().max_concurrency(4).max_restarts(1).max_task_retries(1).remote();
        let in_flight = retried.slow_then_crash_elsewhere(50);
        let crash = retried.crash();
        assert!(matches!(crash.get().await, Err(Error::TaskPanicked { .. })));
        assert_eq!(in_flight.get().await.unwrap(), 0, "retried on the rebuilt actor");

        let failed = Fragile::options().max_concurrency(4).max_restarts(1).remote();
        let in_flight = failed.slow_then_crash_elsewhere(50);
        assert!(failed.crash().get().await.is_err());
        let error = in_flight.get().await.unwrap_err();
        assert!(matches!(error, Error::ActorDied { .. }), "{error}");
        assert_eq!(failed.slow_then_crash_elsewhere(1).get().await.unwrap(), 0, "the actor itself was rebuilt");
    })
    .await;
}
