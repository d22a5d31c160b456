//! Why a call to a Ray cluster failed: one enum for the crate's boundary.
//! Each message names the dashboard and what was asked of it (the Ray job,
//! the package), and keeps Ray's own words where Ray gave any.

/// A failed call to a Ray dashboard, or a runner that could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RayError {
    /// The dashboard address is not an http(s) URL.
    #[error("`{address}` is not a Ray dashboard address: {reason} (use http://HOST:8265)")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The dashboard did not answer (refused, timed out, connection lost).
    #[error("Ray dashboard {address} is unreachable while {action}: {message}")]
    Unreachable {
        /// The dashboard.
        address: String,
        /// What was being done (`submitting Ray job X`).
        action: String,
        /// What the HTTP client said.
        message: String,
    },
    /// The dashboard refused the token (401: none sent, 403: a wrong one).
    #[error(
        "Ray dashboard {address} refused the request while {action} ({status}): {message}; \
         give the cluster's token with RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
    )]
    Unauthorized {
        /// The dashboard.
        address: String,
        /// What was being done.
        action: String,
        /// 401 or 403.
        status: u16,
        /// Ray's answer.
        message: String,
    },
    /// The dashboard does not know the Ray job or package.
    #[error("Ray dashboard {address} does not know {what}")]
    NotFound {
        /// The dashboard.
        address: String,
        /// The Ray job or package asked for.
        what: String,
    },
    /// A job with this submission id exists already (a repeated submit).
    #[error("Ray dashboard {address} already has a job with submission id {submission_id}")]
    AlreadyExists {
        /// The dashboard.
        address: String,
        /// The submission id.
        submission_id: String,
    },
    /// The dashboard answered with an error: a request Ray rejects (4xx) or
    /// a failure on its side (5xx). `message` is Ray's own.
    #[error("Ray dashboard {address} answered {status} while {action}: {message}")]
    Rejected {
        /// The dashboard.
        address: String,
        /// What was being done.
        action: String,
        /// The HTTP status.
        status: u16,
        /// Ray's answer (the last lines of its traceback, when it sent one).
        message: String,
    },
    /// The dashboard answered something this client does not understand.
    #[error("Ray dashboard {address} answered unexpectedly while {action}: {message}")]
    Protocol {
        /// The dashboard.
        address: String,
        /// What was being done.
        action: String,
        /// What did not parse.
        message: String,
    },
    /// The token file could not be read.
    #[error("cannot read the Ray token from {path}: {message}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The binary to run on the cluster could not be read or packaged.
    #[error("the job binary {path}: {message}")]
    Binary {
        /// Its path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl RayError {
    /// Whether the cluster itself is away (so a circuit breaker should stop
    /// submitting): unreachable, or a gateway in front of it saying so
    /// (502, 503, 504). Ray answers 500 for requests it could not carry out
    /// (a duplicate id, a failed job agent): those belong to the request.
    pub fn is_cluster_down(&self) -> bool {
        match self {
            RayError::Unreachable { .. } => true,
            RayError::Rejected { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = RayError> = std::result::Result<T, E>;
