//! [`RayJobRunner`]: each attempt of a durable job runs as one Ray job.
//!
//! The worker claims an attempt (SUBMITTED) and hands it here. The runner
//! submits a Ray job whose submission id is derived from the attempt id (a
//! repeated submit after a crash finds the job already there instead of
//! starting a second one) and whose entrypoint is `<binary> run-attempt
//! <attempt-id> --db <url>`. That process marks the attempt RUNNING,
//! heartbeats it, runs the function and writes the outcome itself; the
//! runner records the Ray job id and log reference on the attempt and
//! follows the job's status until it ends. Then it reconciles: an attempt
//! the job wrote needs nothing more; a job that ended without writing it
//! makes it FAILED with Ray's message and the tail of the log; a job the
//! cluster no longer knows makes it LOST. Timeouts and cancellation stop
//! the Ray job; a job PENDING past its deadline is stopped and FAILED.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rustyray_queue::{Attempt, AttemptState, Claimed, Outcome, Queue, Runner, Stop};
use tokio::sync::OnceCell;

use crate::breaker::Breaker;
use crate::client::{JobDetails, JobStatus, JobSubmission, RayClient};
use crate::error::{RayError, Result};
use crate::package::{self, Package};

/// How the job binary reaches the cluster's nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BinaryMode {
    /// Every node sees the binary at the same path (a single-node cluster,
    /// or a shared filesystem): the entrypoint names that path.
    SharedPath,
    /// The binary is uploaded once per content hash as the job's
    /// `runtime_env` working_dir package; each node unpacks it beside the job.
    Upload,
}

/// Runs each attempt as a Ray job on a Ray cluster, through its dashboard's
/// Jobs API. Cheap to clone.
///
/// ```no_run
/// # async fn demo(q: rustyray_queue::Queue) -> Result<(), Box<dyn std::error::Error>> {
/// use rustyray_ray::RayJobRunner;
/// let runner = RayJobRunner::new("http://127.0.0.1:8265")? // token from RAY_AUTH_TOKEN & co.
///     .upload_binary(true);                                // for a multi-node cluster
/// let worker = rustyray_queue::Worker::builder(&q).concurrency(8).runner(runner).start().await?;
/// # worker.shutdown().await; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RayJobRunner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: RayClient,
    binary: Option<PathBuf>,
    mode: BinaryMode,
    db_url: Option<String>,
    pending_timeout: Duration,
    timeout_slack: Duration,
    stop_wait: Duration,
    poll: (Duration, Duration),
    log_tail: usize,
    runtime_env: Option<serde_json::Value>,
    resources: BTreeMap<String, f64>,
    breaker: Arc<Breaker>,
    package: OnceCell<Arc<Package>>,
    /// When the package was last found on the cluster.
    /// Held while the cluster is asked for the package (and it is
    /// uploaded): attempts starting at once wait for that one look, rather
    /// than each uploading the package again.
    package_seen: tokio::sync::Mutex<PackageLook>,
}

/// How long the dashboard is trusted to keep a package without being asked.
const PACKAGE_RECHECK: Duration = Duration::from_secs(60);

/// How long a look for the package that found the dashboard away answers
/// for the attempts queued behind it: they fail at once, as it did, rather
/// than each waiting out the same timeout in turn.
const PACKAGE_OUTAGE_MEMORY: Duration = Duration::from_secs(2);

/// The last look for the package on the cluster.
#[derive(Debug, Default)]
struct PackageLook {
    /// When the package was last found there.
    seen: Option<Instant>,
    /// When, and why, the last look found the dashboard away.
    away: Option<(Instant, String)>,
}

impl RayJobRunner {
    /// A runner for the cluster whose dashboard is at `address`
    /// (`http://HOST:8265`), with the token found where Ray looks for it
    /// (`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`).
    pub fn new(address: &str) -> Result<Self> {
        Ok(Self::with_client(RayClient::from_env(address)?))
    }

