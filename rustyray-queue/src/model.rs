//! The queue's vocabulary: job ids, states, options, and what a listing shows.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustyray_core::{RunAt, TaskOptions};
use serde::{Deserialize, Serialize};

use crate::error::QueueError;

/// A job's id: a UUID (version 7, so ids sort by creation time).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
#[serde(transparent)]
pub struct JobId(pub uuid::Uuid);

impl JobId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        JobId(uuid::Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = QueueError;
    fn from_str(s: &str) -> Result<Self, QueueError> {
        uuid::Uuid::parse_str(s.trim()).map(JobId).map_err(|error| QueueError::InvalidOption {
            option: "job id",
            reason: format!("`{s}` is not a UUID: {error}"),
        })
    }
}

macro_rules! states {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            /// Every state, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name stored in the database (`QUEUED`, ...).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = QueueError;
            fn from_str(s: &str) -> Result<Self, QueueError> {
                let upper = s.trim().to_ascii_uppercase();
                match upper.as_str() {
                    $($text => Ok($name::$variant),)*
                    _ => Err(QueueError::InvalidOption {
                        option: stringify!($name),
                        reason: format!("`{s}` is not one of {}", [$($text),*].join(", ")),
                    }),
                }
            }
        }
    };
}

states! {
    /// Where a job is: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED.
    JobState {
        /// Waiting to be claimed (a retry waits here too, until its `run_after`).
        Queued = "QUEUED",
        /// Claimed by a worker; an attempt is running.
        Running = "RUNNING",
        /// Ended with a result.
        Succeeded = "SUCCEEDED",
        /// Ended without a result, its attempts spent.
        Failed = "FAILED",
        /// Cancelled before it could end.
        Cancelled = "CANCELLED",
    }
}

