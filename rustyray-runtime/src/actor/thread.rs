//! An actor's thread: runs the calls waiting in its slot, one after another.
//!
//! Plain methods (and constructors) run on it as any plain task body does,
//! outside the tokio runtime's context, so they may block. Async methods are
//! driven on the same thread inside the tokio runtime (one `block_on` for a
//! run of consecutive async calls). Reports go to the manager in batches. A
//! panic in a method is a crash: the state is dropped, the slot halts and the
//! manager decides on a restart (see `manager/actors.rs`).
//!
//! On a deterministic run there is no thread: [`run_here`] is the same loop
//! as a local task of the run's one thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rustyray_core::context::{self, TaskContext};
use rustyray_core::{ActorInstance, ActorMethod, BodyResult, LocalBodyFuture, TaskBody, TaskError, TaskId};
use tracing::Instrument;

use super::slot::ActorSlot;
use crate::executor::{Exec, report};
use crate::protocol::{Finished, Handoff, Report};
use crate::task::Start;

/// How long an active actor runs calls before it hands its reports to the manager.
const REPORT_EVERY: Duration = Duration::from_micros(100);

/// How long an actor whose slot ran empty looks for the next call, yielding
/// its CPU between looks, before it sleeps until a call wakes it.
const SPIN: Duration = Duration::from_micros(20);

/// How long an actor whose slot ran empty keeps its thread, waiting for the
/// next call, before it parks its state: back-to-back callers (a call, its
/// result, the next call) then never wait for a thread.
const LINGER: Duration = Duration::from_millis(1);

/// Collects an active actor's reports and hands them over in batches.
///
/// The reports wait among the thread's held reports (see
/// [`hold_report`](crate::executor::hold_report)): a call that waits sends
/// them before it says it waits, so a task it waits for that needs an
/// earlier call's result is released. A report is held only while the next
/// call, taken to run about as long as the last one, would end within
/// [`REPORT_EVERY`] of the oldest held report: a burst of short calls goes
/// in one message, and a long call's report goes at once. The guess can be
/// wrong: a short call's report waits out a long call right after it that
/// neither waits nor ends sooner (its dependents start when it does).
struct Reporter<'a> {
    exec: &'a Exec,
    /// When the oldest report not yet handed over was made.
    since: Instant,
    /// How long the last call ran.
    last_ran: Duration,
}