    /// A runner that talks to the cluster through `client`.
    pub fn with_client(client: RayClient) -> Self {
        RayJobRunner {
            inner: Arc::new(Inner {
                client,
                binary: None,
                mode: BinaryMode::SharedPath,
                db_url: None,
                pending_timeout: Duration::from_secs(600),
                timeout_slack: Duration::from_secs(15),
                stop_wait: Duration::from_secs(30),
                poll: (Duration::from_millis(50), Duration::from_secs(1)),
                log_tail: 8 * 1024,
                runtime_env: None,
                resources: BTreeMap::new(),
                breaker: Arc::default(),
                package: OnceCell::new(),
                package_seen: tokio::sync::Mutex::new(PackageLook::default()),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => {
                // A clone is alive: configure a copy (its breaker is shared).
                let old = &self.inner;
                let mut inner = Inner {
                    client: old.client.clone(),
                    binary: old.binary.clone(),
                    mode: old.mode.clone(),
                    db_url: old.db_url.clone(),
                    pending_timeout: old.pending_timeout,
                    timeout_slack: old.timeout_slack,
                    stop_wait: old.stop_wait,
                    poll: old.poll,
                    log_tail: old.log_tail,
                    runtime_env: old.runtime_env.clone(),
                    resources: old.resources.clone(),
                    breaker: old.breaker.clone(),
                    package: OnceCell::new(),
                    package_seen: tokio::sync::Mutex::new(PackageLook::default()),
                };
                f(&mut inner);
                self.inner = Arc::new(inner);
            }
        }
        self
    }

    /// The binary the Ray job runs (default: this program). It must hand
    /// its arguments to `rustyray::cli::run()` and define the job functions.
    pub fn binary(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.edit(|inner| inner.binary = Some(path))
    }

    /// `true`: upload the binary as the jobs' working_dir package (for a
    /// multi-node cluster); `false` (default): run it from its path.
    pub fn upload_binary(self, upload: bool) -> Self {
        self.edit(|inner| inner.mode = if upload { BinaryMode::Upload } else { BinaryMode::SharedPath })
    }

    /// The database URL the Ray job connects to (default: the queue's URL;
    /// give it here when that URL has a password, or when the cluster
    /// reaches the database under another name). A SQLite file works only
    /// when every Ray node sees that file; use PostgreSQL otherwise.
    pub fn db_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.edit(|inner| inner.db_url = Some(url))
    }

    /// How long a Ray job may stay PENDING before it is stopped and its
    /// attempt FAILED (default 10 minutes).
    pub fn pending_timeout(self, timeout: Duration) -> Self {
        self.edit(|inner| inner.pending_timeout = timeout)
    }

    /// How much longer than a job's timeout its Ray job may run before the
    /// runner stops it (default 15 s: the job process enforces the timeout
    /// itself; this covers a process that cannot).
    pub fn timeout_slack(self, slack: Duration) -> Self {
        self.edit(|inner| inner.timeout_slack = slack)
    }

    /// How many bytes of a failed job's log end up in its error (default 8 KiB).
    pub fn log_tail(self, bytes: usize) -> Self {
        self.edit(|inner| inner.log_tail = bytes)
    }

    /// Extra `runtime_env` for every job (`env_vars`, ...); in upload mode
    /// its `working_dir` is the binary's package.
    pub fn runtime_env(self, env: serde_json::Value) -> Self {
        self.edit(|inner| inner.runtime_env = Some(env))
    }

    /// A custom resource each job's entrypoint reserves (to pin jobs to
    /// nodes that have it).
    pub fn resource(self, name: impl Into<String>, amount: f64) -> Self {
        let name = name.into();
        self.edit(|inner| {
            inner.resources.insert(name, amount);
        })
    }

    /// The dashboard client.
    pub fn client(&self) -> &RayClient {
        &self.inner.client
    }

    /// The Ray submission id of an attempt's job.
    pub fn submission_id(attempt_id: uuid::Uuid) -> String {
        format!("rustyray-{attempt_id}")
    }
}

impl Runner for RayJobRunner {
    fn name(&self) -> &'static str {
        "ray_job"
    }

    fn initial_state(&self) -> AttemptState {
        AttemptState::Submitted
    }

    fn run(&self, attempt: Attempt) -> BoxFuture<'static, Outcome> {
        Box::pin(run(self.inner.clone(), attempt))
    }

    fn accepting(&self) -> bool {
        !self.inner.breaker.is_open()
    }

    fn adopts_orphans(&self) -> bool {
        true
    }
}

/// Names the attempt in messages.
fn who(claimed: &Claimed) -> String {
    format!("attempt {} of job {} (`{}`)", claimed.attempt_id, claimed.job_id, claimed.function)
}

