//! Writing outcomes: an attempt's outcome becomes a [`Completion`] and is
//! written with others in one batch. A batch that cannot be written (the
//! database is away) is retried with backoff, never dropped; its attempts
//! stay RUNNING and heartbeated meanwhile (they are [`Unwritten`], which the
//! lease loop heartbeats with what the worker runs), so nobody declares
//! them lost. A
//! batch holding a value the database refuses is written a row at a time,
//! so that one row cannot hold back every outcome after it: that row is
//! written as a plain failure of its attempt instead.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::QueueError;
use crate::model::{AttemptState, JobId, JobState};
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
    unwritten: Unwritten,
}

/// The attempts whose outcome was handed to the writer and is not yet
/// written: their slots are free, yet they must stay heartbeated.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unwritten(Arc<Mutex<HashSet<uuid::Uuid>>>);

impl Unwritten {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<uuid::Uuid>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Those attempts now.
    pub(crate) fn attempts(&self) -> Vec<uuid::Uuid> {
        self.lock().iter().copied().collect()
    }
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
        let unwritten = Unwritten::default();
        let task = tokio::spawn(write_loop(queue.clone(), rx, unwritten.clone()));
        Writer { recorder: Recorder { queue, tx, unwritten }, task }
    }

    /// The attempts whose outcome waits to be written.
    pub(crate) fn unwritten(&self) -> Unwritten {
        self.recorder.unwritten.clone()
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
            self.unwritten.lock().insert(completion.attempt_id);
            if let Err(unsent) = self.tx.send(completion) {
                self.unwritten.lock().remove(&unsent.0.attempt_id);
            }
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
                // The store may be the application's own: a panic in it
                // fails this attempt, not the worker.
                let put = std::panic::AssertUnwindSafe(queue.inner.results.put(&key, text.into_bytes()));
                match futures::FutureExt::catch_unwind(put).await {
                    Ok(Ok(reference)) => {
                        c.attempt_state = AttemptState::Succeeded;
                        c.job_state = JobState::Succeeded;
                        c.result_ref = Some(reference);
                    }
                    Ok(Err(error)) => fail(&mut c, "ResultStore".into(), error.to_string(), None),
                    Err(_) => {
                        let message = "the result store panicked while storing the result".to_string();
                        fail(&mut c, "ResultStore".into(), message, None);
                    }
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
    // (or a Ray job's log), of any length: a row it refuses would hold back
    // every outcome after it.
    for text in [&mut c.error_class, &mut c.error_message, &mut c.backtrace].into_iter().flatten() {
        storable(text, TEXT_MAX);
    }
    // A job stored before delays were bounded may ask for one past what a
    // time column holds.
    c.delay_us = c.delay_us.min(i64::try_from(crate::model::LONGEST_DELAY.as_micros()).unwrap_or(i64::MAX));
    Some(c)
}

async fn write_loop(queue: Queue, mut rx: mpsc::UnboundedReceiver<Completion>, unwritten: Unwritten) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let attempts: Vec<uuid::Uuid> = batch.iter().map(|completion| completion.attempt_id).collect();
        let moved = write(&queue, &mut batch).await;
        {
            let mut unwritten = unwritten.lock();
            for attempt in &attempts {
                unwritten.remove(attempt);
            }
        }
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

/// The error class of an outcome written without its payload because the
/// database refused it as it was.
const UNRECORDED: &str = "Unrecorded";

/// How many times a batch may fail for another reason than a refused value,
/// while the database answers a ping, before its rows are written one at a
/// time (some other fault of one row would otherwise hold back them all).
const SPLIT_AFTER: u32 = 3;

/// The longest failure message and backtrace an outcome carries, in bytes:
/// a body's error text is the user's, and unbounded.
const TEXT_MAX: usize = 64 * 1024;

/// Makes `text` fit a text column: NUL (which PostgreSQL refuses) replaced,
/// and cut to at most `max` bytes (and a mark).
fn storable(text: &mut String, max: usize) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
    if text.len() > max {
        let cut = (0..=max).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
        text.truncate(cut);
        text.push_str(" [cut]");
    }
}