impl Reporter<'_> {
    fn new(exec: &Exec) -> Reporter<'_> {
        Reporter { exec, since: crate::timer::now(), last_ran: Duration::ZERO }
    }

    /// Adds the report of an attempt that ran from `started` to `ended`
    /// (joined to the call's announcement if that is still held).
    fn finished(&mut self, finished: Finished) {
        let (started, ended) = (finished.started, finished.ended);
        if crate::executor::hold_finished(finished) {
            self.since = ended;
        }
        let ran = ended.saturating_duration_since(started);
        self.last_ran = ran;
        if ended.saturating_duration_since(self.since) + ran > REPORT_EVERY {
            self.flush();
        }
    }

    /// The actor's thread took `start` from its slot: a direct call the
    /// manager has not heard of is announced in the held reports (at once
    /// if the call before it ran long, so that a long call is listed while
    /// it runs). Returns `None` for such a call cancelled from its ref
    /// before it started: it does not run, and is reported as skipped.
    fn admit(&mut self, mut start: Start) -> Option<Start> {
        let Some(entry) = start.unannounced.take() else { return Some(start) };
        let call = crate::task::Unannounced::new(entry);
        if start.output.is_ready() {
            let now = crate::timer::now();
            let skipped = Finished {
                task: start.task,
                attempt: start.attempt.number,
                outcome: Ok(()),
                started: now,
                ended: now,
                handoff: Handoff::None,
            };
            if crate::executor::hold_report(Report::Ran(call, skipped)) {
                self.since = now;
            }
            return None;
        }
        if crate::executor::hold_report(Report::Announce(call)) {
            self.since = crate::timer::now();
        }
        if self.last_ran > REPORT_EVERY {
            self.flush();
        }
        Some(start)
    }

    fn flush(&mut self) {
        crate::executor::flush_held_reports(self.exec.sender());
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// An actor's thread: runs calls until the slot is empty, halted or killed.
pub(super) fn run(exec: &Exec, slot: &Arc<ActorSlot>) {
    let mut instance = slot.take_parked();
    let mut reporter = Reporter::new(exec);
    // A call taken from the slot by a run of async calls that it ended.
    let mut taken: Option<Start> = None;
    loop {
        let start = match taken.take().or_else(|| take(&mut reporter, || slot.try_next())) {
            Some(start) => start,
            None => {
                // A caller in the middle of a burst leaves its next call
                // within a microsecond or so: look again for a moment before
                // sleeping, as a sleep costs the caller a wake-up per call.
                if let Some(start) = take(&mut reporter, || slot.spin(SPIN)) {
                    taken = Some(start);
                    continue;
                }
                // Hand over what happened so far, then wait a moment for
                // more calls before giving the thread back.
                reporter.flush();
                slot.linger(LINGER);
                match take(&mut reporter, || slot.next(&mut instance)) {
                    Some(start) => start,
                    None => break,
                }
            }
        };
        match &start.body {
            TaskBody::Construct(_) => construct(exec, slot, start, &mut instance, &mut reporter),
            TaskBody::Method(method) => {
                let method = method.clone();
                let Some(state) = instance.as_mut() else {
                    no_state(start, &mut reporter);
                    continue;
                };
                let crash = match method {
                    ActorMethod::Mut(body) => {
                        run_plain(exec, slot, start, &mut reporter, |attempt| body(attempt, &mut **state))
                    }
                    ActorMethod::Ref(body) => {
                        run_plain(exec, slot, start, &mut reporter, |attempt| body(attempt, &**state))
                    }
                    ActorMethod::AsyncMut(_) | ActorMethod::AsyncRef(_) => {
                        let handle = exec.handle().clone();
                        let (crash, next) = handle.block_on(run_async(exec, slot, start, state, &mut reporter));
                        taken = next;
                        crash
                    }
                };
                if let Some(crash) = crash {
                    crashed(slot, &mut instance, crash, &mut reporter);
                }
            }
            TaskBody::Plain(_) | TaskBody::Async(_) => {}
        }
    }
}

/// A deterministic run's actor: the loop of [`run`] as a local task of the
/// run's one thread. Async calls are awaited rather than driven by
/// `block_on`; each call starts after yielding as the run's seed picks; and
/// when the slot runs empty the state is parked at once (no thread lingers).
pub(super) async fn run_here(exec: Exec, slot: Arc<ActorSlot>) {
    let (exec, slot) = (&exec, &slot);
    let mut instance = slot.take_parked();
    let mut reporter = Reporter::new(exec);
    let mut taken: Option<Start> = None;
    loop {
        if let Some(det) = &exec.det {
            det.stagger().await;
        }
        let start = match taken.take().or_else(|| take(&mut reporter, || slot.try_next())) {
            Some(start) => start,
            None => {
                reporter.flush();
                match take(&mut reporter, || slot.next(&mut instance)) {
                    Some(start) => start,
                    None => break,
                }
            }
        };
        match &start.body {
            TaskBody::Construct(_) => construct(exec, slot, start, &mut instance, &mut reporter),
            TaskBody::Method(method) => {
                let method = method.clone();
                let Some(state) = instance.as_mut() else {
                    no_state(start, &mut reporter);
                    continue;
                };
                let crash = match method {
                    ActorMethod::Mut(body) => {
                        run_plain(exec, slot, start, &mut reporter, |attempt| body(attempt, &mut **state))
                    }
                    ActorMethod::Ref(body) => {
                        run_plain(exec, slot, start, &mut reporter, |attempt| body(attempt, &**state))
                    }
                    ActorMethod::AsyncMut(_) | ActorMethod::AsyncRef(_) => {
                        let (crash, next) = run_async(exec, slot, start, state, &mut reporter).await;
                        taken = next;
                        crash
                    }
                };
                if let Some(crash) = crash {
                    crashed(slot, &mut instance, crash, &mut reporter);
                }
            }
            TaskBody::Plain(_) | TaskBody::Async(_) => {}
        }
    }
}

/// The next call `next` takes from the slot that may run: calls cancelled
/// before they started are skipped (see [`Reporter::admit`]).
fn take(reporter: &mut Reporter<'_>, mut next: impl FnMut() -> Option<Start>) -> Option<Start> {
    loop {
        if let Some(start) = reporter.admit(next()?) {
            return Some(start);
        }
    }
}

/// Runs the actor's constructor; its state goes to `instance`.
fn construct(
    exec: &Exec,
    slot: &ActorSlot,
    start: Start,
    instance: &mut Option<ActorInstance>,
    reporter: &mut Reporter<'_>,
) {
    let TaskBody::Construct(construct) = &start.body else { return };
    let started = crate::timer::now();
    let built = {
        let _entered = context::enter(call_context(exec, slot, &start));
        let _span = start.span.enter();
        catch_unwind(AssertUnwindSafe(|| construct(start.attempt)))
            .unwrap_or_else(|payload| Err(crate::panic::into_error(payload)))
    };
    let outcome = match built {
        Ok(state) => {
            *instance = Some(state);
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

/// A call released while the actor has no state: the constructor failed, so
/// the manager should have failed the call instead of releasing it.
fn no_state(start: Start, reporter: &mut Reporter<'_>) {
    let started = crate::timer::now();
    let fault = rustyray_core::Error::Internal { reason: "an actor call ran without the actor's state" };
    reporter.finished(report(start, Err(TaskError::Error(fault)), started, Handoff::None));
}

/// A call panicked: a panic may have left the state half-updated, so it
/// goes, no further call starts, and the manager decides whether to rebuild
/// it (and resumes the slot if so).
fn crashed(slot: &ActorSlot, instance: &mut Option<ActorInstance>, crash: Crash, reporter: &mut Reporter<'_>) {
    let (culprit, lost) = crash;
    slot.halt();
    let state = instance.take();
    let _ = catch_unwind(AssertUnwindSafe(|| drop(state)));
    crate::executor::hold_report(Report::Crashed(slot.actor, culprit, lost));
    reporter.flush();
}

fn call_context(exec: &Exec, slot: &ActorSlot, start: &Start) -> TaskContext {
    exec.context(start, slot.holds_cpus, true)
}

fn is_async_method(start: &Start) -> bool {
    matches!(start.body, TaskBody::Method(ActorMethod::AsyncMut(_) | ActorMethod::AsyncRef(_)))
}

/// Runs a plain method on this thread, as a plain task body runs; returns
/// the crash if it panicked.
fn run_plain(
    exec: &Exec,
    slot: &ActorSlot,
    start: Start,
    reporter: &mut Reporter<'_>,
    body: impl FnOnce(rustyray_core::Attempt) -> BodyResult,
) -> Option<Crash> {
    let started = crate::timer::now();
    let outcome = {
        let _entered = context::enter(call_context(exec, slot, &start));
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
    exec: &Exec,
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
            ActorMethod::AsyncRef(_) if slot.limits.interleave() => {
                run_shared_phase(exec, slot, start, &**state, reporter).await
            }
            ActorMethod::AsyncMut(body) => {
                let ctx = call_context(exec, slot, &start);
                let (attempt, started) = (start.attempt, crate::timer::now());
                let outcome = drive(exec, ctx, start.span.clone(), || body(attempt, &mut **state)).await;
                settle(start, outcome, started, reporter)
            }
            ActorMethod::AsyncRef(method) => {
                let ctx = call_context(exec, slot, &start);
                let (attempt, started) = (start.attempt, crate::timer::now());
                let outcome = drive(exec, ctx, start.span.clone(), || (method.body)(attempt, &**state)).await;
                settle(start, outcome, started, reporter)
            }
            ActorMethod::Mut(_) | ActorMethod::Ref(_) => return (None, Some(start)),
        };
        if crash.is_some() {
            return (crash, None);
        }
        match take(reporter, || slot.try_next()) {
            Some(next) if is_async_method(&next) => start = next,
            next => return (None, next),
        }
    }
}

/// What a crash leaves to report: the call that panicked and the calls in flight.
type Crash = (Finished, Vec<(TaskId, u32)>);

/// Runs `&self` async calls together, each group up to its limit, until
/// none is in flight and the next call (if any) is not one; returns the
/// crash if one panicked.
async fn run_shared_phase(
    exec: &Exec,
    slot: &ActorSlot,
    first: Start,
    state: &(dyn std::any::Any + Send),
    reporter: &mut Reporter<'_>,
) -> Option<Crash> {
    let mut in_flight = FuturesUnordered::new();
    // Which calls are in flight, to report those a crash stops.
    let mut running: Vec<(TaskId, u32)> = Vec::new();
    // How many calls of each concurrency group are in flight.
    let mut busy = vec![0usize; slot.limits.len()];
    let launch = |start: Start, group: usize, running: &mut Vec<(TaskId, u32)>, busy: &mut [usize]| {
        let TaskBody::Method(ActorMethod::AsyncRef(method)) = &start.body else {
            return None;
        };
        running.push((start.task, start.attempt.number));
        busy[group] += 1;
        let method = method.clone();
        let ctx = call_context(exec, slot, &start);
        let attempt = start.attempt;
        let span = start.span.clone();
        Some(async move {
            let started = crate::timer::now();
            let outcome = drive(exec, ctx, span, || (method.body)(attempt, state)).await;
            (start, group, outcome, started)
        })
    };
    let first_group = match &first.body {
        TaskBody::Method(ActorMethod::AsyncRef(method)) => slot.limits.index(method.group),
        _ => 0,
    };
    in_flight.extend(launch(first, first_group, &mut running, &mut busy));
    loop {
        while let Some((next, group)) = slot.next_shared(|group| busy[group] < slot.limits.limit(group)) {
            if let Some(next) = reporter.admit(next) {
                in_flight.extend(launch(next, group, &mut running, &mut busy));
            }
        }
        if in_flight.is_empty() {
            return None;
        }
        // With every group full, a new call could not start: it waits for a
        // call to end (which scans the line again) instead of waking us.
        let room = busy.iter().enumerate().any(|(group, n)| *n < slot.limits.limit(group));
        // Biased: the same branch first every time, so a deterministic run
        // takes the same one on a replay (tokio picks at random otherwise).
        tokio::select! {
            biased;
            Some((start, group, outcome, started)) = in_flight.next() => {
                busy[group] -= 1;
                running.retain(|(task, _)| *task != start.task);
                let finished = report(start, outcome, started, Handoff::None);
                if matches!(finished.outcome, Err(ref error) if matches!(**error, TaskError::Panicked { .. })) {
                    // The calls still in flight stop with the actor; the manager
                    // retries or fails them.
                    return Some((finished, running));
                }
                reporter.finished(finished);
            }
            // A new call may fit in a group with room.
            _ = slot.arrived.notified(), if room => {}
        }
    }
}

/// Catches a panic of a plain method.
fn catch(body: impl FnOnce() -> BodyResult) -> BodyResult {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(crate::panic::into_error(payload)))
}

/// Builds and drives an async method's future in the call's context, catching panics.
async fn drive<'a>(
    exec: &Exec,
    ctx: TaskContext,
    span: tracing::Span,
    build: impl FnOnce() -> LocalBodyFuture<'a>,
) -> BodyResult {
    let future = {
        let _entered = context::enter(ctx.clone());
        let _span = span.enter();
        match catch_unwind(AssertUnwindSafe(build)) {
            Ok(future) => future,
            Err(payload) => return Err(crate::panic::into_error(payload)),
        }
    };
    let mut call = std::pin::pin!(context::Scoped::new(ctx, AssertUnwindSafe(future).catch_unwind()).instrument(span));
    let outcome = std::future::poll_fn(|cx| {
        let polled = call.as_mut().poll(cx);
        if polled.is_pending() {
            // The call waits (for an object, say): the reports held on this
            // thread go now, so that a task it waits for that needs an
            // earlier call's result is released (a plain call sends them
            // when it says it waits).
            crate::executor::flush_held_reports(exec.sender());
        }
        polled
    })
    .await;
    match outcome {
        Ok(outcome) => outcome,
        Err(payload) => Err(crate::panic::into_error(payload)),
    }
}
