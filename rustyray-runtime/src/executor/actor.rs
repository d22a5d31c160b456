//! Running actors.
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
use std::panic::{AssertUnwindSafe, catch_unwind};

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use parking_lot::{Condvar, Mutex};
use rustyray_core::context::{self, TaskContext};
use rustyray_core::{ActorInstance, ActorMethod, BodyResult, LocalBodyFuture, TaskBody, TaskError, TaskId};
use tokio::sync::Notify;

use super::{Handoff, Report, Start, report};
use crate::manager::{Finished, Msg};
use crate::runtime::Shared;

/// How long an active actor runs calls before it hands its reports to the manager.
const REPORT_EVERY: Duration = Duration::from_micros(100);

/// How long an actor whose slot ran empty keeps its thread, waiting for the
/// next call, before it parks its state: back-to-back callers (a call, its
/// result, the next call) then never wait for a thread.
const LINGER: Duration = Duration::from_millis(1);

/// Where an actor's released calls wait, and its state while it is idle.
pub(crate) struct ActorSlot {
    inner: Mutex<SlotInner>,
    /// Wakes the actor's thread while it drives async calls.
    arrived: Notify,
    /// Wakes the actor's thread while it lingers, waiting for a call.
    arrived_idle: Condvar,
    max_concurrency: usize,
    /// How often a call lost in a crash is retried (for direct calls' attempts).
    max_task_retries: u32,
    /// Whether the actor holds CPUs, which its calls give back while they wait.
    holds_cpus: bool,
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
    pub(crate) fn push(self: &Arc<Self>, shared: &Arc<Shared>, start: Start) {
        self.release(shared, vec![start], 0, None);
    }

    /// The manager releases calls from its line, in order, with one wake-up
    /// of the actor's thread: `unrouted` of them were counted by
    /// [`route`](Self::route); `direct` (if given) says whether callers may
    /// now leave calls here themselves.
    pub(crate) fn release(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        starts: Vec<Start>,
        unrouted: usize,
        direct: Option<bool>,
    ) {
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
            self.activate(shared);
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
    pub(crate) fn resume(self: &Arc<Self>, shared: &Arc<Shared>) {
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
            self.activate(shared);
        }
    }

    fn activate(self: &Arc<Self>, shared: &Arc<Shared>) {
        let slot = self.clone();
        let shared_for_thread = shared.clone();
        drop(shared.handle().spawn_blocking(move || run(&shared_for_thread, &slot)));
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
    fn linger(&self, linger: Duration) {
        let deadline = Instant::now() + linger;
        let mut inner = self.inner.lock();
        while inner.calls.is_empty() && !inner.killed {
            if self.arrived_idle.wait_until(&mut inner, deadline).timed_out() {
                break;
            }
        }
    }

    /// The actor thread's side: the next call, if one may start now.
    fn try_next(&self) -> Option<Start> {
        let mut inner = self.inner.lock();
        if inner.halted || inner.killed { None } else { inner.calls.pop_front() }
    }

    /// The actor thread's side: the next call, or give the state back and stop.
    fn next(&self, instance: &mut Option<ActorInstance>) -> Option<Start> {
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
    fn next_shared(&self) -> Option<Start> {
        let mut inner = self.inner.lock();
        let joins = !inner.halted
            && !inner.killed
            && inner.calls.front().is_some_and(|call| matches!(call.body, TaskBody::Method(ActorMethod::AsyncRef(_))));
        if joins { inner.calls.pop_front() } else { None }
    }

    fn take_parked(&self) -> Option<ActorInstance> {
        self.inner.lock().parked.take()
    }

    fn halt(&self) {
        let mut inner = self.inner.lock();
        inner.halted = true;
        inner.direct = false;
    }
}

/// Collects an active actor's reports and hands them over in batches.
struct Reporter<'a> {
    shared: &'a Shared,
    reports: Vec<Report>,
    /// When the oldest report not yet handed over was made.
    since: Instant,
}

impl Reporter<'_> {
    /// Adds the report of an attempt that ended at `ended`.
    fn push(&mut self, report: Report, ended: Instant) {
        if self.reports.is_empty() {
            self.since = ended;
        }
        self.reports.push(report);
        if ended.saturating_duration_since(self.since) > REPORT_EVERY {
            self.flush();
        }
    }

    fn finished(&mut self, finished: Finished) {
        let ended = finished.ended;
        self.push(Report::Finished(finished), ended);
    }