states! {
    /// Where one attempt is: SUBMITTED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | LOST.
    AttemptState {
        /// Handed to a runner, not started yet.
        Submitted = "SUBMITTED",
        /// Running, heartbeating.
        Running = "RUNNING",
        /// Produced the job's result.
        Succeeded = "SUCCEEDED",
        /// Returned an error, panicked or timed out.
        Failed = "FAILED",
        /// Stopped by a cancel, or released at a worker's shutdown.
        Cancelled = "CANCELLED",
        /// Its worker stopped heartbeating.
        Lost = "LOST",
    }
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// The longest delay a job's options may ask for (`run_after`, `run_at`
/// from now, the backoff's maximum, `timeout`): a hundred years. Every time
/// the queue computes from one then fits its time columns.
pub const LONGEST_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a job is to be run; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct JobOptions {
    /// The queue (default `default`).
    pub queue: Option<String>,
    /// -100..=100, higher first (default 0).
    pub priority: i32,
    /// How many times a failed attempt is retried (default 0).
    pub max_retries: u32,
    /// Backoff between attempts: (initial, max), doubled each retry, with jitter.
    /// In JSON: `[initial_ms, max_ms]`.
    #[serde(with = "backoff_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<u64>>))]
    pub backoff: Option<(Duration, Duration)>,
    /// How long one attempt may run (milliseconds in JSON).
    #[serde(with = "opt_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub timeout: Option<Duration>,
    /// Not before this long after enqueue (milliseconds in JSON).
    #[serde(with = "opt_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub run_after: Option<Duration>,
    /// Not before this time (wins over `run_after`).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub run_at: Option<SystemTime>,
    /// A name shown in listings.
    pub name: Option<String>,
    /// CPU units the attempt holds (a Ray job's `entrypoint_num_cpus`).
    pub num_cpus: Option<f64>,
    /// Whether the arguments may appear in logs, events and listings.
    pub record_args: bool,
    /// A key that makes enqueueing idempotent: a second enqueue with the
    /// key of a job still in the database writes nothing and answers with
    /// that job's id (so a client that retries a submit it got no answer
    /// for makes no duplicate). 1 to 255 bytes, without NUL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl JobOptions {
    /// The longest name, in bytes: a name is shown in every listing, event
    /// and page row of its job, so it stays a label, not a payload.
    pub const MAX_NAME: usize = 1024;

    /// The longest idempotency key, in bytes.
    pub const MAX_IDEMPOTENCY_KEY: usize = 255;

    /// Makes the enqueue idempotent under `key` (see
    /// [`idempotency_key`](Self::idempotency_key)).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Sets the priority (-100..=100).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the retries.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }
    /// Sets the backoff between attempts.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Some((initial, max));
        self
    }
    /// Sets the timeout of one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Delays the first attempt.
    pub fn run_after(mut self, delay: Duration) -> Self {
        self.run_after = Some(delay);
        self
    }
    /// Delays the first attempt until `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Names the job.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The queue, or the default one.
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    /// Checks ranges; the first problem is the error.
    pub fn validate(&self) -> Result<(), QueueError> {
        if !(-100..=100).contains(&self.priority) {
            return Err(QueueError::InvalidOption {
                option: "priority",
                reason: format!("{} is outside -100..=100", self.priority),
            });
        }
        if let Some(queue) = &self.queue
            && (queue.is_empty() || queue.len() > 128 || queue.contains([',', '\0']))
        {
            return Err(QueueError::InvalidOption {
                option: "queue",
                reason: "a queue name is 1 to 128 characters, without commas or NUL".into(),
            });
        }
        if self.name.as_deref().is_some_and(|name| name.len() > Self::MAX_NAME || name.contains('\0')) {
            return Err(QueueError::InvalidOption {
                option: "name",
                reason: format!("a name is at most {} bytes, without NUL", Self::MAX_NAME),
            });
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > Self::MAX_IDEMPOTENCY_KEY || key.contains('\0'))
        {
            return Err(QueueError::InvalidOption {
                option: "idempotency_key",
                reason: format!("an idempotency key is 1 to {} bytes, without NUL", Self::MAX_IDEMPOTENCY_KEY),
            });
        }
        let delays = [
            ("run_after", self.run_after),
            ("timeout", self.timeout),
            ("backoff", self.backoff.map(|(_, max)| max)),
            ("run_at", self.run_at.and_then(|at| at.duration_since(SystemTime::now()).ok())),
        ];
        for (option, delay) in delays {
            if let Some(delay) = delay
                && delay > LONGEST_DELAY
            {
                return Err(QueueError::InvalidOption {
                    option,
                    reason: format!("{delay:?} is longer than the longest delay, {LONGEST_DELAY:?} (a hundred years)"),
                });
            }
        }
        if let Some((initial, max)) = self.backoff
            && initial > max
        {
            return Err(QueueError::InvalidOption {
                option: "backoff",
                reason: format!("the initial delay {initial:?} is longer than the maximum {max:?}"),
            });
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(QueueError::InvalidOption { option: "timeout", reason: "must be longer than zero".into() });
        }
        if self.max_retries > 1000 {
            return Err(QueueError::InvalidOption { option: "max_retries", reason: "at most 1000".into() });
        }
        if let Some(cpus) = self.num_cpus
            && (!cpus.is_finite() || cpus < 0.0)
        {
            return Err(QueueError::InvalidOption {
                option: "num_cpus",
                reason: format!("{cpus} is not a CPU amount"),
            });
        }
        Ok(())
    }

    /// The delay before retry number `retry` (1 for the first), with full
    /// jitter between half and all of the exponential delay.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let (initial, max) = self.backoff.unwrap_or((Duration::from_secs(1), Duration::from_secs(60)));
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        let delay = initial.saturating_mul(factor).min(max);
        delay.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

impl From<&TaskOptions> for JobOptions {
    fn from(options: &TaskOptions) -> Self {
        let (run_after, run_at) = match options.run_at {
            Some(RunAt::After(delay)) => (Some(delay), None),
            Some(RunAt::At(at)) => (None, Some(at)),
            None => (None, None),
        };
        JobOptions {
            queue: options.queue.as_deref().map(str::to_string),
            priority: options.priority,
            max_retries: options.max_retries,
            backoff: options.backoff.as_ref().map(|b| (b.initial, b.max)),
            timeout: options.timeout,
            run_after,
            run_at,
            name: options.name.as_deref().map(str::to_string),
            num_cpus: options.num_cpus,
            record_args: options.record_args,
            idempotency_key: None,
        }
    }
}

mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

mod backoff_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<(Duration, Duration)>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some((a, b)) => s.serialize_some(&(a.as_millis() as u64, b.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(Duration, Duration)>, D::Error> {
        Ok(Option::<(u64, u64)>::deserialize(d)?.map(|(a, b)| (Duration::from_millis(a), Duration::from_millis(b))))
    }
}

/// Microseconds since the Unix epoch, as the database stores times.
pub type Micros = i64;

/// A stored time as a `SystemTime`.
pub fn to_system_time(micros: Micros) -> SystemTime {
    if micros >= 0 { UNIX_EPOCH + Duration::from_micros(micros as u64) } else { UNIX_EPOCH }
}

/// A `SystemTime` as stored.
pub fn to_micros(time: SystemTime) -> Micros {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// One attempt of a job, as the attempts table holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptInfo {
    /// The attempt's id (a Ray job's `submission_id` derives from it).
    pub id: uuid::Uuid,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `local` or `ray_job`.
    pub runner: String,
    /// Where it is.
    pub state: AttemptState,
    /// Whether it counts against the job's retries (an attempt released at a
    /// worker's shutdown does not).
    pub charged: bool,
    /// The worker that claimed it.
    pub worker_id: Option<String>,
    /// The Ray job that ran it, for the `ray_job` runner.
    pub ray_job_id: Option<String>,
    /// When it was handed to the runner (µs since the epoch).
    pub submitted_at: Micros,
    /// When it started running.
    pub started_at: Option<Micros>,
    /// When it ended.
    pub finished_at: Option<Micros>,
    /// The last heartbeat.
    pub last_heartbeat: Micros,
    /// `Panic`, `Timeout`, `Lost`, `Cancelled`, or the error value's type.
    pub error_class: Option<String>,
    /// The error's message.
    pub error_message: Option<String>,
    /// The backtrace, when one was captured.
    pub backtrace: Option<String>,
    /// Where its result was stored, when large.
    pub result_ref: Option<String>,
    /// Where its logs are.
    pub log_ref: Option<String>,
}

/// A job as a listing or `job.info()` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    /// The id.
    pub id: JobId,
    /// The function's registered name.
    pub function: String,
    /// The arguments (JSON), or `None` when redacted.
    pub args: Option<serde_json::Value>,
    /// The queue.
    pub queue: String,
    /// -100..=100.
    pub priority: i32,
    /// Where it is.
    pub state: JobState,
    /// A name, when one was given.
    pub name: Option<String>,
    /// Its options.
    pub options: JobOptions,
    /// Attempts charged so far.
    pub attempts: u32,
    /// `max_retries + 1`.
    pub max_attempts: u32,
    /// The worker running it (while RUNNING).
    pub worker_id: Option<String>,
    /// Not before this time (µs since the epoch).
    pub run_after: Micros,
    /// Created (µs since the epoch).
    pub created_at: Micros,
    /// First started.
    pub started_at: Option<Micros>,
    /// Ended.
    pub finished_at: Option<Micros>,
    /// The result as JSON, when small enough to live in the row.
    pub result: Option<serde_json::Value>,
    /// Where a large result lives.
    pub result_ref: Option<String>,
    /// The last failure, `class: message`.
    pub last_error: Option<String>,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
    /// Every attempt, first to last (filled by `job.info()`, empty in listings).
    pub attempt_list: Vec<AttemptInfo>,
    /// Set in a listing when the recorded arguments or the result were left
    /// out for their size (over [`JobInfo::LISTED_VALUE_MAX`] bytes);
    /// the job itself (`job.info()`, `GET /api/jobs/{id}`) has them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub values_omitted: bool,
}

impl JobInfo {
    /// The longest arguments or result (bytes of JSON) a listing carries,
    /// and the longest last error (in characters) it shows, longer ones cut:
    /// a page of a thousand jobs stays a few megabytes, whatever they hold.
    /// (The sizes are read without reading the values: PostgreSQL keeps a
    /// large value's size beside it, SQLite in the row's header.)
    pub const LISTED_VALUE_MAX: usize = 4096;
}

/// Which jobs a listing shows, newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this function.
    pub function: Option<String>,
    /// Created at or after (µs since the epoch).
    pub created_after: Option<Micros>,
    /// Created before.
    pub created_before: Option<Micros>,
    /// Text that the id, name or function contains.
    pub search: Option<String>,
    /// Only jobs older than this one (the cursor of the previous page).
    pub before: Option<JobId>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<u32>,
}