async fn run(inner: Arc<Inner>, attempt: Attempt) -> Outcome {
    let Attempt { claimed, queue, mut stop, heartbeat, .. } = attempt;
    let id = RayJobRunner::submission_id(claimed.attempt_id);
    let submission = match submission(&inner, &queue, &claimed, &id, heartbeat).await {
        Ok(submission) => submission,
        Err(error) if error.is_cluster_down() => {
            inner.breaker.trip(&inner.client, &queue, &error);
            return Outcome::Unsubmitted { message: format!("{}: {error}", who(&claimed)) };
        }
        Err(error) => return Outcome::failed(class_of(&error), format!("{}: {error}", who(&claimed))),
    };
    match inner.client.submit(&submission).await {
        Ok(_) => {}
        Err(RayError::AlreadyExists { .. }) => {
            tracing::info!(ray_job = %id, "the Ray job exists already (a repeated submit): following it");
        }
        // A submit that failed on the way back (a timeout, a proxy's 502
        // after Ray took it) may have started the job: if Ray knows it,
        // it is followed, not requeued beside itself.
        Err(error) if error.is_cluster_down() && inner.client.job(&id).await.is_ok() => {
            tracing::info!(ray_job = %id, %error, "the submit failed, but Ray has the job: following it");
        }
        Err(error) => {
            if error.is_cluster_down() || matches!(error, RayError::Unauthorized { .. }) {
                inner.breaker.trip(&inner.client, &queue, &error);
            }
            if error.is_cluster_down() {
                return Outcome::Unsubmitted { message: format!("{}: {error}", who(&claimed)) };
            }
            return Outcome::failed(class_of(&error), format!("{}: {error}", who(&claimed)));
        }
    }
    let log_ref = format!("{}/api/jobs/{id}/logs", inner.client.address());
    if let Err(error) = queue.set_attempt_cluster_job(claimed.attempt_id, &id, &log_ref).await {
        tracing::warn!(ray_job = %id, %error, "cannot record the Ray job on its attempt");
    }
    follow(&inner, &queue, &claimed, &id, &mut stop).await
}

/// The error class an attempt gets for a failed call.
fn class_of(error: &RayError) -> &'static str {
    match error {
        RayError::Unauthorized { .. } | RayError::Token { .. } => "RayUnauthorized",
        RayError::Binary { .. } => "RayBinary",
        RayError::Unreachable { .. } => "RayUnreachable",
        _ => "RayRejected",
    }
}

/// The Ray job for one attempt.
/// The job process heartbeats its attempt as often as the worker would
/// (`heartbeat`): the worker leaves a begun attempt to it.
async fn submission(
    inner: &Inner,
    queue: &Queue,
    claimed: &Claimed,
    id: &str,
    heartbeat: Duration,
) -> Result<JobSubmission> {
    let db = match &inner.db_url {
        Some(url) => url.clone(),
        None if queue.url().contains("***") => {
            return Err(RayError::Binary {
                path: "(entrypoint)".into(),
                message: "the queue's database URL has a password, which the runner does not see: \
                          give the URL the Ray job should use with RayJobRunner::db_url"
                    .into(),
            });
        }
        None => queue.url().to_string(),
    };
    let (program, runtime_env) = match inner.mode {
        BinaryMode::SharedPath => {
            let binary = match &inner.binary {
                Some(path) => path.clone(),
                None => package::current_exe()?,
            };
            (binary.display().to_string(), inner.runtime_env.clone())
        }
        BinaryMode::Upload => {
            let package = ensure_package(inner).await?;
            let mut env = match inner.runtime_env.clone() {
                Some(serde_json::Value::Object(map)) => map,
                Some(other) => {
                    return Err(RayError::Binary {
                        path: "(runtime_env)".into(),
                        message: format!("the runtime_env must be a JSON object to carry the package, not {other}"),
                    });
                }
                None => serde_json::Map::new(),
            };
            env.insert("working_dir".into(), serde_json::Value::String(package.uri()));
            (format!("./{}", package.file_name), Some(serde_json::Value::Object(env)))
        }
    };
    let attempt = claimed.attempt_id.to_string();
    let beat = heartbeat.as_millis().clamp(10, u128::from(u32::MAX)).to_string();
    let words =
        [program.as_str(), "run-attempt", attempt.as_str(), "--heartbeat-ms", beat.as_str(), "--db", db.as_str()];
    let entrypoint = shlex::try_join(words).map_err(|error| RayError::Binary {
        path: program.clone(),
        message: format!("cannot quote the entrypoint: {error}"),
    })?;
    let metadata = BTreeMap::from([
        ("rustyray_job".to_string(), claimed.job_id.to_string()),
        ("rustyray_attempt".to_string(), attempt.clone()),
        ("rustyray_function".to_string(), claimed.function.clone()),
    ]);
    Ok(JobSubmission {
        entrypoint,
        submission_id: Some(id.to_string()),
        metadata: Some(metadata),
        entrypoint_num_cpus: claimed.options.num_cpus,
        entrypoint_resources: (!inner.resources.is_empty()).then(|| inner.resources.clone()),
        runtime_env,
        ..JobSubmission::default()
    })
}