    fn flush(&mut self) {
        if !self.reports.is_empty() {
            let _ = self.shared.send(Msg::Reports(std::mem::take(&mut self.reports)));
        }
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// An actor's thread: runs calls until the slot is empty, halted or killed.
fn run(shared: &Arc<Shared>, slot: &Arc<ActorSlot>) {
    let mut instance = slot.take_parked();
    let mut reporter = Reporter { shared, reports: Vec::new(), since: Instant::now() };
    // A call taken from the slot by a run of async calls that it ended.
    let mut taken: Option<Start> = None;
    loop {
        let start = match taken.take().or_else(|| slot.try_next()) {
            Some(start) => start,
            None => {
                // Hand over what happened so far, then wait a moment for
                // more calls before giving the thread back.
                reporter.flush();
                slot.linger(LINGER);
                match slot.next(&mut instance) {
                    Some(start) => start,
                    None => break,
                }
            }
        };
        match &start.body {
            TaskBody::Construct(construct) => {
                let started = Instant::now();
                let built = {
                    let _entered = context::enter(call_context(shared, slot, &start));
                    let _span = start.span.enter();
                    catch_unwind(AssertUnwindSafe(|| construct(start.attempt)))
                        .unwrap_or_else(|payload| Err(crate::panic::into_error(payload)))
                };
                let outcome = match built {
                    Ok(state) => {
                        instance = Some(state);
                        Ok(std::sync::Arc::new(()) as rustyray_core::Value)
                    }
                    Err(error) => {
                        // No state: no call may start until the manager decides.
                        slot.halt();
                        Err(error)
                    }
                };
                reporter.finished(report(start, outcome, started, Handoff::None));
                reporter.flush();
            }
            TaskBody::Method(method) => {
                let method = method.clone();
                let Some(state) = instance.as_mut() else {
                    // No state: the constructor failed; the manager fails the call.
                    let started = Instant::now();
                    let error = TaskError::Error(rustyray_core::Error::NotReady { object: start.output.id() });
                    reporter.finished(report(start, Err(error), started, Handoff::None));
                    continue;
                };
                let crash = match method {
                    ActorMethod::Mut(body) => {
                        run_plain(shared, slot, start, &mut reporter, |attempt| body(attempt, &mut **state))
                    }
                    ActorMethod::Ref(body) => {
                        run_plain(shared, slot, start, &mut reporter, |attempt| body(attempt, &**state))
                    }
                    ActorMethod::AsyncMut(_) | ActorMethod::AsyncRef(_) => {
                        let handle = shared.handle().clone();
                        let (crash, next) = handle.block_on(run_async(shared, slot, start, state, &mut reporter));
                        taken = next;
                        crash
                    }
                };
                if let Some((culprit, lost)) = crash {
                    // A panic may have left the state half-updated: it goes,
                    // no further call starts, and the manager decides
                    // whether to rebuild it (and resumes the slot if so).
                    slot.halt();
                    let state = instance.take();
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(state)));
                    let ended = culprit.ended;
                    reporter.push(Report::Crashed(culprit, lost), ended);
                    reporter.flush();
                }
            }
            TaskBody::Blocking(_) | TaskBody::Async(_) => {}
        }
    }
}

fn call_context(shared: &Arc<Shared>, slot: &ActorSlot, start: &Start) -> TaskContext {
    TaskContext {
        runner: shared.clone(),
        task: Some(start.task),
        releases_on_wait: slot.holds_cpus,
        blocking_thread: true,
    }
}

fn is_async_method(start: &Start) -> bool {
    matches!(start.body, TaskBody::Method(ActorMethod::AsyncMut(_) | ActorMethod::AsyncRef(_)))
}

/// Runs a plain method on this thread, as a plain task body runs; returns
/// the crash if it panicked.
fn run_plain(
    shared: &Arc<Shared>,
    slot: &ActorSlot,
    start: Start,
    reporter: &mut Reporter<'_>,
    body: impl FnOnce(rustyray_core::Attempt) -> BodyResult,
) -> Option<Crash> {
    let started = Instant::now();
    let outcome = {
        let _entered = context::enter(call_context(shared, slot, &start));
        let attempt = start.attempt;
        start.span.in_scope(|| catch(|| body(attempt)))
    };
    settle(start, outcome, started, reporter)
}

/// Reports a call run alone; returns the crash if it panicked.
fn settle(start: Start, outcome: BodyResult, started: Instant, reporter: &mut Reporter<'_>) -> Option<Crash> {
    let crashed = matches!(outcome, Err(TaskError::Panicked { .. }));
    let finished = report(start, outcome, started, Handoff::None);
    if crashed {
        Some((finished, Vec::new()))
    } else {
        reporter.finished(finished);
        None
    }
}

