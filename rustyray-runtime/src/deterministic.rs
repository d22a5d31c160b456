//! Deterministic test mode: every task on one thread, in an order a seed
//! picks, on virtual time.
//!
//! [`Builder::deterministic`](crate::Builder::deterministic) asks for it and
//! [`Builder::run`](crate::Builder::run) runs a test body in it. The run owns a
//! tokio current-thread runtime whose clock is paused (tokio's `test-util`):
//! when nothing can run, tokio moves virtual time on to the next timer at
//! once, so timeouts, retry backoff and delayed starts take no real time and
//! fire in the same order every run. Everything runs as a local task on that
//! runtime's one thread: the manager's loop, async bodies, plain bodies (no
//! worker threads), and actors' calls (no actor threads; calls always go
//! through the manager, never by the direct path).
//!
//! The seed feeds one generator (splitmix64, `Det`), drawn from only on that
//! thread, so the draws come in the same order on a replay: the order in
//! which the tasks one dispatch released start, how often each task yields
//! before it starts and between its polls, and retry jitter. Ids come from a
//! range of the run's own ([`rustyray_core::ids::ThreadIds`]), and task
//! timestamps from the virtual clock (wall times count from the Unix epoch),
//! so the [`tasks`](crate::Runtime::tasks) history of a replay equals the
//! original's.
//!
//! [`check`] runs a body under many seeds (or the one `RUSTYRAY_SEED` names)
//! and prints the seed of a failing run. A run that can make no progress
//! (nothing runnable, no timer, something waiting) is a deadlock: every
//! waiting task fails with [`Error::Deadlock`] naming them all, and if the
//! body still waits, the run ends with that error.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustyray_core::Error;

/// The environment variable naming the one seed [`check`] runs.
pub const SEED_VAR: &str = "RUSTYRAY_SEED";

/// How long a deterministic run may sit idle, in virtual time, with no
/// timer due, before it counts as deadlocked: a virtual century.
#[cfg_attr(not(feature = "deterministic"), allow(dead_code))]
pub(crate) const DEADLOCK_AFTER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The seeded choices of a deterministic run.
#[derive(Debug)]
pub(crate) struct Det {
    /// splitmix64's state; only the run's one thread draws from it.
    state: AtomicU64,
}

impl Det {
    pub(crate) fn new(seed: u64) -> Self {
        Det { state: AtomicU64::new(seed) }
    }

    /// The next number (splitmix64).
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 if `n` is 0).
    pub(crate) fn below(&self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// A fraction in `[0, 1)`.
    pub(crate) fn fraction(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Puts `items` in an order the seed picks (Fisher-Yates).
    pub(crate) fn shuffle<T>(&self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// Yields to the run's other tasks a number of times the seed picks
    /// (none to three), so work released together starts in varied orders.
    pub(crate) async fn stagger(&self) {
        for _ in 0..self.below(4) {
            tokio::task::yield_now().await;
        }
    }

    /// Wraps a body's future: before each poll, it may yield instead (one
    /// time in four), so the seed also picks how bodies interleave at their
    /// await points.
    pub(crate) fn interleave<F: Future>(det: std::sync::Arc<Det>, future: F) -> Interleave<F> {
        Interleave { det, future: Box::pin(future) }
    }
}

/// A future that yields before some of its polls, as its run's seed picks.
pub(crate) struct Interleave<F> {
    det: std::sync::Arc<Det>,
    future: std::pin::Pin<Box<F>>,
}

impl<F: Future> Future for Interleave<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.det.below(4) == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.future.as_mut().poll(cx)
    }
}

/// Spawns `future` as a task of the run's one thread.
pub(crate) fn spawn<F: Future<Output = ()> + 'static>(future: F) -> tokio::task::AbortHandle {
    tokio::task::spawn_local(future).abort_handle()
}

/// The seed `RUSTYRAY_SEED` names, if it is set to a number.
pub fn seed_from_env() -> Option<u64> {
    std::env::var(SEED_VAR).ok().and_then(|value| value.trim().parse().ok())
}

/// Runs `test` once per seed, `0..seeds`, or only with the seed
/// `RUSTYRAY_SEED` names if it is set; `test` builds its deterministic
/// runtime from the seed it is given (see [`Builder::run`](crate::Builder::run)).
/// A run that panics (a failed assertion) has its seed printed to standard
/// error, with the command to replay it, and the panic goes on.
///
/// ```
/// use rustyray_runtime::{Runtime, deterministic};
///
/// deterministic::check(10, |seed| {
///     let out = Runtime::builder()
///         .deterministic(seed)
///         .run(|rt| async move { rt.put(21u32).get().await.map(|v| v * 2) })
///         .expect("the run completes");
///     assert_eq!(out.expect("the value is there"), 42);
/// });
/// ```
pub fn check(seeds: u64, test: impl Fn(u64)) {
    let seeds: Vec<u64> = match seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..seeds).collect(),
    };
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(seed))) {
            eprintln!("deterministic run failed with seed {seed}; replay it with {SEED_VAR}={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// The error a deadlocked run fails its waiting tasks with.
pub(crate) fn deadlock(seed: u64, waiting: &[String]) -> Error {
    let waiting = match waiting {
        [] => "the run's body still waits for something outside the runtime".to_string(),
        [one] => format!("{one} waits"),
        many => format!("{} wait", many.join(", ")),
    };
    Error::Deadlock { seed, waiting }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_draws_the_same_numbers_and_two_seeds_differ() {
        let draws = |seed| {
            let det = Det::new(seed);
            (0..8).map(|_| det.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn a_shuffle_keeps_every_item_and_fractions_stay_below_one() {
        let det = Det::new(3);
        let mut items: Vec<u32> = (0..20).collect();
        det.shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        assert!((0..1000).all(|_| (0.0..1.0).contains(&det.fraction())));
    }
}