/// The binary's package, built once and uploaded when the cluster lacks it.
async fn ensure_package(inner: &Inner) -> Result<Arc<Package>> {
    let package = inner
        .package
        .get_or_try_init(|| async {
            let path = match &inner.binary {
                Some(path) => path.clone(),
                None => package::current_exe()?,
            };
            let built =
                tokio::task::spawn_blocking(move || package::build(Path::new(&path))).await.map_err(|error| {
                    RayError::Binary { path: "(job binary)".into(), message: format!("packaging stopped: {error}") }
                })??;
            Ok::<_, RayError>(Arc::new(built))
        })
        .await?
        .clone();
    let mut look = inner.package_seen.lock().await;
    if look.seen.is_some_and(|at| at.elapsed() < PACKAGE_RECHECK) {
        return Ok(package);
    }
    if let Some((at, why)) = &look.away
        && at.elapsed() < PACKAGE_OUTAGE_MEMORY
    {
        return Err(RayError::Unreachable {
            address: inner.client.address().to_string(),
            action: format!("looking for package {}", package.name),
            message: format!("it was away {:.1?} ago: {why}", at.elapsed()),
        });
    }
    let looked = async {
        if !inner.client.package_exists(&package.name).await? {
            tracing::info!(package = %package.name, bytes = package.zip.len(), "uploading the job binary to the Ray cluster");
            inner.client.upload_package(&package.name, package.zip.clone()).await?;
        }
        Ok::<_, RayError>(())
    }
    .await;
    match looked {
        Ok(()) => {
            look.seen = Some(Instant::now());
            look.away = None;
            Ok(package)
        }
        Err(error) => {
            if error.is_cluster_down() {
                look.away = Some((Instant::now(), error.to_string()));
            }
            Err(error)
        }
    }
}

/// Follows the Ray job to its end and says what to record.
async fn follow(
    inner: &Inner,
    queue: &Queue,
    claimed: &Claimed,
    id: &str,
    stop: &mut tokio::sync::watch::Receiver<Option<Stop>>,
) -> Outcome {
    let submitted = Instant::now();
    let mut running_since: Option<Instant> = None;
    let mut poll = inner.poll.0;
    let mut failures = 0u32;
    loop {
        let asked = tokio::select! {
            changed = stop.wait_for(Option::is_some) => changed.ok().and_then(|reason| *reason),
            _ = tokio::time::sleep(poll) => None,
        };
        if let Some(reason) = asked {
            stop_job(inner, id, inner.stop_wait).await;
            return match reason {
                Stop::Cancel => Outcome::Cancelled,
                Stop::Release => Outcome::Released,
            };
        }
        poll = (poll * 3 / 2).min(inner.poll.1);
        let details = match inner.client.job(id).await {
            Ok(details) => {
                failures = 0;
                details
            }
            Err(RayError::NotFound { .. }) => {
                if written(queue, claimed).await {
                    return Outcome::Recorded;
                }
                return Outcome::Lost {
                    message: format!(
                        "{}: the Ray cluster at {} no longer knows Ray job {id}",
                        who(claimed),
                        inner.client.address()
                    ),
                };
            }
            Err(error) => {
                // The dashboard is away for now: the job may still run and
                // write its attempt, and keep asking, less often. A job
                // process that began heartbeats its attempt itself: were it
                // gone with its cluster, its attempt goes silent, is found
                // LOST, and this loop ends at `written`. One that never
                // began is given up past the pending timeout, as a job Ray
                // holds PENDING is: should it start later, it runs nothing.
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(ray_job = %id, %error, "cannot read the Ray job's status; retrying");
                }
                if written(queue, claimed).await {
                    return Outcome::Recorded;
                }
                if submitted.elapsed() > inner.pending_timeout
                    && matches!(queue.attempt_state(claimed.attempt_id).await, Ok(Some(AttemptState::Submitted)))
                {
                    return Outcome::failed(
                        "RayUnreachable",
                        format!(
                            "{}: Ray job {id} did not begin within {:?}, and the dashboard at {} has not answered \
                             since ({error})",
                            who(claimed),
                            inner.pending_timeout,
                            inner.client.address()
                        ),
                    );
                }
                poll = inner.poll.1;
                continue;
            }
        };
        match details.status {
            JobStatus::Pending | JobStatus::Unknown => {
                if submitted.elapsed() > inner.pending_timeout {
                    // Ray keeps a job it never placed PENDING even once
                    // stopped; should it start later, its attempt is no
                    // longer SUBMITTED and it runs nothing.
                    stop_job(inner, id, Duration::from_secs(2)).await;
                    if written(queue, claimed).await {
                        return Outcome::Recorded;
                    }
                    return Outcome::failed(
                        "RayPending",
                        format!(
                            "{}: Ray job {id} stayed PENDING longer than {:?} and was stopped{}",
                            who(claimed),
                            inner.pending_timeout,
                            details.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
                        ),
                    );
                }
            }
            JobStatus::Running => {
                let since = *running_since.get_or_insert_with(Instant::now);
                if let Some(timeout) = claimed.options.timeout
                    && past_timeout(since.elapsed(), timeout, inner.timeout_slack)
                {
                    stop_job(inner, id, inner.stop_wait).await;
                    if written(queue, claimed).await {
                        return Outcome::Recorded;
                    }
                    return Outcome::TimedOut(timeout);
                }
            }
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Stopped => {
                return conclude(inner, queue, claimed, id, &details).await;
            }
        }
    }
}

