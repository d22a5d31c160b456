//! An actor's slot: where its released calls wait, and its state while it is idle.
//!
//! An actor's calls wait in its [`ActorSlot`], in the order the manager
//! released them. While calls are waiting the actor is *active*: one blocking
//! thread holds its state and runs the calls one after another, so a burst of
//! calls costs one thread hand-off, and plain methods never block a tokio
//! worker. Plain methods (and constructors) run on that thread as any plain
//! task body does, outside the tokio runtime's context, so they may block:
//! `get_blocking` on a task, another actor's call, a blocking channel. Async
//! methods are driven on the same thread inside the tokio runtime (one
//! `block_on` for a run of consecutive async calls). While a call waits for an
//! object, the CPUs the actor holds are given back, as a plain task's are.
//! When the slot is empty the state is parked in the slot and the thread goes
//! back to the pool: an idle actor costs memory, not a thread.
//!
//! A call usually reaches the slot from the manager, which releases each
//! actor's line in order. While the manager's line for an actor is empty, a
//! caller whose call has its arguments ready leaves it in the slot itself
//! ([`ActorSlot::push_direct`]): the call starts without waiting for the
//! manager's thread, which hears of it from the caller or, for a call
//! without options, from the actor's thread (see `actor::direct`). Calls
//! never overtake one another: the manager allows direct calls only while
//! nothing waits in its line, and a call sent through the manager
//! ([`ActorSlot::route`]) holds direct calls back until the manager has
//! released it.
//!
//! `&mut self` calls run alone. `&self` async calls may interleave, up to the
//! limit of their concurrency group ([`Limits`]: the default group's is
//! `max_concurrency`); a call whose group is full lets later calls of other
//! groups start, and calls of one group start in order. A call that needs the
//! state to itself waits until the interleaved ones are done. A panic in a method is a crash: the state is dropped, the slot halts
//! (no further calls start) and the manager decides on a restart.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustyray_core::{ActorId, ActorInstance, ActorMethod, ActorOptions, TaskBody, TaskId};
use tokio::sync::Notify;

use super::direct::OnTheirWay;
use super::thread::{run, run_here};
use crate::executor::Exec;
use crate::task::Start;

/// Where an actor's released calls wait, and its state while it is idle.
pub(crate) struct ActorSlot {
    /// The actor whose calls it holds (named in its crash reports).
    pub(super) actor: ActorId,
    inner: Mutex<SlotInner>,
    /// Wakes the actor's thread while it drives async calls.
    pub(super) arrived: Notify,
    /// Wakes the actor's thread while it lingers, waiting for a call.
    arrived_idle: Condvar,
    /// How many `&self` async calls of each concurrency group may interleave.
    pub(super) limits: Limits,
    /// How often a call lost in a crash is retried (for direct calls' attempts).
    max_task_retries: u32,
    /// Whether the actor holds CPUs, which its calls give back while they wait.
    pub(super) holds_cpus: bool,
    /// Direct calls left here with their entries that the manager has not
    /// heard of yet (see `actor::direct`).
    pub(crate) unannounced: OnTheirWay,
}

/// The slot's hand-off state: which calls wait, whether a thread runs the
/// actor, where its state is. Every decision about starting, feeding and
/// parking the actor's thread is a method here, made under the slot's lock;
/// generic over the call `C` and the state `S` so the loom model in
/// [`tests`] drives this same code.
pub(super) struct SlotInner<C = Start, S = ActorInstance> {
    calls: VecDeque<C>,
    /// The state, while no thread holds it.
    parked: Option<S>,
    /// Whether a thread is running the actor.
    active: bool,
    /// Whether calls may start (false after a crash, until the manager resumes it).
    halted: bool,
    /// Whether the actor was ended: its state is dropped, not parked.
    killed: bool,
    /// Whether callers may leave calls here directly: the actor is alive
    /// and nothing waits in the manager's line for it (set by the manager).
    direct: bool,
    /// Calls sent through the manager that it has not released yet: direct
    /// calls wait for them, to keep each caller's calls in order.
    routed: usize,
}

impl<C, S> Default for SlotInner<C, S> {
    fn default() -> Self {
        SlotInner {
            calls: VecDeque::new(),
            parked: None,
            active: false,
            halted: false,
            killed: false,
            direct: false,
            routed: 0,
        }
    }
}

