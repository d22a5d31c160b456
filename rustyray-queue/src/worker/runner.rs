//! Runners: what executes a claimed attempt. The worker claims, heartbeats
//! and records; a runner only runs and reports how the attempt ended. Every
//! runner leaves the same rows behind, so a job behaves the same whichever
//! runs it.

use std::fmt::Debug;
use std::time::Duration;

use futures::future::BoxFuture;
use rustyray_core::{Error, TaskOptions};
use rustyray_runtime::Runtime;
use tokio::sync::watch;

use crate::model::AttemptState;
use crate::queue::Queue;
use crate::store::claim::Claimed;

/// Why the worker asks a running attempt to stop.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The job was cancelled.
    Cancel,
    /// The worker is shutting down: the job goes back to QUEUED, uncharged.
    Release,
}

/// One attempt handed to a runner.
#[derive(Debug)]
pub struct Attempt {
    /// What was claimed: job, attempt, function, arguments, options.
    pub claimed: Claimed,
    /// The queue, for runners that record progress themselves.
    pub queue: Queue,
    /// The worker's id.
    pub worker_id: String,
    /// How often the worker heartbeats. A runner whose attempts begin
    /// elsewhere, and are heartbeated there from then on (a cluster job),
    /// has them beat at least this often: the stuck timeout is set against
    /// it.
    pub heartbeat: std::time::Duration,
    /// Changes to `Some` when the attempt must stop.
    pub stop: watch::Receiver<Option<Stop>>,
}

/// How an attempt ended, as a runner reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function returned this value.
    Succeeded(serde_json::Value),
    /// The function returned `Err`, panicked, or could not be run.
    Failed {
        /// `Panic`, `FunctionNotFound`, `Codec`, or the error value's type.
        class: String,
        /// What happened.
        message: String,
        /// Where, when a backtrace was captured.
        backtrace: Option<String>,
    },
    /// The attempt ran past its timeout.
    TimedOut(Duration),
    /// The attempt was stopped because the job was cancelled.
    Cancelled,
    /// The attempt was stopped because the worker is shutting down.
    Released,
    /// The attempt's outcome was already written to the database by the
    /// process that ran it (a cluster job); nothing is left to record.
    Recorded,
    /// The attempt could not be handed to where it runs (a cluster that
    /// is unreachable) and never started: the job goes back to QUEUED and
    /// the attempt is not charged.
    Unsubmitted {
        /// Why.
        message: String,
    },
    /// The attempt vanished where it ran (the cluster no longer knows its
    /// job): LOST, charged, and its job retried like after a failure.
    Lost {
        /// What was found.
        message: String,
    },
}

impl Outcome {
    /// A failure of class `class`.
    pub fn failed(class: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Failed { class: class.into(), message: message.into(), backtrace: None }
    }

    /// The outcome a RustyRay task error becomes.
    pub fn from_error(error: &Error) -> Self {
        match error {
            Error::TaskFailed { message, error_type, .. } => {
                Outcome::Failed { class: (*error_type).to_string(), message: message.clone(), backtrace: None }
            }
            Error::TaskPanicked { message, backtrace, .. } => Outcome::Failed {
                class: "Panic".into(),
                message: message.clone(),
                backtrace: backtrace.as_deref().map(str::to_string),
            },
            Error::TimedOut { timeout, .. } => Outcome::TimedOut(*timeout),
            Error::Cancelled { .. } => Outcome::Cancelled,
            Error::FunctionNotFound { .. } => Outcome::failed("FunctionNotFound", error.to_string()),
            Error::Codec { .. } => Outcome::failed("Codec", error.to_string()),
            other => Outcome::failed("Error", other.to_string()),
        }
    }
}

