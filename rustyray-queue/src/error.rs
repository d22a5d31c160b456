//! Why a queue operation failed: one enum for the crate's boundary.

use crate::model::{JobId, JobState};

/// A failed queue operation. Messages name the job, function or database
/// (a database URL never carries its password here).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The database URL is not one the queue understands.
    #[error("`{url}` is not a queue database URL: {reason} (use sqlite://PATH or postgres://USER@HOST/DB)")]
    InvalidUrl {
        /// The URL, password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached or answered with an error.
    #[error("database {url}: {message}")]
    Database {
        /// The URL, password removed.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// The database answered but refused a value a statement carried (a
    /// data exception or a broken constraint): writing the same again fails
    /// the same way.
    #[error("database {url} refused a value: {message}")]
    Refused {
        /// The URL, password removed.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// The database was written by a newer version of the queue.
    #[error(
        "database {url} has schema version {found}, newer than this program's {supported}: \
         upgrade the program, or point it at another database"
    )]
    SchemaTooNew {
        /// The URL, password removed.
        url: String,
        /// The newest migration recorded in the database.
        found: i64,
        /// The newest migration this program knows.
        supported: i64,
    },
    /// The database's schema could not be created or checked.
    #[error("database {url}: schema migration failed: {message}")]
    Migration {
        /// The URL, password removed.
        url: String,
        /// What failed.
        message: String,
    },
    /// No remote function is registered under this name.
    #[error("{0}")]
    UnknownFunction(rustyray_core::Error),
    /// The arguments do not decode into the function's parameters, or could
    /// not be encoded.
    #[error("invalid arguments for `{function}`: {message}")]
    InvalidArguments {
        /// The function.
        function: String,
        /// What did not match.
        message: String,
    },
    /// An option is out of range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// Which option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// No job has this id.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The job is not in a state the operation applies to.
    #[error("job {job} is {state}: {operation} applies to {allowed} jobs")]
    WrongState {
        /// The job.
        job: JobId,
        /// Its state.
        state: JobState,
        /// The operation asked for.
        operation: &'static str,
        /// The states it applies to.
        allowed: &'static str,
    },
    /// The job ended without a value.
    #[error(
        "job {job} (`{function}`) ended {state} after {attempts} attempt(s){}",
        describe_failure(error_class, message)
    )]
    JobFailed {
        /// The job.
        job: JobId,
        /// Its function.
        function: String,
        /// FAILED or CANCELLED.
        state: JobState,
        /// How many attempts were charged.
        attempts: u32,
        /// The class of the last failure (`Panic`, `Timeout`, `Lost`, or the error's type).
        error_class: Option<String>,
        /// The last failure's message.
        message: Option<String>,
        /// The last failure's backtrace, when one was captured.
        backtrace: Option<String>,
    },
    /// A stored value could not be encoded or decoded.
    #[error("{context}: {message}")]
    Codec {
        /// What was being encoded or decoded.
        context: String,
        /// Why it failed.
        message: String,
    },
    /// The result store failed.
    #[error("result store: {0}")]
    ResultStore(String),
    /// The worker could not start.
    #[error("worker: {0}")]
    Worker(String),
}

fn describe_failure(class: &Option<String>, message: &Option<String>) -> String {
    match (class, message) {
        (Some(class), Some(message)) => format!(": {class}: {message}"),
        (None, Some(message)) => format!(": {message}"),
        (Some(class), None) => format!(": {class}"),
        (None, None) => String::new(),
    }
}

impl QueueError {
    /// Whether retrying the same call later may succeed (the database was
    /// unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Database { .. })
    }
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The queue's result type.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://app:s3cret@db/app"), "postgres://app:***@db/app");
        assert_eq!(redact_url("sqlite://jobs.db"), "sqlite://jobs.db");
    }
}
