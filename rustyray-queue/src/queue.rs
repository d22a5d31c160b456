//! [`Queue`]: a handle on one queue database, shared by producers, workers
//! and the service.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustyray_core::{EnqueueCall, JobQueue, TaskOptions, registry};
use tokio::sync::broadcast;

use crate::db::{ConnectOptions, Db, Kind};
use crate::error::{QueueError, Result};
use crate::job::Job;
use crate::model::{
    ActiveJob, AttemptState, Event, JobFilter, JobId, JobInfo, JobOptions, JobState, QueueStats, WorkerInfo,
};
use crate::results::{DirStore, ResultStore};
use crate::signal::{self, Signal, Signals};
use crate::store::{self, enqueue::NewJob};

/// The default size limit of a result kept in the job's row.
pub const DEFAULT_RESULT_LIMIT: usize = 64 * 1024;

/// A durable queue: jobs in a SQLite file or a PostgreSQL database.
///
/// Cheap to clone; clones share the connections. Workers started from a
/// queue (or a clone of it) are woken at once by jobs enqueued through it.
///
/// ```no_run
/// # async fn demo() -> Result<(), rustyray_queue::QueueError> {
/// use rustyray_queue::{JobOptions, Queue};
///
/// let q = Queue::connect("sqlite://jobs.db").await?;
/// let id = q.enqueue_by_name("app::resize", serde_json::json!(["a.png", 800]), JobOptions::default()).await?;
/// println!("{:?}", q.job(id).await?.state);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) signals: Signals,
    pub(crate) results: Arc<dyn ResultStore>,
    pub(crate) result_limit: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) event_retention: Duration,
    pub(crate) counters: Counters,
    /// Enqueues waiting to share the next transaction.
    pub(crate) commits: crate::group_commit::GroupCommit,
    /// The in-process runtimes this process's workers run on, reported with
    /// the queue's metrics (weakly held: a runtime that is gone drops out).
    #[cfg(feature = "metrics")]
    pub(crate) runtimes: std::sync::Mutex<Vec<rustyray_runtime::MetricsCollector>>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

/// Totals this process has seen, for metrics.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) run_time: prometheus_client::metrics::histogram::Histogram,
    pub(crate) submitted: AtomicU64,
    pub(crate) submission_failures: AtomicU64,
    /// Enqueues whose idempotency key named a job already stored.
    pub(crate) deduplicated: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) cluster_submission_failures: AtomicU64,
    pub(crate) cluster_down: std::sync::atomic::AtomicBool,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            run_time: crate::metrics::run_time_histogram(),
            submitted: Default::default(),
            submission_failures: Default::default(),
            deduplicated: Default::default(),
            succeeded: Default::default(),
            failed: Default::default(),
            retried: Default::default(),
            cancelled: Default::default(),
            lost: Default::default(),
            cluster_submission_failures: Default::default(),
            cluster_down: Default::default(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("database", &self.inner.db.url).finish_non_exhaustive()
    }
}

/// How to open a [`Queue`]: `Queue::builder(url)....connect().await`.
#[derive(Debug)]
#[must_use = "a builder does nothing until `.connect()` is awaited"]
pub struct QueueBuilder {
    url: String,
    connect: ConnectOptions,
    results: Option<Arc<dyn ResultStore>>,
    result_limit: usize,
    poll_interval: Duration,
    event_retention: Duration,
}

/// How long lifecycle events are kept by default: a week.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl QueueBuilder {
    /// Most database connections this process opens (default 8).
    ///
    /// On PostgreSQL a pooled connection is checked before use only when it
    /// sat idle a second or more; one that a server restart broke within
    /// that second fails the statement that finds it, with an error that
    /// [`QueueError::is_transient`] calls transient (the pool then replaces
    /// it). A SQLite file also has four read-only connections beside these.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.connect.max_connections = n.max(1);
        self
    }

    /// Results longer than this (as JSON) go to the result store (default 64 KiB).
    pub fn result_limit(mut self, bytes: usize) -> Self {
        self.result_limit = bytes;
        self
    }

    /// Where large results go (default: a directory beside a SQLite file, or
    /// `./rustyray-results`).
    pub fn result_store(mut self, store: impl ResultStore) -> Self {
        self.results = Some(Arc::new(store));
        self
    }

    /// How often to look for changes made by other processes that cannot
    /// notify this one (SQLite; default 50 ms; at least 1 ms and at most
    /// [`LONGEST_WAIT`](crate::LONGEST_WAIT)). PostgreSQL notifies.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.clamp(Duration::from_millis(1), crate::LONGEST_WAIT);
        self
    }

    /// How long workers keep lifecycle events before deleting them (default
    /// a week). A broker that stays down longer misses what was deleted.
    pub fn event_retention(mut self, keep: Duration) -> Self {
        self.event_retention = keep;
        self
    }

    /// Connects, creating the schema if the database is new.
    pub async fn connect(self) -> Result<Queue> {
        let db = Db::connect(&self.url, &self.connect).await?;
        let results = match self.results {
            Some(results) => results,
            None => Arc::new(DirStore::new(default_result_dir(&self.url))),
        };
        let (signals, _) = broadcast::channel(4096);
        let listener = signal::listen(&db, &signals);
        Ok(Queue {
            inner: Arc::new(Inner {
                db,
                signals,
                results,
                result_limit: self.result_limit,
                poll_interval: self.poll_interval,
                event_retention: self.event_retention,
                counters: Counters::default(),
                commits: Default::default(),
                #[cfg(feature = "metrics")]
                runtimes: Default::default(),
                listener,
            }),
        })
    }
}