impl JobFilter {
    /// The largest page.
    pub const MAX_LIMIT: u32 = 1000;

    /// Only `state`.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }
    /// Only `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Only `function`.
    pub fn function(mut self, function: impl Into<String>) -> Self {
        self.function = Some(function.into());
        self
    }
    /// Only jobs created in `[from, to)`.
    pub fn created_between(mut self, from: SystemTime, to: SystemTime) -> Self {
        self.created_after = Some(to_micros(from));
        self.created_before = Some(to_micros(to));
        self
    }
    /// Only jobs whose id, name or function contains `text`.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }
    /// Only jobs older than `job` (paging).
    pub fn before(mut self, job: JobId) -> Self {
        self.before = Some(job);
        self
    }
    /// At most `limit` jobs.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Counts and run times, as `q.stats()` gives them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// Jobs per state, over all queues.
    pub by_state: std::collections::BTreeMap<String, u64>,
    /// Jobs per queue and state.
    pub by_queue: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// Attempts LOST so far.
    pub lost_attempts: u64,
    /// Mean run time of succeeded attempts (recent ones), seconds.
    pub run_time_mean: f64,
    /// Median run time, seconds.
    pub run_time_p50: f64,
    /// 99th percentile run time, seconds.
    pub run_time_p99: f64,
    /// Workers whose lease is live.
    pub workers_alive: u64,
    /// Whether the cluster this process's runner submits to is down (its
    /// circuit breaker is open: jobs wait QUEUED until it answers again).
    /// Always `false` in a process without a cluster runner.
    #[serde(default)]
    pub cluster_down: bool,
    /// Submissions to a cluster this process saw fail (unreachable or failing).
    #[serde(default)]
    pub cluster_submission_failures: u64,
}