/// Drives async calls, starting with `first`, for as long as the next call
/// in the slot is async too; returns the crash if one panicked, and the
/// plain call it took from the slot, if any, for the caller to run.
async fn run_async(
    shared: &Arc<Shared>,
    slot: &ActorSlot,
    first: Start,
    state: &mut ActorInstance,
    reporter: &mut Reporter<'_>,
) -> (Option<Crash>, Option<Start>) {
    let mut start = first;
    loop {
        let TaskBody::Method(method) = &start.body else { return (None, Some(start)) };
        let method = method.clone();
        let crash = match method {
            ActorMethod::AsyncRef(_) if slot.max_concurrency > 1 => {
                run_shared_phase(shared, slot, start, &**state, reporter).await
            }
            ActorMethod::AsyncMut(body) => {
                let ctx = call_context(shared, slot, &start);
                let (attempt, started) = (start.attempt, Instant::now());
                let outcome = drive(ctx, start.span.clone(), || body(attempt, &mut **state)).await;
                settle(start, outcome, started, reporter)
            }
            ActorMethod::AsyncRef(body) => {
                let ctx = call_context(shared, slot, &start);
                let (attempt, started) = (start.attempt, Instant::now());
                let outcome = drive(ctx, start.span.clone(), || body(attempt, &**state)).await;
                settle(start, outcome, started, reporter)
            }
            ActorMethod::Mut(_) | ActorMethod::Ref(_) => return (None, Some(start)),
        };
        if crash.is_some() {
            return (crash, None);
        }
        match slot.try_next() {
            Some(next) if is_async_method(&next) => start = next,
            next => return (None, next),
        }
    }
}

/// What a crash leaves to report: the call that panicked and the calls in flight.
type Crash = (Finished, Vec<(TaskId, u32)>);

/// Runs `&self` async calls together, up to the actor's concurrency, until
/// none is in flight and the next call (if any) is not one; returns the
/// crash if one panicked.
async fn run_shared_phase(
    shared: &Arc<Shared>,
    slot: &ActorSlot,
    first: Start,
    state: &(dyn std::any::Any + Send),
    reporter: &mut Reporter<'_>,
) -> Option<Crash> {
    let mut in_flight = FuturesUnordered::new();
    // Which calls are in flight, to report those a crash stops.
    let mut running: Vec<(TaskId, u32)> = Vec::new();
    let launch = |start: Start, running: &mut Vec<(TaskId, u32)>| {
        let TaskBody::Method(ActorMethod::AsyncRef(body)) = &start.body else {
            return None;
        };
        running.push((start.task, start.attempt.number));
        let body = body.clone();
        let ctx = call_context(shared, slot, &start);
        let attempt = start.attempt;
        let span = start.span.clone();
        Some(async move {
            let started = Instant::now();
            let outcome = drive(ctx, span, || body(attempt, state)).await;
            (start, outcome, started)
        })
    };
    in_flight.extend(launch(first, &mut running));
    loop {
        while in_flight.len() < slot.max_concurrency
            && let Some(next) = slot.next_shared()
        {
            in_flight.extend(launch(next, &mut running));
        }
        if in_flight.is_empty() {
            return None;
        }
        let room = in_flight.len() < slot.max_concurrency;
        tokio::select! {
            Some((start, outcome, started)) = in_flight.next() => {
                running.retain(|(task, _)| *task != start.task);
                let finished = report(start, outcome, started, Handoff::None);
                if matches!(finished.outcome, Err(ref error) if matches!(**error, TaskError::Panicked { .. })) {
                    // The calls still in flight stop with the actor; the manager
                    // retries or fails them.
                    return Some((finished, running));
                }
                reporter.finished(finished);
            }
            _ = slot.arrived.notified(), if room => {}
        }
    }
}

/// Catches a panic of a plain method.
fn catch(body: impl FnOnce() -> BodyResult) -> BodyResult {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(crate::panic::into_error(payload)))
}

/// Builds and drives an async method's future in the call's context, catching panics.
async fn drive<'a>(ctx: TaskContext, span: tracing::Span, build: impl FnOnce() -> LocalBodyFuture<'a>) -> BodyResult {
    let future = {
        let _entered = context::enter(ctx.clone());
        let _span = span.enter();
        match catch_unwind(AssertUnwindSafe(build)) {
            Ok(future) => future,
            Err(payload) => return Err(crate::panic::into_error(payload)),
        }
    };
    match context::Scoped::new(ctx, AssertUnwindSafe(future).catch_unwind()).instrument(span).await {
        Ok(outcome) => outcome,
        Err(payload) => Err(crate::panic::into_error(payload)),
    }
}
