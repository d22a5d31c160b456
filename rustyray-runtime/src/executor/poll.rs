//! Async bodies: one tokio task polls a batch of attempts once each, in
//! order. Bodies that finish on that first poll (most trivial ones do) cost
//! no task of their own; the others continue as tokio tasks of their own.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::FutureExt;
use futures::future::CatchUnwind;
use rustyray_core::context::Scoped;
use rustyray_core::{BodyFuture, BodyResult, TaskBody};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use super::{Exec, report, report_at};
use crate::protocol::{Finished, Handoff, Msg, Report};
use crate::task::Start;

/// How long one poll batch may keep polling before it hands the rest of its
/// attempts to a batch of their own (which the other workers can steal).
const POLL_BATCH_BUDGET: std::time::Duration = std::time::Duration::from_micros(50);

/// Starts async attempts: one tokio task polls each body once, in order.
/// Bodies that finish on that first poll (most trivial ones do) cost no task
/// of their own; the others continue as tokio tasks of their own. What
/// happened to each comes back in one [`Msg::Reports`] message.
pub(crate) fn start_async(exec: &Exec, starts: Vec<Start>) {
    if let Some(det) = &exec.det {
        return start_async_here(exec, det, starts);
    }
    drop(exec.handle().spawn(poll_batch(exec.clone(), starts)));
}

/// A deterministic run's async attempts: each a local task that yields as
/// the seed picks before it starts and between its polls. Its abort handle
/// goes to the manager (in a message sent before the task can run).
fn start_async_here(exec: &Exec, det: &std::sync::Arc<crate::deterministic::Det>, starts: Vec<Start>) {
    let mut reports = Vec::with_capacity(starts.len());
    for start in starts {
        let (task, number) = (start.task, start.attempt.number);
        let exec_for_task = exec.clone();
        let det = det.clone();
        let abort = crate::deterministic::spawn(async move {
            det.stagger().await;
            let started = crate::timer::now();
            if start.output.is_ready() {
                // Cancelled (or timed out) before it ran.
                let finished = Finished {
                    task,
                    attempt: number,
                    outcome: Ok(()),
                    started,
                    ended: started,
                    handoff: Handoff::None,
                };
                let _ = exec_for_task.send(Msg::Finished(Box::new(finished)));
                return;
            }
            let attempt = crate::deterministic::Det::interleave(det, attempt_future(&exec_for_task, &start));
            continue_async(exec_for_task, start, attempt, started).await;
        });
        reports.push(Report::Spawned { task, attempt: number, abort });
    }
    let _ = exec.send(Msg::Reports(reports));
}

async fn poll_batch(exec: Exec, starts: Vec<Start>) {
    let began = crate::timer::now();
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
        let polled = futures::poll!(&mut attempt);
        let ended = crate::timer::now();
        match polled {
            Poll::Ready(outcome) => {
                reports.push(Report::Finished(report_at(start, outcome, started, ended, Handoff::None)));
            }
            Poll::Pending => {
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

/// An async attempt as a future: the body's future (which the body has
/// already boxed) in the task's context, in its span, with panics caught.
/// It is `Unpin`, so a batch polls it where it stands and moves it into a
/// task of its own if it does not finish: one allocation fewer per attempt
/// than boxing it again.
enum AttemptFuture {
    Body(Instrumented<Scoped<CatchUnwind<AssertUnwindSafe<BodyFuture>>>>),
    /// Building the future failed (a panic, or a body of another kind).
    Done(std::future::Ready<BodyResult>),
}

impl Future for AttemptFuture {
    type Output = BodyResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BodyResult> {
        match self.get_mut() {
            AttemptFuture::Body(future) => Pin::new(future)
                .poll(cx)
                .map(|outcome| outcome.unwrap_or_else(|payload| Err(crate::panic::into_error(payload)))),
            AttemptFuture::Done(ready) => Pin::new(ready).poll(cx),
        }
    }
}

/// An async attempt as a future (see [`AttemptFuture`]).
fn attempt_future(exec: &Exec, start: &Start) -> AttemptFuture {
    let TaskBody::Async(body) = &start.body else {
        let fault = rustyray_core::Error::Internal { reason: "an async attempt was handed a body that is not async" };
        return AttemptFuture::Done(std::future::ready(Err(rustyray_core::TaskError::Error(fault))));
    };
    let ctx = exec.context(start, start.releases_on_wait, false);
    // Building the future only takes the arguments; the function runs when
    // it is polled, inside the task's context.
    let span = start.span.clone();
    match span.in_scope(|| catch_unwind(AssertUnwindSafe(|| body(start.attempt)))) {
        Ok(future) => AttemptFuture::Body(Scoped::new(ctx, AssertUnwindSafe(future).catch_unwind()).instrument(span)),
        Err(payload) => AttemptFuture::Done(std::future::ready(Err(crate::panic::into_error(payload)))),
    }
}

/// The rest of an async attempt that did not finish on its first poll.
async fn continue_async(exec: Exec, start: Start, attempt: impl Future<Output = BodyResult>, started: Instant) {
    let outcome = attempt.await;
    let _ = exec.send(Msg::Finished(Box::new(report(start, outcome, started, Handoff::None))));
}