impl QueueStats {
    /// Jobs in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        self.by_state.get(state.as_str()).copied().unwrap_or(0)
    }
}

/// A live worker's lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerInfo {
    /// Unique per process.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// Queues it claims from.
    pub queues: Vec<String>,
    /// How many attempts it runs at once.
    pub concurrency: u32,
    /// `local` or `ray_job`.
    pub runner: String,
    /// Started (µs since the epoch).
    pub started_at: Micros,
    /// Last heartbeat.
    pub last_heartbeat: Micros,
    /// RUNNING, STOPPED or DEAD.
    pub state: String,
}

/// A lifecycle event: one job transition, as the event outbox keeps it.
/// The database writes it in the same transaction as the transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Unique within the database and increasing: the event's id.
    pub seq: i64,
    /// `submitted`, `started`, `retried`, `released`, `succeeded`, `failed`,
    /// `cancelled` or `lost`.
    pub kind: String,
    /// The job.
    pub job_id: JobId,
    /// Its function.
    pub function: String,
    /// Its queue.
    pub queue: String,
    /// The job's state after the transition.
    pub state: JobState,
    /// The attempt the transition concerns (0 before the first).
    pub attempt: u32,
    /// The failure, for `failed`, `retried` after a failure, and `lost`.
    pub error: Option<String>,
    /// The arguments, only for `submitted` and only when the job opted in.
    pub args: Option<serde_json::Value>,
    /// When (µs since the epoch).
    pub at: Micros,
}

