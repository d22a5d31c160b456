//! Running attempts of tasks.
//!
//! The manager decides *that* an attempt runs; the executor runs it: an async
//! body as a tokio task, a plain body on tokio's blocking pool (never on an
//! async worker), or inline on the thread of a plain task that waits for it.
//! The body runs inside its task's context, with panics caught. A successful
//! result is written to the task's output cell at once, so readers wake
//! without waiting for the manager; then the outcome goes back to the manager
//! as a [`Msg::Finished`] message. The executor never calls into the manager.
//!
//! A plain attempt of the usual shape (one CPU, no queue) runs on a *runner*:
//! a blocking thread with a [`Mailbox`] in which the manager may leave the
//! next such attempt. When its attempt ends, the runner takes the next one
//! from the mailbox and reports both in one message, then runs it at once,
//! so a stream of CPU tasks keeps each CPU busy without a thread hand-off per
//! task. A runner whose mailbox is empty closes it and returns its thread.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use futures::FutureExt;
use rustyray_core::context::{self, Scoped, TaskContext};
use rustyray_core::{BodyResult, TaskBody, TaskId};
use tracing::Instrument;

use rustyray_core::Runner;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::protocol::{Finished, Handoff, Msg, Report};
use crate::task::Start;

/// What the executor needs of its runtime: the runner bodies see as their
/// context, the manager's channel to report on, and the tokio runtime to run
/// on. Cheap to clone; each running attempt holds one.
#[derive(Clone)]
pub(crate) struct Exec {
    /// The runtime, as the task context names it.
    pub(crate) runner: Arc<dyn Runner>,
    tx: mpsc::UnboundedSender<Msg>,
    handle: Handle,
}

impl Exec {
    pub(crate) fn new(runner: Arc<dyn Runner>, tx: mpsc::UnboundedSender<Msg>, handle: Handle) -> Self {
        Exec { runner, tx, handle }
    }

    /// Tells the manager; gives the message back if the manager is gone.
    pub(crate) fn send(&self, msg: Msg) -> Result<(), Msg> {
        self.tx.send(msg).map_err(|error| error.0)
    }

    /// The manager's channel.
    pub(crate) fn sender(&self) -> &mpsc::UnboundedSender<Msg> {
        &self.tx
    }

    /// The tokio runtime attempts run on.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The context a body of `start` runs in.
    pub(crate) fn context(&self, start: &Start, releases_on_wait: bool, blocking_thread: bool) -> TaskContext {
        TaskContext { runner: self.runner.clone(), task: Some(start.task), releases_on_wait, blocking_thread }
    }
}

/// Where the manager leaves a runner its next attempts, in order.
#[derive(Default)]
pub(crate) struct Mailbox {
    state: Mutex<MailboxState>,
    /// Wakes an idle runner when work arrives.
    arrived: Condvar,
}

#[derive(Default)]
struct MailboxState {
    next: VecDeque<Start>,
    closed: bool,
}

impl Mailbox {
    /// Leaves `start` for the runner, after those already there; gives it
    /// back if the runner has closed its mailbox (it is returning its thread).
    pub(crate) fn offer(&self, start: Start) -> Result<(), Start> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(start);
        }
        state.next.push_back(start);
        self.arrived.notify_one();
        Ok(())
    }

    /// Takes back the attempt left for `task`, if the runner has not taken it yet.
    pub(crate) fn retract(&self, task: TaskId) -> Option<Start> {
        let mut state = self.state.lock();
        let index = state.next.iter().position(|next| next.task == task)?;
        state.next.remove(index)
    }

    /// Closes the mailbox for good (the runtime is shutting down).
    pub(crate) fn close(&self) -> VecDeque<Start> {
        let mut state = self.state.lock();
        state.closed = true;
        std::mem::take(&mut state.next)
    }

    /// The runner's side: the next attempt and how many wait behind it.
    fn next(&self) -> (Option<Start>, usize) {
        let mut state = self.state.lock();
        let next = state.next.pop_front();
        (next, state.next.len())
    }

    /// The runner's side, idle: waits up to `linger` for an attempt; if none
    /// comes, closes the mailbox (the manager finds out when it next offers one).
    fn wait_or_close(&self, linger: std::time::Duration) -> Option<Start> {
        let deadline = Instant::now() + linger;
        let mut state = self.state.lock();
        loop {
            if let Some(next) = state.next.pop_front() {
                return Some(next);
            }
            if self.arrived.wait_until(&mut state, deadline).timed_out() {
                let next = state.next.pop_front();
                if next.is_none() {
                    state.closed = true;
                }
                return next;
            }
        }
    }
}

/// Starts a plain attempt; given a mailbox, it runs on a runner.
pub(crate) fn start_plain(exec: &Exec, start: Start, mailbox: Option<Arc<Mailbox>>) {
    let exec_for_thread = exec.clone();
    // The join handle is not needed: outcomes come back as messages.
    drop(exec.handle().spawn_blocking(move || run_plain(&exec_for_thread, start, mailbox)));
}

