//! Deadlines that need no tokio timer.
//!
//! The runtime runs on a tokio runtime the application built, which may have
//! no timer (`enable_time` is optional), and tokio offers no way to ask
//! without creating a timer, which panics when there is none. So the
//! runtime's own deadlines (task timeouts, retry backoff, `wait`'s timeout)
//! do not use tokio's timer: one process-wide thread, started with the first
//! deadline, wakes whoever waits for one. A [`Sleep`] works in any executor,
//! on any thread, inside a tokio runtime or not.
//!
//! The thread sleeps on a condition variable until the earliest deadline (or
//! a new, earlier one), then wakes every sleeper whose deadline has passed.
//! A sleeper that is dropped unregisters itself; its place in the deadline
//! heap is skipped when reached, and the heap is rebuilt when such places
//! outnumber the live ones.
//!
//! [`Timers`] is the task manager's queue of timeouts and retries on top of
//! one [`Sleep`] for its earliest deadline.
//!
//! On the thread of a deterministic run (see `deterministic.rs`), time is
//! virtual: [`now`] reads tokio's paused clock and a [`Sleep`] is a tokio
//! sleep on it, which tokio ends as soon as nothing else can run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap;

thread_local! {
    /// Whether this thread runs a deterministic run, whose time is virtual.
    static VIRTUAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes time on this thread virtual until dropped (a deterministic run).
#[cfg_attr(not(feature = "deterministic"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct VirtualTime {
    was: bool,
}

#[cfg_attr(not(feature = "deterministic"), allow(dead_code))]
impl VirtualTime {
    pub(crate) fn enter() -> Self {
        VirtualTime { was: VIRTUAL.replace(true) }
    }
}

impl Drop for VirtualTime {
    fn drop(&mut self) {
        VIRTUAL.set(self.was);
    }
}

/// Whether time on this thread is virtual.
pub(crate) fn is_virtual() -> bool {
    VIRTUAL.get()
}

/// The current instant: tokio's paused clock on a deterministic run's thread,
/// else the monotonic clock.
#[inline]
pub(crate) fn now() -> Instant {
    #[cfg(feature = "deterministic")]
    if VIRTUAL.get() {
        return tokio::time::Instant::now().into_std();
    }
    Instant::now()
}

/// The sleepers and the thread that wakes them.
struct Clock {
    state: Mutex<State>,
    /// Wakes the thread when an earlier deadline arrives.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Deadlines, earliest first, with their sleepers' ids; an id no longer
    /// in `sleepers` is a place given up.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Live sleepers: their deadline and whom to wake.
    sleepers: FxHashMap<u64, (Instant, Waker)>,
    next_id: u64,
    /// Whether the thread is running.
    started: bool,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| Clock { state: Mutex::new(State::default()), changed: Condvar::new() })
}

/// Starts the timer thread if it is not running. Returns `false` if the
/// thread could not be started (deadlines then pass unnoticed until the
/// sleeper is polled again).
fn ensure_started(state: &mut State) -> bool {
    if state.started {
        return true;
    }
    let spawned = std::thread::Builder::new().name("rustyray-timer".into()).spawn(run);
    match spawned {
        Ok(_) => state.started = true,
        Err(error) => tracing::error!("rustyray could not start its timer thread: {error}"),
    }
    state.started
}

/// The timer thread.
fn run() {
    let clock = clock();
    let mut due = Vec::new();
    let mut state = clock.state.lock();
    loop {
        let now = Instant::now();
        while let Some(Reverse((deadline, id))) = state.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            state.deadlines.pop();
            // A sleeper whose deadline moved keeps its later place.
            if state.sleepers.get(&id).is_some_and(|(at, _)| *at <= now)
                && let Some((_, waker)) = state.sleepers.remove(&id)
            {
                due.push(waker);
            }
        }
        if !due.is_empty() {
            // Wake them without the lock: a woken task may poll at once.
            drop(state);
            for waker in due.drain(..) {
                waker.wake();
            }
            state = clock.state.lock();
            continue;
        }
        match state.deadlines.peek() {
            Some(Reverse((deadline, _))) => {
                let deadline = *deadline;
                clock.changed.wait_until(&mut state, deadline);
            }
            None => clock.changed.wait(&mut state),
        }
    }
}

/// A future that is ready once its deadline has passed. Needs no tokio timer.
#[derive(Debug)]
#[must_use = "a sleep does nothing unless polled"]
pub(crate) struct Sleep {
    deadline: Instant,
    /// Its id with the clock, once it has been polled and registered.
    id: Option<NonZeroU64>,
    /// On virtual time, tokio's sleep that stands for it.
    #[cfg(feature = "deterministic")]
    virtual_sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A [`Sleep`] for `duration` from now.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    Sleep::until(deadline(now(), duration))
}

/// `delay` after `from`, or a moment no deadline reaches if that is too far.
pub(crate) fn deadline(from: Instant, delay: Duration) -> Instant {
    from.checked_add(delay).unwrap_or_else(far_future)
}

/// A moment no deadline reaches (about thirty years from now).
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(86_400 * 365 * 30)).unwrap_or(now)
}

