//! Writing outcomes: an attempt's outcome becomes a [`Completion`] and is
//! written with others in one batch. A batch that cannot be written (the
//! database is away) is retried with backoff, never dropped; its attempts
//! stay RUNNING and heartbeated meanwhile, so nobody declares them lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::{AttemptState, JobState};
use crate::queue::Queue;
use crate::signal::Signal;
use crate::store::claim::Claimed;
use crate::store::complete::{self, Completion};
use crate::worker::runner::Outcome;

const BATCH: usize = 512;

/// Turns outcomes into completions for the writer task.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    queue: Queue,
    tx: mpsc::UnboundedSender<Completion>,
}

/// The task that writes completions; closing it writes what is pending.
#[derive(Debug)]
pub(crate) struct Writer {
    recorder: Recorder,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub(crate) fn start(queue: Queue) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(queue.clone(), rx));
        Writer { recorder: Recorder { queue, tx }, task }
    }

    /// A handle attempts record their outcomes through.
    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Writes what is pending and stops (once every recorder is dropped).
    pub(crate) async fn close(self) {
        drop(self.recorder);
        let _ = self.task.await;
    }
}

impl Recorder {
    /// Records how `claimed` ended.
    pub(crate) async fn record(&self, claimed: &Claimed, outcome: Outcome) {
        if let Some(completion) = completion(&self.queue, claimed, outcome).await {
            let _ = self.tx.send(completion);
        }
    }
}

/// The row changes for one outcome.
pub(crate) async fn completion(queue: &Queue, claimed: &Claimed, outcome: Outcome) -> Option<Completion> {
    let mut c = Completion {
        job_id: claimed.job_id,
        attempt_id: claimed.attempt_id,
        attempt_state: AttemptState::Failed,
        job_state: JobState::Failed,
        delay_us: 0,
        result: None,
        result_ref: None,
        error_class: None,
        error_message: None,
        backtrace: None,
        uncharge: false,
    };
    let fail = |c: &mut Completion, class: String, message: String, backtrace: Option<String>| {
        c.attempt_state = AttemptState::Failed;
        if claimed.charged < claimed.max_attempts {
            c.job_state = JobState::Queued;
            let delay = claimed.options.retry_delay(claimed.charged.max(1));
            c.delay_us = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
        } else {
            c.job_state = JobState::Failed;
        }
        c.error_class = Some(class);
        c.error_message = Some(message);
        c.backtrace = backtrace;
    };
    match outcome {
        Outcome::Succeeded(value) => match serde_json::to_string(&value) {
            Ok(text) if text.len() <= queue.inner.result_limit => {
                c.attempt_state = AttemptState::Succeeded;
                c.job_state = JobState::Succeeded;
                c.result = Some(text);
            }
            Ok(text) => {
                let key = format!("{}-{}", claimed.job_id, claimed.attempt);
                match queue.inner.results.put(&key, text.into_bytes()).await {
                    Ok(reference) => {
                        c.attempt_state = AttemptState::Succeeded;
                        c.job_state = JobState::Succeeded;
                        c.result_ref = Some(reference);
                    }
                    Err(error) => fail(&mut c, "ResultStore".into(), error.to_string(), None),
                }
            }
            Err(error) => fail(&mut c, "Codec".into(), format!("encoding the result: {error}"), None),
        },
        Outcome::Failed { class, message, backtrace } => fail(&mut c, class, message, backtrace),
        Outcome::TimedOut(timeout) => {
            fail(&mut c, "Timeout".into(), format!("the attempt ran longer than its timeout of {timeout:?}"), None)
        }
        Outcome::Cancelled => {
            c.attempt_state = AttemptState::Cancelled;
            c.job_state = JobState::Cancelled;
            c.error_class = Some("Cancelled".into());
            c.error_message = Some("cancelled while running".into());
        }
        Outcome::Released => {
            c.attempt_state = AttemptState::Cancelled;
            c.job_state = JobState::Queued;
            c.uncharge = true;
            c.error_class = Some("Released".into());
            c.error_message = Some("released at worker shutdown; not charged".into());
        }
        Outcome::Unsubmitted { message } => {
            c.attempt_state = AttemptState::Cancelled;
            c.job_state = JobState::Queued;
            c.uncharge = true;
            c.error_class = Some("Unsubmitted".into());
            c.error_message = Some(format!("{message}; not charged"));
        }
        Outcome::Lost { message } => {
            fail(&mut c, "Lost".into(), message, None);
            c.attempt_state = AttemptState::Lost;
        }
        Outcome::Recorded => return None,
    }
    // PostgreSQL's text refuses NUL, and a failure's message is the user's
    // (or a Ray job's log): a row it refuses would hold back every outcome
    // after it.
    for text in [&mut c.error_class, &mut c.error_message, &mut c.backtrace].into_iter().flatten() {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    }
    // A job stored before delays were bounded may ask for one past what a
    // time column holds.
    c.delay_us = c.delay_us.min(i64::try_from(crate::model::LONGEST_DELAY.as_micros()).unwrap_or(i64::MAX));
    Some(c)
}

async fn write_loop(queue: Queue, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut backoff = Duration::from_millis(50);
        let moved = loop {
            match complete::complete(queue.db(), &batch).await {
                Ok(moved) => break moved,
                Err(error) => {
                    tracing::warn!(%error, pending = batch.len(), retry_in = ?backoff, "cannot record outcomes; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        };
        let counters = &queue.inner.counters;
        let mut ready = false;
        for (job, state) in moved {
            match state {
                JobState::Succeeded => counters.succeeded.fetch_add(1, Ordering::Relaxed),
                JobState::Failed => counters.failed.fetch_add(1, Ordering::Relaxed),
                JobState::Cancelled => counters.cancelled.fetch_add(1, Ordering::Relaxed),
                JobState::Queued => {
                    ready = true;
                    counters.retried.fetch_add(1, Ordering::Relaxed)
                }
                JobState::Running => 0,
            };
            queue.signal(Signal::Moved(job, state));
        }
        if ready {
            queue.signal(Signal::Ready);
        }
        batch.clear();
    }
}
