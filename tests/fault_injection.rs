//! Fault injection: thousands of tasks of which a seeded random fraction
//! returns errors, panics, times out or is cancelled, some with retries, and
//! actors that panic mid-stream with and without restarts. Every `get` must
//! return exactly the expected outcome, within a bounded wait, and the
//! statistics must add up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustyray::prelude::*;

/// A small deterministic generator (splitmix64), so every run injects the same faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Fault {
    None,
    Err,
    Panic,
    Timeout,
}

#[derive(Debug)]
struct Plan {
    key: u64,
    fault: Fault,
    failing: u32,
    retries: u32,
    cancel: bool,
    plain: bool,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Value(u64),
    Failed(u32),
    Panicked(u32),
    TimedOut(u32),
    Cancelled,
}

impl Plan {
    fn expected(&self) -> Outcome {
        if self.cancel {
            return Outcome::Cancelled;
        }
        if self.fault == Fault::None || self.failing <= self.retries {
            return Outcome::Value(self.key);
        }
        let attempts = self.retries + 1;
        match self.fault {
            Fault::Err => Outcome::Failed(attempts),
            Fault::Panic => Outcome::Panicked(attempts),
            Fault::Timeout => Outcome::TimedOut(attempts),
            Fault::None => unreachable!("handled above"),
        }
    }

    fn retried(&self) -> u64 {
        if self.cancel || self.fault == Fault::None { 0 } else { u64::from(self.failing.min(self.retries)) }
    }
}

static ATTEMPTS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

fn attempt(key: u64) -> u32 {
    let mut map = ATTEMPTS.lock().unwrap_or_else(|p| p.into_inner());
    let n = map.get_or_insert_with(HashMap::new).entry(key).or_insert(0);
    *n += 1;
    *n
}

/// The timeout of the tasks that time out: long enough that an attempt
/// meant to succeed does, even on a loaded machine.
const TIMEOUT: Duration = Duration::from_millis(1000);

#[rustyray::remote]
async fn faulty_async(key: u64, fault: u8, failing: u32, _gate: bool) -> Result<u64, String> {
    // The runtime's own attempt number: an attempt that timed out before its
    // body was first polled (a loaded machine) still counts, as it does for
    // the runtime, where a count of polled bodies would miss it.
    let n = started_attempt().unwrap_or_else(|| attempt(key));
    if n <= failing {
        match fault {
            1 => return Err(format!("task {key} failed on attempt {n}")),
            2 => panic!("task {key} panicked on attempt {n}"),
            3 => tokio::time::sleep(Duration::from_secs(3600)).await,
            _ => {}
        }
    }
    Ok(key)
}

/// The number of the attempt running this body, as the runtime recorded it.
fn started_attempt() -> Option<u32> {
    let task = rustyray::current_task()?;
    let info = Runtime::current()?.task(task)?;
    info.attempts.iter().map(|a| a.number).max()
}

#[rustyray::remote]
fn faulty_plain(key: u64, fault: u8, failing: u32, _gate: bool) -> Result<u64, String> {
    let n = attempt(key);
    if n <= failing {
        match fault {
            1 => return Err(format!("task {key} failed on attempt {n}")),
            2 => panic!("task {key} panicked on attempt {n}"),
            // A plain body cannot be interrupted: it is abandoned and returns later.
            3 => std::thread::sleep(TIMEOUT + Duration::from_millis(50)),
            _ => {}
        }
    }
    Ok(key)
}

static OPEN: AtomicBool = AtomicBool::new(false);