/// How long one poll batch may keep polling before it hands the rest of its
/// attempts to a batch of their own (which the other workers can steal).
const POLL_BATCH_BUDGET: std::time::Duration = std::time::Duration::from_micros(50);

/// Starts async attempts: one tokio task polls each body once, in order.
/// Bodies that finish on that first poll (most trivial ones do) cost no task
/// of their own; the others continue as tokio tasks of their own. What
/// happened to each comes back in one [`Msg::Reports`] message.
pub(crate) fn start_async(exec: &Exec, starts: Vec<Start>) {
    drop(exec.handle().spawn(poll_batch(exec.clone(), starts)));
}

type BoxedAttempt = std::pin::Pin<Box<dyn std::future::Future<Output = BodyResult> + Send>>;

async fn poll_batch(exec: Exec, starts: Vec<Start>) {
    let began = Instant::now();
    // One clock read per attempt: each starts when the one before it ended.
    let mut started = began;
    let mut reports = Vec::with_capacity(starts.len());
    let mut starts = starts.into_iter();
    for start in starts.by_ref() {
        if start.output.is_ready() {
            // Cancelled (or timed out) before it ran: report it, so whatever it
            // held is given back.
            let (task, attempt) = (start.task, start.attempt.number);
            reports.push(Report::Finished(Finished {
                task,
                attempt,
                outcome: Ok(()),
                started,
                ended: started,
                handoff: Handoff::None,
            }));
            continue;
        }
        let mut attempt = attempt_future(&exec, &start);
        let polled = futures::poll!(attempt.as_mut());
        let ended = Instant::now();
        match polled {
            std::task::Poll::Ready(outcome) => {
                reports.push(Report::Finished(report_at(start, outcome, started, ended, Handoff::None)));
            }
            std::task::Poll::Pending => {
                let (task, number) = (start.task, start.attempt.number);
                let abort = exec.handle().spawn(continue_async(exec.clone(), start, attempt, started)).abort_handle();
                reports.push(Report::Spawned { task, attempt: number, abort });
            }
        }
        started = ended;
        if ended.saturating_duration_since(began) > POLL_BATCH_BUDGET {
            break;
        }
    }
    let rest: Vec<Start> = starts.collect();
    if !rest.is_empty() {
        start_async(&exec, rest);
    }
    let _ = exec.send(Msg::Reports(reports));
}

/// An async attempt as a future: the body's future, in the task's context,
/// with panics caught.
fn attempt_future(exec: &Exec, start: &Start) -> BoxedAttempt {
    let TaskBody::Async(body) = &start.body else {
        return Box::pin(std::future::ready(Err(rustyray_core::TaskError::Error(rustyray_core::Error::NotReady {
            object: start.output.id(),
        }))));
    };
    let ctx = exec.context(start, start.releases_on_wait, false);
    // Building the future only takes the arguments; the function runs when
    // it is polled, inside the task's context.
    let span = start.span.clone();
    match span.in_scope(|| catch_unwind(AssertUnwindSafe(|| body(start.attempt)))) {
        Ok(future) => Box::pin(
            async move {
                match Scoped::new(ctx, AssertUnwindSafe(future).catch_unwind()).await {
                    Ok(outcome) => outcome,
                    Err(payload) => Err(crate::panic::into_error(payload)),
                }
            }
            .instrument(span),
        ),
        Err(payload) => Box::pin(std::future::ready(Err(crate::panic::into_error(payload)))),
    }
}

/// The rest of an async attempt that did not finish on its first poll.
async fn continue_async(exec: Exec, start: Start, attempt: BoxedAttempt, started: Instant) {
    let outcome = attempt.await;
    let _ = exec.send(Msg::Finished(Box::new(report(start, outcome, started, Handoff::None))));
}

