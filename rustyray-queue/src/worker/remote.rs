//! Running one attempt away from its worker: what `app run-attempt ID`
//! does inside a cluster job. The process marks the attempt RUNNING,
//! heartbeats it, runs the function on the in-process runtime exactly as the
//! local runner does, and writes the outcome itself, so the database stays
//! the system of record and both runners leave the same rows.

use std::time::Duration;

use rustyray_runtime::Runtime;
use tokio::sync::watch;

use crate::error::Result;
use crate::model::{AttemptState, JobId};
use crate::queue::Queue;
use crate::store::attempt::{self, Begin};
use crate::worker::record;
use crate::worker::runner::{Attempt, Outcome, Stop, run_local};

/// What [`run_attempt`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptRun {
    /// The attempt ran here and its outcome is written.
    Recorded {
        /// Its job.
        job: JobId,
        /// The attempt's final state.
        state: AttemptState,
        /// The error class, when it failed.
        error_class: Option<String>,
    },
    /// The attempt may not run (it ran already, was lost, cancelled, or is
    /// no longer its job's current attempt); nothing was run.
    NotRunnable {
        /// Its state, when it exists.
        state: Option<AttemptState>,
    },
}

/// How long a job process keeps trying to write its attempt's outcome.
const OUTCOME_WRITE_PATIENCE: Duration = Duration::from_secs(600);

/// Runs attempt `attempt_id` in this process: marks it RUNNING (only when it
/// is SUBMITTED and its job's current attempt, so an attempt id never runs
/// twice), heartbeats it every `heartbeat`, runs its function on `runtime`
/// (with the job's timeout; a cancel of the job stops it), and records the
/// outcome with the same rules as a worker.
pub async fn run_attempt(
    queue: &Queue,
    attempt_id: uuid::Uuid,
    runtime: Runtime,
    heartbeat: Duration,
) -> Result<AttemptRun> {
    let claimed = match attempt::begin(queue.db(), attempt_id).await? {
        Begin::Run(claimed) => *claimed,
        Begin::NotRunnable { state } => return Ok(AttemptRun::NotRunnable { state }),
    };
    tracing::info!(job = %claimed.job_id, attempt = %attempt_id, function = %claimed.function, "running attempt");
    let (stop_tx, stop) = watch::channel(None);
    let beats = tokio::spawn(beat_loop(queue.clone(), attempt_id, heartbeat.max(Duration::from_millis(10)), stop_tx));
    let outcome = match claimed.unreadable.clone() {
        Some(problem) => Outcome::failed("Codec", problem),
        None => {
            let attempt =
                Attempt { claimed: claimed.clone(), queue: queue.clone(), worker_id: String::new(), heartbeat, stop };
            run_local(runtime, attempt).await
        }
    };
    let completion = record::completion(queue, &claimed, outcome).await;
    let mut written = None;
    if let Some(mut completion) = completion {
        let mut backoff = Duration::from_millis(50);
        // The heartbeat goes on while this retries, so nobody declares the
        // attempt lost. A database failover or restart takes minutes, and a
        // result lost to it would be the whole run's work: keep trying for
        // ten minutes, then let the worker that follows the cluster job
        // record the failure. An outcome the database refuses is written
        // as the attempt's plain failure, as the worker's writer does.
        let give_up = tokio::time::Instant::now() + OUTCOME_WRITE_PATIENCE;
        while tokio::time::Instant::now() < give_up {
            match record::write_alone(queue, completion).await {
                Ok((_, recorded)) => {
                    written = Some(recorded);
                    break;
                }
                Err((again, error)) => {
                    completion = again;
                    tracing::warn!(attempt = %attempt_id, %error, retry_in = ?backoff, "cannot record the outcome; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
    beats.abort();
    let Some(completion) = written else {
        return Err(crate::error::QueueError::Worker(format!(
            "attempt {attempt_id} of job {}: the outcome could not be written",
            claimed.job_id
        )));
    };
    Ok(AttemptRun::Recorded {
        job: claimed.job_id,
        state: completion.attempt_state,
        error_class: completion.error_class.clone(),
    })
}

async fn beat_loop(queue: Queue, attempt_id: uuid::Uuid, every: Duration, stop: watch::Sender<Option<Stop>>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match attempt::heartbeat(queue.db(), attempt_id).await {
            Ok(beat) if beat.cancel_requested || !beat.live => {
                let _ = stop.send(Some(Stop::Cancel));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(attempt = %attempt_id, %error, "heartbeat failed"),
        }
    }
}