impl<C, S> SlotInner<C, S> {
    /// The manager releases `starts`: returns `None` if there are none (no
    /// wake-up needed), else whether the caller must start a thread for the
    /// actor (then marked active).
    fn release(&mut self, starts: Vec<C>, unrouted: usize, direct: Option<bool>) -> Option<bool> {
        self.routed = self.routed.saturating_sub(unrouted);
        if let Some(direct) = direct {
            self.direct = direct;
        }
        if starts.is_empty() {
            return None;
        }
        self.calls.extend(starts);
        let activate = !self.active && !self.halted && !self.killed;
        self.active |= activate;
        Some(activate)
    }

    /// A caller's direct call: queued (`true`) only while a thread runs the
    /// actor, direct calls are allowed and none sent through the manager is
    /// on its way; else counted as routed (`false`).
    fn push_direct(&mut self, hand_over: impl FnOnce() -> Option<C>) -> bool {
        // An idle actor has no thread: starting one per call costs more
        // than the manager's path, which starts it once for a batch.
        if !self.direct || self.routed > 0 || !self.active || self.halted || self.killed {
            self.routed += 1;
            return false;
        }
        if let Some(start) = hand_over() {
            self.calls.push_back(start);
        }
        true
    }

    /// Lets calls start again after a crash: whether to start a thread.
    fn resume(&mut self) -> bool {
        self.halted = false;
        // Calls that were waiting go first: the manager allows direct
        // calls again once its line is empty.
        self.direct = false;
        let activate = !self.active && !self.killed && !self.calls.is_empty();
        self.active |= activate;
        activate
    }

    /// Ends the actor: the calls that had not started, and the state if it
    /// was parked (else the thread that holds it drops it).
    fn kill(&mut self) -> (Vec<C>, Option<S>) {
        self.killed = true;
        (self.calls.drain(..).collect(), self.parked.take())
    }

    /// The actor thread's side: the next call, or give the state back and
    /// stop (the slot is then inactive).
    fn next(&mut self, instance: &mut Option<S>) -> Option<C> {
        if !self.halted
            && !self.killed
            && let Some(call) = self.calls.pop_front()
        {
            return Some(call);
        }
        self.active = false;
        if !self.killed {
            self.parked = instance.take();
        }
        None
    }
}

impl ActorSlot {
    pub(crate) fn new(actor: ActorId, options: &ActorOptions, holds_cpus: bool) -> Arc<Self> {
        Arc::new(ActorSlot {
            actor,
            inner: Mutex::default(),
            arrived: Notify::new(),
            arrived_idle: Condvar::new(),
            limits: Limits::new(options),
            max_task_retries: options.max_task_retries,
            holds_cpus,
            unannounced: OnTheirWay::default(),
        })
    }

    /// Wakes the actor's thread, whatever it is doing.
    fn wake(&self) {
        self.arrived.notify_one();
        self.arrived_idle.notify_one();
    }

    /// How often a call lost in a crash is retried.
    pub(crate) fn max_task_retries(&self) -> u32 {
        self.max_task_retries
    }

    /// Queues a call (or the constructor); starts a thread for the actor if
    /// none runs it.
    pub(crate) fn push(self: &Arc<Self>, exec: &Exec, start: Start) {
        self.release(exec, vec![start], 0, None);
    }

    /// The manager releases calls from its line, in order, with one wake-up
    /// of the actor's thread: `unrouted` of them were counted by
    /// [`route`](Self::route); `direct` (if given) says whether callers may
    /// now leave calls here themselves.
    pub(crate) fn release(self: &Arc<Self>, exec: &Exec, starts: Vec<Start>, unrouted: usize, direct: Option<bool>) {
        let Some(activate) = self.inner.lock().release(starts, unrouted, direct) else { return };
        self.wake();
        if activate {
            self.activate(exec);
        }
    }

    /// A caller's call, with its arguments ready: if the actor's thread runs,
    /// the manager allows direct calls and none sent through it is still on its way, `hand_over` tells
    /// the manager about the call (before the actor can report on it) and
    /// returns its attempt, which is queued here; returns `true` then. Else
    /// the call is counted as sent through the manager and `false` returned.
    pub(crate) fn push_direct(&self, hand_over: impl FnOnce() -> Option<Start>) -> bool {
        if !self.inner.lock().push_direct(hand_over) {
            return false;
        }
        self.wake();
        true
    }

