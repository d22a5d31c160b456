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
//! ([`ActorSlot::push_direct`]) and tells the manager afterwards: the call
//! starts without waiting for the manager's thread. Calls never overtake one
//! another: the manager allows direct calls only while nothing waits in its
//! line, and a call sent through the manager ([`ActorSlot::route`]) holds
//! direct calls back until the manager has released it.
//!
//! `&mut self` calls run alone. Up to `max_concurrency` `&self` async calls
//! may interleave; a call that needs the state to itself waits until they are
//! done. A panic in a method is a crash: the state is dropped, the slot halts
//! (no further calls start) and the manager decides on a restart.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustyray_core::{ActorInstance, ActorMethod, TaskBody, TaskId};
use tokio::sync::Notify;

use super::thread::run;
use crate::executor::Exec;
use crate::task::Start;

/// Where an actor's released calls wait, and its state while it is idle.
pub(crate) struct ActorSlot {
    inner: Mutex<SlotInner>,
    /// Wakes the actor's thread while it drives async calls.
    pub(super) arrived: Notify,
    /// Wakes the actor's thread while it lingers, waiting for a call.
    arrived_idle: Condvar,
    pub(super) max_concurrency: usize,
    /// How often a call lost in a crash is retried (for direct calls' attempts).
    max_task_retries: u32,
    /// Whether the actor holds CPUs, which its calls give back while they wait.
    pub(super) holds_cpus: bool,
}

#[derive(Default)]
struct SlotInner {
    calls: VecDeque<Start>,
    /// The state, while no thread holds it.
    parked: Option<ActorInstance>,
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

impl ActorSlot {
    pub(crate) fn new(max_concurrency: usize, max_task_retries: u32, holds_cpus: bool) -> Arc<Self> {
        Arc::new(ActorSlot {
            inner: Mutex::default(),
            arrived: Notify::new(),
            arrived_idle: Condvar::new(),
            max_concurrency,
            max_task_retries,
            holds_cpus,
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
        let activate = {
            let mut inner = self.inner.lock();
            inner.routed = inner.routed.saturating_sub(unrouted);
            if let Some(direct) = direct {
                inner.direct = direct;
            }
            if starts.is_empty() {
                return;
            }
            inner.calls.extend(starts);
            let activate = !inner.active && !inner.halted && !inner.killed;
            inner.active |= activate;
            activate
        };
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
        {
            let mut inner = self.inner.lock();
            // An idle actor has no thread: starting one per call costs more
            // than the manager's path, which starts it once for a batch.
            if !inner.direct || inner.routed > 0 || !inner.active || inner.halted || inner.killed {
                inner.routed += 1;
                return false;
            }
            let Some(start) = hand_over() else { return true };
            inner.calls.push_back(start);
        };
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
        let activate = {
            let mut inner = self.inner.lock();
            inner.halted = false;
            // Calls that were waiting go first: the manager allows direct
            // calls again once its line is empty.
            inner.direct = false;
            let activate = !inner.active && !inner.killed && !inner.calls.is_empty();
            inner.active |= activate;
            activate
        };
        if activate {
            self.activate(exec);
        }
    }

    fn activate(self: &Arc<Self>, exec: &Exec) {
        let slot = self.clone();
        let exec_for_thread = exec.clone();
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
        let ended = {
            let mut inner = self.inner.lock();
            inner.killed = true;
            (inner.calls.drain(..).collect(), inner.parked.take())
        };
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

    /// The actor thread's side: the next call, or give the state back and stop.
    pub(super) fn next(&self, instance: &mut Option<ActorInstance>) -> Option<Start> {
        let mut inner = self.inner.lock();
        if !inner.halted
            && !inner.killed
            && let Some(call) = inner.calls.pop_front()
        {
            return Some(call);
        }
        inner.active = false;
        if !inner.killed {
            inner.parked = instance.take();
        }
        None
    }

    /// The next call, if it may join the `&self` async calls in flight.
    pub(super) fn next_shared(&self) -> Option<Start> {
        let mut inner = self.inner.lock();
        let joins = !inner.halted
            && !inner.killed
            && inner.calls.front().is_some_and(|call| matches!(call.body, TaskBody::Method(ActorMethod::AsyncRef(_))));
        if joins { inner.calls.pop_front() } else { None }
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