impl Event {
    /// Every kind of event, in lifecycle order.
    pub const KINDS: &'static [&'static str] =
        &["submitted", "started", "retried", "released", "succeeded", "failed", "cancelled", "lost"];
}

/// A running job, with the attempt running it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveJob {
    /// The job.
    pub id: JobId,
    /// Its function.
    pub function: String,
    /// Its queue.
    pub queue: String,
    /// Its name, when one was given.
    pub name: Option<String>,
    /// The attempt's id.
    pub attempt_id: uuid::Uuid,
    /// The attempt's number (1 for the first).
    pub attempt: u32,
    /// SUBMITTED (waiting for a cluster) or RUNNING.
    pub attempt_state: AttemptState,
    /// `local` or `ray_job`.
    pub runner: String,
    /// The worker that claimed it.
    pub worker_id: Option<String>,
    /// The Ray job running it, for the `ray_job` runner.
    pub ray_job_id: Option<String>,
    /// When the attempt was handed to the runner (µs since the epoch).
    pub submitted_at: Micros,
    /// When it started running.
    pub started_at: Option<Micros>,
    /// Its last heartbeat.
    pub last_heartbeat: Micros,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_text() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), *state);
        }
        assert!("nope".parse::<JobState>().is_err());
        assert_eq!("lost".parse::<AttemptState>().unwrap(), AttemptState::Lost);
    }

    #[test]
    fn options_reject_out_of_range_values() {
        assert!(JobOptions::default().priority(101).validate().is_err());
        assert!(JobOptions::default().priority(-100).validate().is_ok());
        assert!(JobOptions::default().queue("").validate().is_err());
        assert!(JobOptions::default().timeout(Duration::ZERO).validate().is_err());
        let option_of = |options: JobOptions| match options.validate() {
            Err(QueueError::InvalidOption { option, .. }) => Some(option),
            _ => None,
        };
        // Text PostgreSQL refuses, and delays past what a time column holds.
        assert_eq!(option_of(JobOptions::default().queue("a\0b")), Some("queue"));
        assert_eq!(option_of(JobOptions::default().name("a\0b")), Some("name"));
        let past = LONGEST_DELAY + Duration::from_secs(1);
        assert_eq!(option_of(JobOptions::default().run_after(past)), Some("run_after"));
        assert_eq!(option_of(JobOptions::default().run_after(Duration::MAX)), Some("run_after"));
        assert_eq!(option_of(JobOptions::default().timeout(past)), Some("timeout"));
        assert_eq!(option_of(JobOptions::default().backoff(Duration::from_secs(1), past)), Some("backoff"));
        let far = SystemTime::now() + LONGEST_DELAY + Duration::from_secs(3600);
        assert_eq!(option_of(JobOptions::default().run_at(far)), Some("run_at"));
        assert_eq!(option_of(JobOptions::default().run_after(LONGEST_DELAY).timeout(LONGEST_DELAY)), None);
        let json =
            serde_json::to_string(&JobOptions::default().backoff(Duration::from_millis(5), Duration::from_secs(1)))
                .unwrap();
        let back: JobOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back.backoff, Some((Duration::from_millis(5), Duration::from_secs(1))));
    }

    #[test]
    fn retry_delays_grow_and_stay_under_the_cap() {
        let o = JobOptions::default().backoff(Duration::from_millis(100), Duration::from_millis(400));
        for _ in 0..100 {
            let first = o.retry_delay(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            assert!(o.retry_delay(10) <= Duration::from_millis(400));
        }
    }
}