/// Runs plain attempts on this thread: `start`, then whatever the manager
/// leaves in the mailbox; once it is empty the runner waits a moment for new
/// work before it returns its thread, so a runner (and the CPU the OS has
/// placed it on) carries over from one burst of tasks to the next.
///
/// Reports of short attempts go to the manager in batches: once the mailbox
/// has drained to half of what it held since the last batch (so the manager
/// refills it while half is left), when it runs dry, or after [`REPORT_AGE`].
/// Every report wakes the manager's thread, which takes a CPU from some
/// runner for a moment; batching keeps that to a few times per mailbox, not
/// once per tiny task. An attempt longer than [`BATCH_BELOW`], or one before
/// an attempt with a timeout, is reported at once.
///
/// Held-back reports wait in [`HELD_REPORTS`]: a body that is about to wait
/// (or to run a task inline) sends them first, see [`flush_held_reports`], so
/// the manager knows which attempt runs on this thread before it hears that
/// the attempt waits.
fn run_plain(exec: &Exec, mut start: Start, mailbox: Option<Arc<Mailbox>>) {
    let mut oldest = Instant::now();
    // The most attempts seen waiting in the mailbox since the last report.
    let mut peak = 0;
    loop {
        let (outcome, started) = attempt_blocking(exec, &start);
        let (next, waiting) = match &mailbox {
            Some(mailbox) => mailbox.next(),
            None => (None, 0),
        };
        let handoff = match (&mailbox, &next) {
            (None, _) => Handoff::None,
            (Some(_), Some(next)) if next.lookahead => Handoff::Next(next.task, next.attempt.number),
            (Some(_), Some(_)) => Handoff::Released,
            (Some(_), None) => Handoff::Idle,
        };
        let finished = report(start, outcome, started, handoff);
        let ended = finished.ended;
        let ran = ended.saturating_duration_since(finished.started);
        HELD_REPORTS.with_borrow_mut(|reports| {
            if reports.is_empty() {
                oldest = ended;
            }
            reports.push(Report::Finished(finished));
        });
        let age = ended.saturating_duration_since(oldest);
        peak = peak.max(waiting + 1);
        // Batching pays only for short attempts; and a next attempt with a
        // timeout needs the manager to know now that it started.
        let urgent = ran > BATCH_BELOW || next.as_ref().is_some_and(|next| next.timed);
        if urgent || next.is_none() || waiting * 2 < peak || age > REPORT_AGE {
            flush_held_reports(exec.sender());
            peak = waiting;
        }
        start = match (next, &mailbox) {
            (Some(next), _) => next,
            (None, Some(mailbox)) => match mailbox.wait_or_close(RUNNER_LINGER) {
                Some(next) => {
                    if next.lookahead {
                        // Left here before the manager learned this runner was
                        // idle: tell it the attempt starts (and takes a CPU).
                        let resumed =
                            Report::Resumed { task: next.task, attempt: next.attempt.number, started: Instant::now() };
                        let _ = exec.send(Msg::Reports(vec![resumed]));
                    }
                    next
                }
                None => return,
            },
            (None, None) => return,
        };
    }
}

thread_local! {
    /// A runner's reports that it holds back to send in one batch.
    static HELD_REPORTS: std::cell::RefCell<Vec<Report>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Sends the reports this thread's runner holds back, if any. Called before a
/// body on this thread tells the manager it waits or claims a task: the
/// manager must first learn that the attempt started (it may have been
/// handed over in a held report), or the wait would be news about an attempt
/// it does not know runs, and the CPU would stay held while the body waits.
pub(crate) fn flush_held_reports(tx: &mpsc::UnboundedSender<Msg>) {
    let reports = HELD_REPORTS.with_borrow_mut(std::mem::take);
    if !reports.is_empty() {
        let _ = tx.send(Msg::Reports(reports));
    }
}

/// How long an idle runner waits for new work before it returns its thread.
const RUNNER_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Attempts shorter than this are reported in batches; longer ones at once.
const BATCH_BELOW: std::time::Duration = std::time::Duration::from_micros(100);

/// The longest a runner holds a report back.
const REPORT_AGE: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs a plain attempt on the calling thread, which waits for it (inline).
pub(crate) fn run_inline(exec: &Exec, start: Start) {
    let (outcome, started) = attempt_blocking(exec, &start);
    let _ = exec.send(Msg::Finished(Box::new(report(start, outcome, started, Handoff::None))));
}

/// Runs a plain body on this thread, in its task's context, catching panics.
fn attempt_blocking(exec: &Exec, start: &Start) -> (BodyResult, Instant) {
    let started = Instant::now();
    if start.output.is_ready() {
        // Cancelled from its ref before it started: the body need not run.
        return (Ok(Arc::new(())), started);
    }
    let TaskBody::Blocking(body) = &start.body else {
        return (
            Err(rustyray_core::TaskError::Error(rustyray_core::Error::NotReady { object: start.output.id() })),
            started,
        );
    };
    let ctx = exec.context(start, start.releases_on_wait, true);
    let _entered = context::enter(ctx);
    let _span = start.span.enter();
    let outcome =
        catch_unwind(AssertUnwindSafe(|| body(start.attempt))).unwrap_or_else(|p| Err(crate::panic::into_error(p)));
    (outcome, started)
}

/// Writes a successful result to the task's output (unless the manager gave
/// up on the attempt) and describes the attempt's end for the manager.
pub(crate) fn report(start: Start, outcome: BodyResult, started: Instant, handoff: Handoff) -> Finished {
    report_at(start, outcome, started, Instant::now(), handoff)
}

/// [`report`], for an attempt that ended at `ended`.
fn report_at(start: Start, outcome: BodyResult, started: Instant, ended: Instant, handoff: Handoff) -> Finished {
    let outcome = match outcome {
        Ok(value) => {
            let abandoned = start.abandon.as_ref().is_some_and(|flag| flag.load(Ordering::Acquire));
            if !abandoned {
                start.output.complete(Ok(value));
            }
            Ok(())
        }
        Err(error) => Err(Box::new(error)),
    };
    Finished { task: start.task, attempt: start.attempt.number, outcome, started, ended, handoff }
}
