//! Running attempts of tasks.
//!
//! The manager decides *that* an attempt runs; the executor runs it: an async
//! body as a tokio task ([`poll`]), a plain body on tokio's blocking pool
//! (never on an async worker) or on a [`worker`], or inline on the thread of
//! a plain task that waits for it. The body runs inside its task's context,
//! with panics caught. A successful result is written to the task's output
//! cell at once, so readers wake without waiting for the manager; then the
//! outcome goes back to the manager as a message ([`Msg::Finished`], or a
//! [`Report`](crate::protocol::Report) in a [`Msg::Reports`] batch). The executor never calls into the
//! manager: it knows the runtime only through an [`Exec`].
//!
//! On a deterministic run every attempt is a local task of the run's one
//! thread instead (see `deterministic.rs`): plain bodies run there too, each
//! after yielding as the seed picks, and async bodies yield between polls
//! as it picks.

mod poll;
mod worker;

pub(crate) use poll::start_async;
pub(crate) use worker::{Mailbox, flush_held_reports, hold_finished, hold_report, run_inline, start_plain};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rustyray_core::context::TaskContext;
use rustyray_core::{BodyResult, Runner};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::deterministic::Det;
use crate::protocol::{Finished, Handoff, Msg};
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
    /// On a deterministic run, its seeded choices: attempts then run as
    /// local tasks of the run's one thread, never on other threads.
    pub(crate) det: Option<Arc<Det>>,
}

impl Exec {
    pub(crate) fn new(
        runner: Arc<dyn Runner>,
        tx: mpsc::UnboundedSender<Msg>,
        handle: Handle,
        det: Option<Arc<Det>>,
    ) -> Self {
        Exec { runner, tx, handle, det }
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
        TaskContext {
            runner: self.runner.clone(),
            task: Some(start.task),
            attempt: start.attempt.number,
            releases_on_wait,
            blocking_thread,
        }
    }
}

/// Writes a successful result to the task's output (unless the manager gave
/// up on the attempt) and describes the attempt's end for the manager.
pub(crate) fn report(start: Start, outcome: BodyResult, started: Instant, handoff: Handoff) -> Finished {
    report_at(start, outcome, started, crate::timer::now(), handoff)
}

/// [`report`], for an attempt that ended at `ended`.
pub(super) fn report_at(
    start: Start,
    outcome: BodyResult,
    started: Instant,
    ended: Instant,
    handoff: Handoff,
) -> Finished {
    let outcome = match outcome {
        Ok(value) => {
            let abandoned = start.abandon.as_ref().is_some_and(|flag| flag.load(Ordering::Acquire));
            // A value that is not written (the attempt was given up on, or
            // the object cancelled meanwhile) is dropped here: its `Drop` is
            // the user's, and a panic in it must not take the worker's
            // thread, and the attempts it holds, with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if !abandoned {
                    start.output.complete(Ok(value));
                }
            }));
            Ok(())
        }
        Err(error) => Err(Box::new(error)),
    };
    Finished { task: start.task, attempt: start.attempt.number, outcome, started, ended, handoff }
}