    /// Counts a call sent through the manager: direct calls wait until the
    /// manager has released it (or it ended), see [`release`](Self::release).
    pub(crate) fn route(&self) {
        self.inner.lock().routed += 1;
    }

    /// A call counted by [`route`](Self::route) ended without being released.
    pub(crate) fn unroute(&self) {
        let mut inner = self.inner.lock();
        inner.routed = inner.routed.saturating_sub(1);
    }

    /// Lets calls start again after a crash, and starts a thread if calls wait.
    pub(crate) fn resume(self: &Arc<Self>, exec: &Exec) {
        let activate = self.inner.lock().resume();
        if activate {
            self.activate(exec);
        }
    }

    fn activate(self: &Arc<Self>, exec: &Exec) {
        let slot = self.clone();
        let exec_for_thread = exec.clone();
        if exec.det.is_some() {
            // A deterministic run: a local task of its one thread, not a thread.
            drop(crate::deterministic::spawn(run_here(exec_for_thread, slot)));
            return;
        }
        drop(exec.handle().spawn_blocking(move || run(&exec_for_thread, &slot)));
    }

    /// Takes back every call that has not started, in order.
    pub(crate) fn take_waiting(&self) -> Vec<Start> {
        self.inner.lock().calls.drain(..).collect()
    }

    /// Takes back one call that has not started.
    pub(crate) fn retract(&self, task: TaskId) -> Option<Start> {
        let mut inner = self.inner.lock();
        let index = inner.calls.iter().position(|call| call.task == task)?;
        inner.calls.remove(index)
    }

    /// Marks the actor as ended, at once, from the thread that kills it: no
    /// call starts any more and callers no longer leave calls here (the
    /// manager then fails every call that had not started, see
    /// [`kill`](Self::kill)). Its thread, if it runs, drops the state and
    /// returns once the running call (if any) is done.
    pub(crate) fn mark_killed(&self) {
        {
            let mut inner = self.inner.lock();
            inner.killed = true;
            inner.direct = false;
        }
        self.wake();
    }

    /// Ends the actor: no call starts any more. Returns the calls that had
    /// not started, and the state if the actor was idle (else its thread
    /// drops the state when the running call returns). The caller drops the
    /// state where a user's `Drop` may run: not on the manager's thread, nor
    /// under its lock, since that `Drop` may call back into the runtime.
    pub(crate) fn kill(&self) -> (Vec<Start>, Option<ActorInstance>) {
        let ended = self.inner.lock().kill();
        self.wake();
        ended
    }

    /// The actor thread's side, idle: waits up to `linger` for a call (or
    /// for the actor to end).
    pub(super) fn linger(&self, linger: Duration) {
        let deadline = Instant::now() + linger;
        let mut inner = self.inner.lock();
        while inner.calls.is_empty() && !inner.killed {
            if self.arrived_idle.wait_until(&mut inner, deadline).timed_out() {
                break;
            }
        }
    }

    /// The actor thread's side: the next call, if one may start now.
    pub(super) fn try_next(&self) -> Option<Start> {
        let mut inner = self.inner.lock();
        if inner.halted || inner.killed { None } else { inner.calls.pop_front() }
    }