/// Executes attempts. Implemented by [`LocalRunner`] (this process) and by
/// the Ray cluster runner.
pub trait Runner: Debug + Send + Sync + 'static {
    /// The name recorded in each attempt (`local`, `ray_job`).
    fn name(&self) -> &'static str;

    /// The state a claimed attempt starts in: RUNNING when this process runs
    /// it at once, SUBMITTED when it waits for a cluster.
    fn initial_state(&self) -> AttemptState {
        AttemptState::Running
    }

    /// Runs one attempt to its end (or until it is told to stop).
    fn run(&self, attempt: Attempt) -> BoxFuture<'static, Outcome>;

    /// Whether the worker may claim new attempts for this runner now. A
    /// cluster runner answers `false` while its cluster is unreachable (its
    /// circuit breaker is open), so jobs stay QUEUED and no attempt is
    /// spent; the worker asks again at its poll interval.
    fn accepting(&self) -> bool {
        true
    }

    /// Whether attempts of this runner go on without their worker (a cluster
    /// job does), so that a live worker may take over following the attempts
    /// of a worker that died: it calls [`run`](Self::run) again for each,
    /// which must then find the attempt's running job instead of starting a
    /// second one.
    fn adopts_orphans(&self) -> bool {
        false
    }

    /// Whether an attempt's outcome is written by the worker that runs it
    /// and by nobody else (as for attempts that run in this process). The
    /// worker then stops an attempt the database no longer counts as live
    /// (found LOST, its retry free to run elsewhere). A runner whose attempts
    /// may record their own outcome, or be adopted by another worker, leaves
    /// this `false`: for it, not live may just mean ended.
    fn outcomes_written_by_worker(&self) -> bool {
        false
    }

    /// The in-process runtime the runner runs attempts on, if it uses one:
    /// its metrics are reported with the queue's.
    fn runtime(&self) -> Option<&Runtime> {
        None
    }
}

/// Runs attempts in this process, on the in-process RustyRay runtime: plain
/// bodies on its CPU pool, async bodies on tokio.
#[derive(Clone, Debug)]
pub struct LocalRunner {
    runtime: Runtime,
}

impl LocalRunner {
    /// Its name, as attempts record their runner.
    pub const NAME: &'static str = "local";

    /// A runner on `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        LocalRunner { runtime }
    }
}

impl Runner for LocalRunner {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn runtime(&self) -> Option<&Runtime> {
        Some(&self.runtime)
    }

    fn outcomes_written_by_worker(&self) -> bool {
        true
    }

    fn run(&self, attempt: Attempt) -> BoxFuture<'static, Outcome> {
        let runtime = self.runtime.clone();
        Box::pin(run_local(runtime, attempt))
    }
}

/// Runs an attempt on `runtime` until it ends or is stopped.
pub async fn run_local(runtime: Runtime, attempt: Attempt) -> Outcome {
    let Attempt { claimed, mut stop, .. } = attempt;
    let mut options = TaskOptions::default();
    if let Some(timeout) = claimed.options.timeout {
        options.set_timeout(timeout);
    }
    if let Some(name) = &claimed.options.name {
        options.set_name(name.clone());
    }
    if let Some(cpus) = claimed.options.num_cpus {
        options.set_num_cpus(cpus);
    }
    options.record_args = claimed.options.record_args;
    let output = runtime.call_by_name_json(&claimed.function, &claimed.args, options);
    let ended = |result: Result<serde_json::Value, Error>| match result {
        Ok(value) => Outcome::Succeeded(value),
        Err(error) => Outcome::from_error(&error),
    };
    let reason = {
        let get = output.get();
        tokio::pin!(get);
        let reason = tokio::select! {
            result = &mut get => return ended(result),
            reason = stop.wait_for(Option::is_some) => reason.ok().and_then(|r| *r),
        };
        match reason {
            Some(reason) => reason,
            // Nobody can ask it to stop any more (the stop handle was
            // dropped without a reason): only a cancel cancels, so the
            // body runs to its end.
            None => return ended(get.await),
        }
    };
    // Stop the body: an async one is dropped, a plain one abandoned.
    rustyray_runtime::cancel(&output);
    match reason {
        Stop::Release => Outcome::Released,
        Stop::Cancel => Outcome::Cancelled,
    }
}