/// Resolves once the test opens it, holding cancellable tasks in PENDING_ARGS.
#[rustyray::remote]
async fn gate() -> bool {
    while !OPEN.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

type Args = (rustyray::TaskArg<u64>, rustyray::TaskArg<u8>, rustyray::TaskArg<u32>, rustyray::TaskArg<bool>);

fn wrap((key, fault, failing, gate): (u64, u8, u32, rustyray::TaskArg<bool>)) -> Args {
    (key.into(), fault.into(), failing.into(), gate)
}

fn outcome(result: rustyray::Result<u64>) -> Outcome {
    match result {
        Ok(v) => Outcome::Value(v),
        Err(Error::TaskFailed { attempts, .. }) => Outcome::Failed(attempts),
        Err(Error::TaskPanicked { attempts, .. }) => Outcome::Panicked(attempts),
        Err(Error::TimedOut { attempts, .. }) => Outcome::TimedOut(attempts),
        Err(Error::Cancelled { .. }) => Outcome::Cancelled,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_faulty_tasks_each_get_exactly_their_outcome() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let mut rng = Rng(0x5eed);
    let plans: Vec<Plan> = (0..3000u64)
        .map(|key| {
            let fault = match rng.below(10) {
                0 | 1 => Fault::Err,
                2 => Fault::Panic,
                3 => Fault::Timeout,
                _ => Fault::None,
            };
            let plain = rng.below(2) == 0;
            Plan {
                key,
                fault,
                failing: if fault == Fault::None { 0 } else { 1 + rng.below(3) as u32 },
                retries: rng.below(3) as u32,
                cancel: rng.below(20) == 0,
                // Few plain timeouts: each holds a CPU until its body returns.
                plain: plain && (fault != Fault::Timeout || rng.below(20) == 0),
            }
        })
        .collect();

    let results = rt
        .scope(async {
            let gate = gate::remote();
            let refs: Vec<ObjectRef<u64>> = plans
                .iter()
                .map(|p| {
                    let fault = p.fault as u8;
                    let gate_arg: rustyray::TaskArg<bool> = if p.cancel { (&gate).into() } else { true.into() };
                    let args = (p.key, fault, p.failing, gate_arg);
                    match (p.plain, p.fault == Fault::Timeout) {
                        (true, true) => {
                            faulty_plain::options().max_retries(p.retries).timeout(TIMEOUT).call(wrap(args))
                        }
                        (true, false) => faulty_plain::options().max_retries(p.retries).call(wrap(args)),
                        (false, true) => {
                            faulty_async::options().max_retries(p.retries).timeout(TIMEOUT).call(wrap(args))
                        }
                        (false, false) => faulty_async::options().max_retries(p.retries).call(wrap(args)),
                    }
                })
                .collect();
            for (plan, r) in plans.iter().zip(&refs) {
                if plan.cancel {
                    rustyray::cancel(r);
                }
            }
            OPEN.store(true, Ordering::Release);
            let mut results = Vec::with_capacity(refs.len());
            for r in &refs {
                let got = tokio::time::timeout(Duration::from_secs(60), r.get()).await.expect("no get hangs");
                results.push(outcome(got));
            }
            gate.get().await.unwrap();
            let ids: Vec<Option<rustyray::TaskId>> = refs.iter().map(|r| r.task()).collect();
            (results, ids)
        })
        .await;
    let (results, ids) = results;

    for ((plan, got), id) in plans.iter().zip(&results).zip(&ids) {
        assert_eq!(*got, plan.expected(), "{plan:?}: {:#?}", id.and_then(|id| rt.task(id)));
    }
    rt.wait_idle().await;
    let stats = rt.stats();
    let tasks = plans.len() as u64 + 1;
    assert_eq!(stats.submitted, tasks);
    assert_eq!(stats.succeeded + stats.failed + stats.cancelled, tasks);
    assert_eq!(stats.cancelled, plans.iter().filter(|p| p.cancel).count() as u64);
    assert_eq!(stats.retried, plans.iter().map(Plan::retried).sum::<u64>());
    assert_eq!((stats.pending, stats.running), (0, 0));
    assert_eq!(rt.load().0, 2.0, "every CPU was given back");
}

#[rustyray::actor]
pub struct Summer {
    sum: i64,
}

#[rustyray::actor]
impl Summer {
    pub fn new(start: i64) -> Self {
        Summer { sum: start }
    }

    pub fn add(&mut self, v: i64) -> i64 {
        self.sum += v;
        self.sum
    }

    pub fn boom(&mut self) -> i64 {
        panic!("boom at {}", self.sum)
    }
}

#[derive(Debug, PartialEq)]
enum CallOutcome {
    Sum(i64),
    Panicked,
    Died,
}

/// What a stream of calls (`None` = boom) gives, run one by one.
fn simulate(start: i64, calls: &[Option<i64>], max_restarts: u32) -> Vec<CallOutcome> {
    let (mut sum, mut restarts, mut dead) = (start, 0, false);
    calls
        .iter()
        .map(|call| {
            if dead {
                return CallOutcome::Died;
            }
            match call {
                Some(v) => {
                    sum += v;
                    CallOutcome::Sum(sum)
                }
                None => {
                    if restarts < max_restarts {
                        restarts += 1;
                        sum = start;
                    } else {
                        dead = true;
                    }
                    CallOutcome::Panicked
                }
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_that_panic_mid_stream_with_and_without_restarts() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let mut rng = Rng(0xac7);
    rt.scope(async {
        for (index, max_restarts) in [0u32, 0, 1, 2, 3, 5].into_iter().enumerate() {
            let start = index as i64 * 100;
            let calls: Vec<Option<i64>> =
                (0..300).map(|_| if rng.below(40) == 0 { None } else { Some(rng.below(10) as i64) }).collect();
            let actor = Summer::options().max_restarts(max_restarts).remote(start);
            let refs: Vec<ObjectRef<i64>> = calls
                .iter()
                .map(|c| match c {
                    Some(v) => actor.add(*v),
                    None => actor.boom(),
                })
                .collect();
            let mut got = Vec::new();
            for r in &refs {
                got.push(match tokio::time::timeout(Duration::from_secs(30), r.get()).await.expect("no get hangs") {
                    Ok(sum) => CallOutcome::Sum(sum),
                    Err(Error::TaskPanicked { .. }) => CallOutcome::Panicked,
                    Err(Error::ActorDied { .. }) => CallOutcome::Died,
                    Err(other) => panic!("unexpected error: {other}"),
                });
            }
            assert_eq!(got, simulate(start, &calls, max_restarts), "actor {index} with {max_restarts} restarts");
        }
    })
    .await;
}