impl Sleep {
    /// A sleep until `deadline`.
    pub(crate) fn until(deadline: Instant) -> Sleep {
        #[cfg(feature = "deterministic")]
        let virtual_sleep =
            is_virtual().then(|| Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))));
        Sleep {
            deadline,
            id: None,
            #[cfg(feature = "deterministic")]
            virtual_sleep,
        }
    }

    /// Its deadline.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    fn unregister(&mut self) {
        if let Some(id) = self.id.take() {
            clock().state.lock().sleepers.remove(&id.get());
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        #[cfg(feature = "deterministic")]
        if let Some(sleep) = &mut self.virtual_sleep {
            return sleep.as_mut().poll(cx);
        }
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let clock = clock();
        let mut state = clock.state.lock();
        if let Some(id) = self.id
            && let Some((_, waker)) = state.sleepers.get_mut(&id.get())
        {
            if !waker.will_wake(cx.waker()) {
                waker.clone_from(cx.waker());
            }
            return Poll::Pending;
        }
        if !ensure_started(&mut state) {
            return Poll::Pending;
        }
        state.next_id += 1;
        let id = state.next_id;
        let earliest = state.deadlines.peek().is_none_or(|Reverse((first, _))| deadline < *first);
        state.sleepers.insert(id, (deadline, cx.waker().clone()));
        state.deadlines.push(Reverse((deadline, id)));
        if state.deadlines.len() > 64 && state.deadlines.len() > 2 * state.sleepers.len() {
            // Most places are given up: keep only the live ones.
            let live: Vec<Reverse<(Instant, u64)>> =
                state.sleepers.iter().map(|(id, (at, _))| Reverse((*at, *id))).collect();
            state.deadlines = BinaryHeap::from(live);
        }
        drop(state);
        self.id = NonZeroU64::new(id);
        if earliest {
            clock.changed.notify_one();
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Names a timer in [`Timers`], to remove it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
}

/// A queue of timers that fire at their deadlines, in deadline order, with
/// one [`Sleep`] for the earliest.
#[derive(Debug)]
pub(crate) struct Timers<T> {
    queue: BTreeMap<TimerKey, T>,
    next_seq: u64,
    sleep: Option<Sleep>,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers { queue: BTreeMap::new(), next_seq: 0, sleep: None }
    }
}

impl<T> Timers<T> {
    /// Adds `timer`, to fire at `deadline`.
    pub(crate) fn insert_at(&mut self, timer: T, deadline: Instant) -> TimerKey {
        let key = TimerKey { deadline, seq: self.next_seq };
        self.next_seq += 1;
        self.queue.insert(key, timer);
        key
    }

    /// Adds `timer`, to fire `delay` from now.
    pub(crate) fn insert(&mut self, timer: T, delay: Duration) -> TimerKey {
        self.insert_at(timer, deadline(now(), delay))
    }

    /// Removes a timer that has not fired (does nothing if it has).
    pub(crate) fn try_remove(&mut self, key: &TimerKey) {
        self.queue.remove(key);
    }

    /// Removes every timer.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.sleep = None;
    }

    /// The next timer whose deadline has passed; else `Pending`, and `cx`
    /// is woken at the earliest deadline (a timer added since must be polled
    /// for again, as the manager's loop does after every batch).
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        loop {
            let Some(first) = self.queue.first_entry() else {
                self.sleep = None;
                return Poll::Pending;
            };
            let deadline = first.key().deadline;
            if deadline <= now() {
                return Poll::Ready(first.remove());
            }
            let sleep = match &mut self.sleep {
                Some(sleep) if sleep.deadline() == deadline => sleep,
                slot => slot.insert(Sleep::until(deadline)),
            };
            if Pin::new(sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_end_at_their_deadlines_outside_any_runtime() {
        let started = Instant::now();
        futures::executor::block_on(async {
            sleep(Duration::from_millis(20)).await;
        });
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn many_sleepers_are_all_woken_and_dropped_ones_are_forgotten() {
        let dropped: Vec<Sleep> = (0..200).map(|i| sleep(Duration::from_secs(3600 + i))).collect();
        let mut polled = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        for mut s in dropped {
            assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
            polled.push(s);
        }
        drop(polled);
        futures::executor::block_on(futures::future::join_all((0..50).map(|i| sleep(Duration::from_millis(i % 5)))));
        let state = clock().state.lock();
        assert!(state.sleepers.len() < 200, "dropped sleepers unregister");
    }

    #[test]
    fn timers_fire_in_deadline_order_and_removed_ones_never() {
        let mut timers = Timers::default();
        let now = Instant::now();
        timers.insert_at("second", now + Duration::from_millis(10));
        let removed = timers.insert_at("never", now + Duration::from_millis(5));
        timers.insert_at("first", now);
        timers.try_remove(&removed);
        let fired = futures::executor::block_on(async {
            let mut fired = Vec::new();
            while fired.len() < 2 {
                fired.push(std::future::poll_fn(|cx| timers.poll_expired(cx)).await);
            }
            fired
        });
        assert_eq!(fired, ["first", "second"]);
    }
}