/// Writes `batch` (emptying it); returns the jobs that moved.
///
/// While the database is away (or busy, locked, full, read-only) the batch
/// is retried with backoff: its attempts stay RUNNING and heartbeated
/// meanwhile. When it refuses a value ([`QueueError::Refused`]: no retry
/// would cure that), or keeps failing while it answers otherwise, the rows
/// are written one at a time, so that one row cannot hold back the others,
/// and a row refused on its own is written as a plain failure of its
/// attempt instead ([`unrecorded`]).
async fn write(queue: &Queue, batch: &mut Vec<Completion>) -> Vec<(JobId, JobState)> {
    let db = queue.db();
    let mut moved = Vec::with_capacity(batch.len());
    let mut backoff = Duration::from_millis(50);
    let mut failures = 0;
    loop {
        let error = match complete::complete(db, batch).await {
            Ok(written) => {
                moved.extend(written);
                batch.clear();
                return moved;
            }
            Err(error) => error,
        };
        failures += 1;
        let refused = matches!(error, QueueError::Refused { .. });
        if refused || (batch.len() > 1 && failures >= SPLIT_AFTER && crate::store::ping(db).await.is_ok()) {
            failures = 0;
            let mut left = Vec::new();
            for completion in batch.drain(..) {
                match write_alone(queue, completion).await {
                    Ok((written, _)) => moved.extend(written),
                    Err((completion, _)) => left.push(completion),
                }
            }
            *batch = left;
            if batch.is_empty() {
                return moved;
            }
        }
        tracing::warn!(%error, pending = batch.len(), retry_in = ?backoff, "cannot record outcomes; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Writes one outcome on its own: as it is, or, if the database refuses it,
/// as a plain failure of its attempt; returns the jobs that moved and what
/// was written. Gives it (or the plain failure) back when that could not be
/// written, to be tried again, with the database's error.
pub(crate) async fn write_alone(
    queue: &Queue,
    completion: Completion,
) -> Result<(Vec<(JobId, JobState)>, Completion), (Completion, QueueError)> {
    let db = queue.db();
    let error = match complete::complete(db, std::slice::from_ref(&completion)).await {
        Ok(written) => return Ok((written, completion)),
        Err(error @ QueueError::Refused { .. }) => error,
        Err(error) => return Err((completion, error)),
    };
    let (job, attempt) = (completion.job_id, completion.attempt_id);
    tracing::error!(%error, %job, %attempt, "the database refuses this outcome: recording the attempt as failed without it");
    let plain = unrecorded(&completion, &error);
    match complete::complete(db, std::slice::from_ref(&plain)).await {
        Ok(written) => Ok((written, plain)),
        Err(error) => {
            tracing::error!(%error, %job, %attempt, "cannot record even the attempt's plain failure; retrying");
            Err((plain, error))
        }
    }
}

/// `refused` as a plain failure of its attempt (class [`UNRECORDED`]) whose
/// message is the database's refusal: no result, backtrace or delay; the job
/// retried if it was to be, failed if it had succeeded.
fn unrecorded(refused: &Completion, error: &QueueError) -> Completion {
    let mut message = format!("the outcome could not be recorded: {error}");
    storable(&mut message, 4096);
    Completion {
        job_id: refused.job_id,
        attempt_id: refused.attempt_id,
        attempt_state: AttemptState::Failed,
        job_state: match refused.job_state {
            JobState::Succeeded | JobState::Running => JobState::Failed,
            other => other,
        },
        delay_us: 0,
        result: None,
        result_ref: None,
        error_class: Some(UNRECORDED.into()),
        error_message: Some(message),
        backtrace: None,
        uncharge: refused.uncharge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Pool;

    /// A RUNNING job with a RUNNING attempt, written directly.
    async fn running_job(pool: &sqlx::PgPool) -> (JobId, uuid::Uuid) {
        let (job, attempt) = (JobId::new(), uuid::Uuid::now_v7());
        sqlx::query(
            "INSERT INTO rustyray_jobs (id, function, args, queue, priority, state, run_after, options, \
             max_attempts, attempts, runs, current_attempt, created_at) \
             VALUES ($1, 'app::f', '[]', 'default', 0, 'RUNNING', 0, '{}', 3, 1, 1, $2, 0)",
        )
        .bind(job.0)
        .bind(attempt)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, submitted_at, last_heartbeat) \
             VALUES ($1, $2, 1, 'local', 'RUNNING', 0, 0)",
        )
        .bind(attempt)
        .bind(job.0)
        .execute(pool)
        .await
        .unwrap();
        (job, attempt)
    }

    fn completion(job: JobId, attempt: uuid::Uuid, job_state: JobState, delay_us: i64) -> Completion {
        Completion {
            job_id: job,
            attempt_id: attempt,
            attempt_state: if job_state == JobState::Succeeded {
                AttemptState::Succeeded
            } else {
                AttemptState::Failed
            },
            job_state,
            delay_us,
            result: (job_state == JobState::Succeeded).then(|| "7".into()),
            result_ref: None,
            error_class: None,
            error_message: None,
            backtrace: None,
            uncharge: false,
        }
    }

    #[tokio::test]
    async fn an_outcome_the_database_refuses_holds_back_no_other_and_is_recorded_as_a_failure() {
        let Some(admin_url) = std::env::var("RUSTYRAY_TEST_POSTGRES").ok().filter(|url| !url.is_empty()) else {
            eprintln!("RUSTYRAY_TEST_POSTGRES is not set: SKIPPING the refused-outcome test");
            return;
        };
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        let schema = format!("rr_refused_{}_{}", std::process::id(), fastrand::u32(..));
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let queue =
            Queue::connect(&format!("{admin_url}{separator}options=-c%20search_path%3D{schema}")).await.unwrap();
        let Pool::Postgres(pool) = &queue.db().pool else { panic!("a PostgreSQL pool") };
        let (good, good_attempt) = running_job(pool).await;
        let (bad, bad_attempt) = running_job(pool).await;
        // A retry whose delay overflows PostgreSQL's bigint: the database
        // refuses the row (the worker bounds delays; a new cause of a refused
        // row would look the same).
        let mut batch = vec![
            completion(bad, bad_attempt, JobState::Queued, i64::MAX),
            completion(good, good_attempt, JobState::Succeeded, 0),
        ];
        let moved = tokio::time::timeout(Duration::from_secs(60), write(&queue, &mut batch)).await.unwrap();
        assert!(batch.is_empty());
        assert!(moved.contains(&(good, JobState::Succeeded)), "{moved:?}");
        assert!(moved.contains(&(bad, JobState::Queued)), "the refused retry is still a retry: {moved:?}");
        let good = queue.job(good).await.unwrap();
        assert_eq!((good.state, good.result), (JobState::Succeeded, Some(serde_json::json!(7))));
        let bad = queue.job(bad).await.unwrap();
        let attempt = &bad.attempt_list[0];
        assert_eq!((attempt.state, attempt.error_class.as_deref()), (AttemptState::Failed, Some(UNRECORDED)));
        assert!(attempt.error_message.as_deref().is_some_and(|m| m.contains("could not be recorded")), "{attempt:?}");
        // Alone in its batch, the same.
        let (lone, lone_attempt) = running_job(pool).await;
        let mut batch = vec![completion(lone, lone_attempt, JobState::Queued, i64::MAX)];
        let moved = tokio::time::timeout(Duration::from_secs(60), write(&queue, &mut batch)).await.unwrap();
        assert_eq!(moved, vec![(lone, JobState::Queued)]);
        let lone = queue.job(lone).await.unwrap();
        assert_eq!(lone.attempt_list[0].error_class.as_deref(), Some(UNRECORDED));
        drop(queue);
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
    }
}