    /// The actor thread's side, its slot empty: looks for a call for up to
    /// `spin`, yielding the CPU between looks (to the caller, if they share
    /// it), without sleeping.
    pub(super) fn spin(&self, spin: Duration) -> Option<Start> {
        let deadline = Instant::now() + spin;
        loop {
            std::thread::yield_now();
            {
                let mut inner = self.inner.lock();
                if inner.halted || inner.killed {
                    return None;
                }
                if let Some(call) = inner.calls.pop_front() {
                    return Some(call);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The actor thread's side: the next call, or give the state back and stop.
    pub(super) fn next(&self, instance: &mut Option<ActorInstance>) -> Option<Start> {
        self.inner.lock().next(instance)
    }

    /// The next call, if it may join the `&self` async calls in flight.
    pub(super) fn next_shared(&self, room: impl Fn(usize) -> bool) -> Option<(Start, usize)> {
        // Every group full (the usual case while a burst runs): nothing to
        // look for, and a look would walk the whole line.
        if !(0..self.limits.len()).any(&room) {
            return None;
        }
        let mut inner = self.inner.lock();
        if inner.halted || inner.killed {
            return None;
        }
        // The first `&self` async call whose group has room; a call of any
        // other kind ends the search (it waits for the interleaved calls, and
        // nothing overtakes it).
        let mut pick = None;
        for (at, call) in inner.calls.iter().enumerate() {
            let TaskBody::Method(ActorMethod::AsyncRef(method)) = &call.body else { break };
            let group = self.limits.index(method.group);
            if room(group) {
                pick = Some((at, group));
                break;
            }
        }
        let (at, group) = pick?;
        inner.calls.remove(at).map(|call| (call, group))
    }

    pub(super) fn take_parked(&self) -> Option<ActorInstance> {
        self.inner.lock().parked.take()
    }

    pub(super) fn halt(&self) {
        let mut inner = self.inner.lock();
        inner.halted = true;
        inner.direct = false;
    }
}

/// The limits on an actor's interleaved `&self` async calls, by concurrency
/// group: index 0 is the default group (`max_concurrency`), then the named
/// groups in the order the actor declares them.
pub(crate) struct Limits {
    named: Box<[(&'static str, usize)]>,
    default: usize,
}

impl Limits {
    fn new(options: &ActorOptions) -> Self {
        Limits {
            named: options.concurrency_groups.iter().map(|g| (g.name, g.max_concurrency)).collect(),
            default: options.max_concurrency,
        }
    }

    /// How many groups there are, the default one included.
    pub(super) fn len(&self) -> usize {
        self.named.len() + 1
    }

    /// The index of the group a method names (`None`: the default group).
    /// The generated code names only declared groups; any other name falls
    /// back to the default group.
    pub(super) fn index(&self, group: Option<&str>) -> usize {
        group.and_then(|name| self.named.iter().position(|(n, _)| *n == name)).map_or(0, |at| at + 1)
    }

    /// How many calls of group `index` may run at once.
    pub(super) fn limit(&self, index: usize) -> usize {
        index.checked_sub(1).and_then(|at| self.named.get(at)).map_or(self.default, |(_, calls)| *calls)
    }

    /// Whether `&self` async calls ever run together.
    pub(super) fn interleave(&self) -> bool {
        self.default > 1 || !self.named.is_empty()
    }
}

#[cfg(test)]
mod limits_tests {
    use rustyray_core::ConcurrencyGroup;

    use super::*;

    #[test]
    fn groups_are_indexed_after_the_default_one() {
        let options = ActorOptions {
            max_concurrency: 3,
            concurrency_groups: vec![
                ConcurrencyGroup { name: "io", max_concurrency: 2 },
                ConcurrencyGroup { name: "health", max_concurrency: 1 },
            ],
            ..ActorOptions::default()
        };
        let limits = Limits::new(&options);
        assert_eq!(limits.len(), 3);
        assert_eq!(limits.index(None), 0);
        assert_eq!(limits.index(Some("io")), 1);
        assert_eq!(limits.index(Some("health")), 2);
        assert_eq!(limits.index(Some("unknown")), 0);
        assert_eq!((limits.limit(0), limits.limit(1), limits.limit(2)), (3, 2, 1));
        assert!(limits.interleave());
        assert!(!Limits::new(&ActorOptions::default()).interleave());
    }
}

/// A loom model of the hand-off: the manager releasing calls, a caller
/// leaving one directly and the actor's threads taking and parking, all
/// through [`SlotInner`]'s own methods. Run it with
/// `RUSTFLAGS="--cfg rustyray_loom" cargo test -p rustyray-runtime --no-default-features --lib loom`.
#[cfg(all(test, rustyray_loom))]
mod tests {
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::SlotInner;

    struct Model {
        inner: Mutex<SlotInner<u32, &'static str>>,
        /// Whether an actor thread holds the state now.
        running: AtomicBool,
        /// Calls run, as a bit set.
        ran: AtomicUsize,
    }

    /// The actor thread: takes the state, runs calls until none is left,
    /// parks the state, as `thread::run` does. Returns whether it still
    /// held the state at the end (the actor was killed: it drops it).
    fn actor_thread(model: &Model) -> bool {
        assert!(!model.running.swap(true, Ordering::SeqCst), "two threads ran the actor at once");
        let mut state = {
            let mut inner = model.inner.lock().unwrap();
            // A kill before the thread starts takes the state itself.
            assert!(inner.parked.is_some() || inner.killed, "a thread started without the actor's state");
            inner.parked.take()
        };
        loop {
            let mut inner = model.inner.lock().unwrap();
            match inner.next(&mut state) {
                Some(call) => {
                    drop(inner);
                    let before = model.ran.fetch_or(1 << call, Ordering::SeqCst);
                    assert_eq!(before & (1 << call), 0, "call {call} ran twice");
                }
                None => {
                    // Cleared under the lock that made the slot inactive, so a
                    // thread started after this one sees it cleared.
                    model.running.store(false, Ordering::SeqCst);
                    return state.is_some();
                }
            }
        }
    }

    fn spawn_if(model: &Arc<Model>, activate: bool, threads: &mut Vec<thread::JoinHandle<bool>>) {
        if activate {
            let model = model.clone();
            threads.push(thread::spawn(move || actor_thread(&model)));
        }
    }

    #[test]
    fn loom_handoff_runs_every_call_once_on_one_thread_at_a_time() {
        loom::model(|| {
            let model = Arc::new(Model {
                inner: Mutex::new(SlotInner { parked: Some("state"), ..SlotInner::default() }),
                running: AtomicBool::new(false),
                ran: AtomicUsize::new(0),
            });
            let mut threads = Vec::new();
            // The manager releases call 0 and allows direct calls.
            let activate = model.inner.lock().unwrap().release(vec![0], 0, Some(true));
            spawn_if(&model, activate == Some(true), &mut threads);
            // A caller leaves call 1 directly, or routes it to the manager.
            let caller = {
                let model = model.clone();
                thread::spawn(move || model.inner.lock().unwrap().push_direct(|| Some(1)))
            };
            let direct = caller.join().unwrap();
            // A routed call reaches the slot through the manager.
            if !direct {
                let activate = model.inner.lock().unwrap().release(vec![1], 1, None);
                spawn_if(&model, activate == Some(true), &mut threads);
            }
            for thread in threads {
                assert!(!thread.join().unwrap(), "a live actor's thread kept its state");
            }
            let inner = model.inner.lock().unwrap();
            assert_eq!(model.ran.load(Ordering::SeqCst), 0b11, "a call was lost");
            assert!(!inner.active && inner.calls.is_empty(), "the slot was left active or with calls");
            assert_eq!(inner.parked, Some("state"), "the state was not parked");
            assert_eq!(inner.routed, 0, "a routed call was never released");
        });
    }

    #[test]
    fn loom_kill_takes_each_call_and_the_state_exactly_once() {
        loom::model(|| {
            let model = Arc::new(Model {
                inner: Mutex::new(SlotInner { parked: Some("state"), ..SlotInner::default() }),
                running: AtomicBool::new(false),
                ran: AtomicUsize::new(0),
            });
            let mut threads = Vec::new();
            let activate = model.inner.lock().unwrap().release(vec![0, 1], 0, None);
            spawn_if(&model, activate == Some(true), &mut threads);
            let killer = {
                let model = model.clone();
                thread::spawn(move || model.inner.lock().unwrap().kill())
            };
            let (taken, state) = killer.join().unwrap();
            let mut dropped_by_thread = false;
            for thread in threads {
                dropped_by_thread |= thread.join().unwrap();
            }
            let mut calls = model.ran.load(Ordering::SeqCst);
            for call in taken {
                assert_eq!(calls & (1 << call), 0, "call {call} both ran and was taken back");
                calls |= 1 << call;
            }
            assert_eq!(calls, 0b11, "a call neither ran nor was taken back");
            assert!(state.is_some() != dropped_by_thread, "the state must end in exactly one place");
            let inner = model.inner.lock().unwrap();
            assert!(inner.parked.is_none() && !inner.active, "a killed actor parked its state or stayed active");
        });
    }
}
