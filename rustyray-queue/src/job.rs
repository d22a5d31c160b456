//! [`Job<T>`]: the typed handle of one enqueued job.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{QueueError, Result};
use crate::model::{JobId, JobInfo, JobState};
use crate::queue::Queue;
use crate::signal::Signal;

/// One job whose function returns a `T`.
pub struct Job<T> {
    queue: Queue,
    id: JobId,
    _result: PhantomData<fn() -> T>,
}

impl<T> Clone for Job<T> {
    fn clone(&self) -> Self {
        Job { queue: self.queue.clone(), id: self.id, _result: PhantomData }
    }
}

impl<T> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").field("id", &self.id).field("result", &std::any::type_name::<T>()).finish()
    }
}

impl<T> Job<T> {
    /// The handle of job `id` in `queue` (it is not looked up until used).
    pub fn from_id(queue: &Queue, id: JobId) -> Self {
        Job { queue: queue.clone(), id, _result: PhantomData }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// State, options, times, worker and attempts.
    pub async fn info(&self) -> Result<JobInfo> {
        self.queue.job(self.id).await
    }

    /// The job's state.
    pub async fn state(&self) -> Result<JobState> {
        self.queue.state(self.id).await
    }

    /// Cancels the job (see [`Queue::cancel`]).
    pub async fn cancel(&self) -> Result<JobState> {
        self.queue.cancel(self.id).await
    }

    /// Waits until the job has ended and returns its final state.
    pub async fn wait(&self) -> Result<JobState> {
        let mut signals = self.queue.signals();
        loop {
            let state = self.queue.state(self.id).await?;
            if state.is_terminal() {
                return Ok(state);
            }
            // Woken by this process's changes and PostgreSQL notifications;
            // a short poll covers other processes writing to SQLite.
            let poll = tokio::time::sleep(self.queue.inner.poll_interval * if self.queue.is_sqlite() { 1 } else { 20 });
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    signal = signals.recv() => match signal {
                        Ok(Signal::Moved(id, state)) if id == self.id && state.is_terminal() => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => break,
                    },
                    _ = &mut poll => break,
                }
            }
        }
    }
}

impl<T: DeserializeOwned> Job<T> {
    /// Waits for the job to end and returns its result; a job that ended
    /// FAILED or CANCELLED is [`QueueError::JobFailed`], naming its function,
    /// attempts and last failure.
    pub async fn result(&self) -> Result<T> {
        self.wait().await?;
        let info = self.queue.job_unredacted(self.id).await?;
        match info.state {
            JobState::Succeeded => {
                let value = self.queue.load_result(&info).await?;
                serde_json::from_value(value).map_err(|error| QueueError::Codec {
                    context: format!(
                        "decoding the result of job {} (`{}`) as `{}`",
                        self.id,
                        info.function,
                        std::any::type_name::<T>()
                    ),
                    message: error.to_string(),
                })
            }
            state => {
                let last =
                    info.attempt_list.iter().rev().find(|a| a.error_class.is_some() || a.error_message.is_some());
                Err(QueueError::JobFailed {
                    job: self.id,
                    function: info.function.clone(),
                    state,
                    attempts: info.attempts,
                    error_class: last.and_then(|a| a.error_class.clone()),
                    message: last.and_then(|a| a.error_message.clone()).or(info.last_error.clone()),
                    backtrace: last.and_then(|a| a.backtrace.clone()),
                })
            }
        }
    }
}