fn default_result_dir(url: &str) -> PathBuf {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).map(|rest| {
        let path = rest.split('?').next().unwrap_or(rest);
        PathBuf::from(format!("{path}.results"))
    });
    match path {
        Some(path) if !url.contains(":memory:") => path,
        Some(_) => std::env::temp_dir().join("rustyray-results"),
        None => PathBuf::from("rustyray-results"),
    }
}

impl Queue {
    /// Connects to `sqlite://PATH` (created with its schema if new) or
    /// `postgres://USER@HOST/DB`, with default settings.
    pub async fn connect(url: &str) -> Result<Queue> {
        Self::builder(url).connect().await
    }

    /// A builder for a queue with settings.
    pub fn builder(url: impl Into<String>) -> QueueBuilder {
        QueueBuilder {
            url: url.into(),
            connect: ConnectOptions::default(),
            results: None,
            result_limit: DEFAULT_RESULT_LIMIT,
            poll_interval: Duration::from_millis(50),
            event_retention: DEFAULT_EVENT_RETENTION,
        }
    }

    /// The database URL, without its password.
    pub fn url(&self) -> &str {
        &self.inner.db.url
    }

    /// Whether the queue lives in SQLite (else PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.inner.db.kind() == Kind::Sqlite
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Listens to changes of this queue (see [`Signal`]).
    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.inner.signals.subscribe()
    }

    pub(crate) fn signal(&self, signal: Signal) {
        let _ = self.inner.signals.send(signal);
    }

    /// Checks a call against the registry: the function exists and the JSON
    /// decodes into its parameters. Nothing is written.
    pub fn check_call(&self, function: &str, args: &serde_json::Value, options: &JobOptions) -> Result<()> {
        options.validate()?;
        let registered = registry::lookup(function).map_err(QueueError::UnknownFunction)?;
        registered.check_json_args(args).map_err(|error| QueueError::InvalidArguments {
            function: function.to_string(),
            message: error.to_string(),
        })
    }

    /// Enqueues a call of a registered function by name, with JSON arguments
    /// (an array, one element per parameter). The name and arguments are
    /// checked first: when either is wrong, nothing is written.
    pub async fn enqueue_by_name(&self, function: &str, args: serde_json::Value, options: JobOptions) -> Result<JobId> {
        let ids = self.enqueue_many_by_name(vec![(function.to_string(), args, options)]).await?;
        ids.into_iter().next().ok_or_else(|| QueueError::Worker("enqueue wrote no job".into()))
    }

    /// Enqueues many calls in one transaction: all or none.
    pub async fn enqueue_many_by_name(
        &self,
        calls: Vec<(String, serde_json::Value, JobOptions)>,
    ) -> Result<Vec<JobId>> {
        let mut jobs = Vec::with_capacity(calls.len());
        for (function, args, options) in calls {
            if let Err(error) = self.check_call(&function, &args, &options) {
                self.inner.counters.submission_failures.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
            jobs.push(NewJob { id: JobId::new(), function, args: args.to_string(), options, deduplicated: false });
        }
        self.insert(jobs).await
    }

    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let count = jobs.len() as u64;
        match crate::group_commit::GroupCommit::insert(self, jobs).await {
            (jobs, Ok(())) => {
                let deduplicated = jobs.iter().filter(|job| job.deduplicated).count() as u64;
                let counters = &self.inner.counters;
                counters.submitted.fetch_add(jobs.len() as u64 - deduplicated, Ordering::Relaxed);
                counters.deduplicated.fetch_add(deduplicated, Ordering::Relaxed);
                for job in &jobs {
                    let queue = job.options.queue_name();
                    if job.deduplicated {
                        tracing::debug!(job = %job.id, function = %job.function, queue, "enqueue deduplicated by its key");
                    } else {
                        tracing::debug!(job = %job.id, function = %job.function, queue, "enqueued");
                    }
                }
                // One wake-up for the batch; nobody waits on a job becoming QUEUED.
                self.signal(Signal::Ready);
                Ok(jobs.into_iter().map(|job| job.id).collect())
            }
            (_, Err(error)) => {
                self.inner.counters.submission_failures.fetch_add(count, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// One job with its attempts; arguments shown only when the function
    /// opted in (`record_args`).
    pub async fn job(&self, id: JobId) -> Result<JobInfo> {
        let mut info = store::job(self.db(), id, store::Args::Recorded).await?;
        redact(&mut info);
        Ok(info)
    }

    /// One job with its attempts and its arguments, redacted or not.
    pub async fn job_unredacted(&self, id: JobId) -> Result<JobInfo> {
        store::job(self.db(), id, store::Args::All).await
    }

    /// A job's state.
    pub async fn state(&self, id: JobId) -> Result<JobState> {
        store::job_state(self.db(), id).await
    }

    /// Jobs a filter selects, newest first (without their attempts; arguments
    /// redacted; values over [`JobInfo::LISTED_VALUE_MAX`] left out, see
    /// [`JobInfo::values_omitted`]).
    pub async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobInfo>> {
        let mut rows = store::jobs(self.db(), &filter).await?;
        rows.iter_mut().for_each(redact);
        Ok(rows)
    }

    /// Counts per state and queue, run-time mean/p50/p99, live workers.
    pub async fn stats(&self) -> Result<QueueStats> {
        let mut stats = store::stats(self.db(), 30_000_000).await?;
        let counters = &self.inner.counters;
        stats.cluster_down = counters.cluster_down.load(Ordering::Relaxed);
        stats.cluster_submission_failures = counters.cluster_submission_failures.load(Ordering::Relaxed);
        Ok(stats)
    }

    /// An attempt's state; `None` when no attempt has this id.
    pub async fn attempt_state(&self, attempt: uuid::Uuid) -> Result<Option<AttemptState>> {
        store::attempt::state(self.db(), attempt).await
    }

    /// Records which cluster job runs `attempt` and where its log can be
    /// read (a cluster runner calls this once it has submitted the job).
    pub async fn set_attempt_cluster_job(
        &self,
        attempt: uuid::Uuid,
        cluster_job_id: &str,
        log_ref: &str,
    ) -> Result<()> {
        store::attempt::set_cluster_job(self.db(), attempt, cluster_job_id, log_ref).await
    }

    /// Counts one submission to a cluster that failed because the cluster
    /// could not take it (unreachable, failing); shown in [`stats`](Self::stats)
    /// and the metrics.
    pub fn note_cluster_submission_failure(&self) {
        self.inner.counters.cluster_submission_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Says whether the cluster this process's runner submits to is down
    /// (its circuit breaker open); shown in [`stats`](Self::stats) and the metrics.
    pub fn set_cluster_down(&self, down: bool) {
        self.inner.counters.cluster_down.store(down, Ordering::Relaxed);
    }

    /// Running jobs with the attempt, worker, runner and Ray job running
    /// each, oldest first, at most `limit`.
    pub async fn active(&self, limit: u32) -> Result<Vec<ActiveJob>> {
        store::active(self.db(), limit).await
    }

    /// The workers' leases.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        store::lease::workers(self.db()).await
    }

    /// Cancels a job: QUEUED becomes CANCELLED at once; a RUNNING job's
    /// worker stops it and it ends CANCELLED. Returns the state after the
    /// call (RUNNING while the worker is stopping it).
    pub async fn cancel(&self, id: JobId) -> Result<JobState> {
        let state = store::cancel(self.db(), id).await?;
        match state {
            JobState::Running => self.signal(Signal::CancelRequested(id)),
            state => self.signal(Signal::Moved(id, state)),
        }
        Ok(state)
    }

    /// Runs a FAILED or CANCELLED job again, as a new attempt with its
    /// retries restored.
    pub async fn retry(&self, id: JobId) -> Result<()> {
        store::retry(self.db(), id).await?;
        self.signal(Signal::Ready);
        self.signal(Signal::Moved(id, JobState::Queued));
        Ok(())
    }

    /// Limits how many jobs of `queue` run at once across every worker
    /// (`None` removes the limit; the queue `*` limits all jobs).
    pub async fn set_queue_limit(&self, queue: &str, max_running: Option<u32>) -> Result<()> {
        store::lease::set_limit(self.db(), queue, max_running).await
    }

    /// Up to `limit` lifecycle events after sequence number `after`, oldest
    /// first. Arguments appear only for jobs that opted in.
    pub async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        store::events::after(self.db(), after, limit).await
    }

    /// Up to `limit` events a broker has not acknowledged yet, oldest first.
    pub async fn unpublished_events(&self, limit: u32) -> Result<Vec<Event>> {
        store::events::unpublished(self.db(), limit).await
    }

    /// Records that a broker acknowledged events `seqs`.
    pub async fn mark_events_published(&self, seqs: &[i64]) -> Result<()> {
        store::events::mark_published(self.db(), seqs).await
    }

    /// The newest event's sequence number (0 when none was written).
    pub async fn last_event_seq(&self) -> Result<i64> {
        store::events::last_seq(self.db()).await
    }

    /// Deletes events older than `keep`; returns how many went.
    pub async fn prune_events(&self, keep: Duration) -> Result<u64> {
        store::events::prune(self.db(), i64::try_from(keep.as_micros()).unwrap_or(i64::MAX)).await
    }

    /// How long a round trip to the database takes now.
    pub async fn ping(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        store::ping(self.db()).await?;
        Ok(started.elapsed())
    }

    /// Reads a stored result: from the row, or from the result store.
    pub(crate) async fn load_result(&self, info: &JobInfo) -> Result<serde_json::Value> {
        if let Some(value) = &info.result {
            return Ok(value.clone());
        }
        let Some(reference) = &info.result_ref else {
            return Ok(serde_json::Value::Null);
        };
        let bytes = self.inner.results.get(reference).await?;
        serde_json::from_slice(&bytes).map_err(|error| QueueError::Codec {
            context: format!("reading the result of job {} from {reference}", info.id),
            message: error.to_string(),
        })
    }
}

/// Drops the arguments unless the job opted in.
fn redact(info: &mut JobInfo) {
    if !info.options.record_args {
        info.args = None;
    }
}

impl JobQueue for Queue {
    type Job<T: Send + 'static> = Job<T>;
    type Error = QueueError;

    async fn enqueue_call<T: Send + 'static>(&self, call: EnqueueCall) -> Result<Job<T>> {
        let mut jobs = self.enqueue_calls(vec![call]).await?;
        jobs.pop().ok_or_else(|| QueueError::Worker("enqueue wrote no job".into()))
    }

    async fn enqueue_calls<T: Send + 'static>(&self, calls: Vec<EnqueueCall>) -> Result<Vec<Job<T>>> {
        let mut jobs = Vec::with_capacity(calls.len());
        for call in calls {
            let checked = (|| {
                refused_options(call.function, &call.options)?;
                let options = JobOptions { idempotency_key: call.idempotency_key, ..JobOptions::from(&call.options) };
                options.validate()?;
                let args = call.args.map_err(|message| QueueError::InvalidArguments {
                    function: call.function.to_string(),
                    message: format!("cannot encode them as JSON: {message}"),
                })?;
                Ok((options, args))
            })();
            let (options, args) = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    self.inner.counters.submission_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(error);
                }
            };
            jobs.push(NewJob {
                id: JobId::new(),
                function: call.function.to_string(),
                args: args.to_string(),
                options,
                deduplicated: false,
            });
        }
        let ids = self.insert(jobs).await?;
        Ok(ids.into_iter().map(|id| Job::from_id(self, id)).collect())
    }

    fn check_options(&self, function: &'static str, options: &TaskOptions) -> Result<()> {
        let refused = refused_options(function, options);
        if refused.is_err() {
            self.inner.counters.submission_failures.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }
}

/// The error for options that were refused as they were set (`f::options()`
/// records the first invalid one), naming the function.
fn refused_options(function: &'static str, options: &TaskOptions) -> Result<()> {
    let Some(invalid) = &options.invalid else { return Ok(()) };
    if let rustyray_core::Error::InvalidOption { option, reason } = &**invalid {
        let reason = format!("{reason} (enqueueing `{function}`)");
        return Err(QueueError::InvalidOption { option, reason });
    }
    Err(QueueError::InvalidArguments { function: function.to_string(), message: invalid.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_live_beside_a_sqlite_file_by_default() {
        assert_eq!(default_result_dir("sqlite:///tmp/x/jobs.db?mode=rwc"), PathBuf::from("/tmp/x/jobs.db.results"));
        assert_eq!(default_result_dir("postgres://db/app"), PathBuf::from("rustyray-results"));
    }
}