/// Whether a job that has run for `ran` is past its `timeout` and the
/// `slack` Ray gets to start it (which any `Duration` may be, `MAX` too).
fn past_timeout(ran: Duration, timeout: Duration, slack: Duration) -> bool {
    ran > timeout.saturating_add(slack)
}

/// Whether the job process wrote its attempt's outcome.
async fn written(queue: &Queue, claimed: &Claimed) -> bool {
    match queue.attempt_state(claimed.attempt_id).await {
        Ok(Some(state)) => !matches!(state, AttemptState::Submitted | AttemptState::Running),
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(attempt = %claimed.attempt_id, %error, "cannot read the attempt's state");
            false
        }
    }
}

/// A Ray job ended: nothing to do when it wrote its attempt; otherwise the
/// attempt FAILED with Ray's message and the end of the job's log.
async fn conclude(inner: &Inner, queue: &Queue, claimed: &Claimed, id: &str, details: &JobDetails) -> Outcome {
    if written(queue, claimed).await {
        return Outcome::Recorded;
    }
    let tail = match inner.client.logs_tail(id, inner.log_tail).await {
        Ok(tail) if tail.trim().is_empty() => "(the log is empty)".to_string(),
        Ok(tail) => tail,
        Err(error) => format!("(the log could not be read: {error})"),
    };
    let (class, status) = match details.status {
        JobStatus::Stopped => ("RayJobStopped", "STOPPED"),
        JobStatus::Succeeded => ("RayJobFailed", "SUCCEEDED without recording its attempt"),
        _ => ("RayJobFailed", "FAILED"),
    };
    let message = details.message.as_deref().unwrap_or("no message");
    Outcome::failed(
        class,
        format!("{}: Ray job {id} ended {status}: {}\n--- end of its log ---\n{tail}", who(claimed), message.trim()),
    )
}

/// Asks Ray to stop the job and waits (bounded by `wait`) until it has ended.
async fn stop_job(inner: &Inner, id: &str, wait: Duration) {
    match inner.client.stop(id).await {
        Ok(_) | Err(RayError::NotFound { .. }) => {}
        Err(error) => {
            tracing::warn!(ray_job = %id, %error, "cannot stop the Ray job");
            return;
        }
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match inner.client.job(id).await {
            Ok(details) if !details.status.is_terminal() => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return,
        }
    }
    tracing::warn!(ray_job = %id, "the Ray job did not stop within {wait:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attempts_behind_a_look_that_found_the_dashboard_away_fail_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("app");
        std::fs::write(&binary, b"not much of a binary").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let runner =
            RayJobRunner::new(&format!("http://127.0.0.1:{port}")).unwrap().upload_binary(true).binary(&binary);
        let first = ensure_package(&runner.inner).await.map(|_| ()).unwrap_err();
        assert!(first.is_cluster_down(), "{first}");
        // The next attempt does not ask again while the outage is fresh.
        let second = ensure_package(&runner.inner).await.map(|_| ()).unwrap_err();
        assert!(matches!(&second, RayError::Unreachable { message, .. } if message.contains("was away")), "{second}");
    }

    #[test]
    fn a_timeout_counts_the_slack_and_any_slack_is_taken() {
        let second = Duration::from_secs(1);
        assert!(!past_timeout(second * 2, second, second));
        assert!(past_timeout(second * 3, second, second));
        // A slack (or timeout) of for ever never ends the job, and never panics.
        assert!(!past_timeout(Duration::from_secs(1 << 40), second, Duration::MAX));
        assert!(!past_timeout(Duration::MAX, Duration::MAX, Duration::MAX));
    }
}
