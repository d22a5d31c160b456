//! The Ray runner against a real Ray cluster: the same cases through the
//! `local` and `ray_job` runners leave the same rows; a worker killed with
//! SIGKILL while its Ray jobs run loses nothing and runs nothing twice; bad
//! input (unreachable dashboard, wrong token, missing binary, a rejected
//! submission, a job that never starts, a huge log, a cluster lost with its
//! dashboard while a job runs) ends as a clear error on the attempt and a
//! consistent job.
//!
//! The dashboard comes from `RUSTYRAY_TEST_RAY` (`http://127.0.0.1:8265`,
//! auth off); the token test uses a second dashboard with auth on,
//! `RUSTYRAY_TEST_RAY_AUTH`, and its token `RUSTYRAY_TEST_RAY_AUTH_TOKEN`.
//! Unset, the tests that need them say so and pass.
//!
//! This file has its own `main` (no libtest harness) so the test binary is
//! also the Ray jobs' entrypoint: `ray_jobs run-attempt ID --db URL` and
//! `ray_jobs worker ...` go to `rustyray::cli::run()`. Arguments that are
//! not a command filter the tests by name, as libtest's do.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustyray::queue::{AttemptState, Job, JobId, JobInfo, JobState, Queue, Worker};
use rustyray::ray::{RayClient, RayJobRunner};

// ---- the job functions -------------------------------------------------

#[rustyray::remote]
fn square(n: u64) -> u64 {
    n * n
}

#[rustyray::remote]
fn odd_fails(n: u64) -> Result<u64, String> {
    if n % 2 == 1 { Err(format!("{n} is odd")) } else { Ok(n) }
}

#[rustyray::remote]
fn boom(n: u64) -> u64 {
    if n > 0 {
        panic!("boom {n}");
    }
    n
}

/// Fails on its first run, succeeds after: counts its runs in `path`.
#[rustyray::remote]
fn flaky(path: String) -> Result<u64, String> {
    let runs = std::fs::read_to_string(&path).map(|s| s.lines().count() as u64).unwrap_or(0);
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&path).map_err(|e| e.to_string())?;
    writeln!(f, "run").map_err(|e| e.to_string())?;
    if runs == 0 { Err("not yet".to_string()) } else { Ok(runs + 1) }
}

#[rustyray::remote]
fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[rustyray::remote]
fn big(bytes: u64) -> String {
    "x".repeat(bytes as usize)
}

/// Writes `mb` MB to stdout, then ends the process without recording.
#[rustyray::remote]
fn noisy_exit(mb: u64) -> u64 {
    let line = "0123456789".repeat(10);
    let mut out = std::io::stdout().lock();
    for i in 0..mb * 10_000 {
        let _ = writeln!(out, "{i:08} {line}");
    }
    let _ = writeln!(out, "THE LAST LINE");
    let _ = out.flush();
    std::process::exit(7);
}

/// Appends `id` to `path` (one line per run), after `ms`.
#[rustyray::remote]
fn record(path: String, id: u64, ms: u64) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(ms));
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&path).map_err(|e| e.to_string())?;
    writeln!(f, "{id}").map_err(|e| e.to_string())?;
    Ok(id)
}

// ---- the harness -------------------------------------------------------

const COMMANDS: &[&str] =
    &["run-attempt", "worker", "enqueue", "jobs", "show", "cancel", "retry", "stats", "functions"];

type Case = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| COMMANDS.contains(&a.as_str())) {
        return rustyray::cli::run();
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let cases: Vec<(&str, Case)> = vec![
        ("matrix_local_and_ray_job_leave_the_same_rows", || Box::pin(matrix())),
        ("sigkill_worker_while_ray_jobs_run_loses_nothing", || Box::pin(sigkill(None))),
        ("sigkill_worker_restarted_under_its_id_follows_its_ray_jobs", || Box::pin(sigkill(Some("pod-0")))),
        ("unreachable_dashboard_pauses_claiming_then_resumes", || Box::pin(unreachable())),
        ("wrong_token_is_a_clear_error", || Box::pin(wrong_token())),
        ("missing_binary_is_a_clear_error", || Box::pin(missing_binary())),
        ("rejected_submission_is_a_clear_error", || Box::pin(rejected())),
        ("pending_past_deadline_is_stopped_and_failed", || Box::pin(pending())),
        ("cluster_lost_while_a_job_runs_loses_the_attempt", || Box::pin(cluster_lost())),
        ("huge_log_keeps_a_bounded_tail", || Box::pin(huge_log())),
        ("uploaded_binary_runs_jobs", || Box::pin(uploaded())),
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let began = Instant::now();
        let outcome = runtime.block_on(async { tokio::spawn(case()).await });
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:.1} s)", began.elapsed().as_secs_f64()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    println!("\n{ran} tests, {} failed", failed.len());
    // Plain bodies abandoned at a timeout may still sleep: do not wait for them.
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}

fn ray_address() -> Option<String> {
    match std::env::var("RUSTYRAY_TEST_RAY") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "\n*** RUSTYRAY_TEST_RAY is not set: SKIPPING this Ray test (start `ray start --head` and set it \
                 to the dashboard, e.g. http://127.0.0.1:8265) ***\n"
            );
            None
        }
    }
}

struct Db {
    url: String,
    dir: tempfile::TempDir,
}

fn sqlite() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    Db { url: format!("sqlite://{}/jobs.db", dir.path().display()), dir }
}

async fn queue(db: &Db) -> Queue {
    Queue::builder(&db.url).poll_interval(Duration::from_millis(10)).connect().await.expect("connect")
}

fn ray_runner(address: &str) -> RayJobRunner {
    RayJobRunner::with_client(RayClient::new(address).expect("address")).pending_timeout(Duration::from_secs(120))
}

async fn worker_with(q: &Queue, runner: Option<RayJobRunner>) -> Worker {
    let builder =
        Worker::builder(q).concurrency(4).heartbeat(Duration::from_millis(200)).stuck_timeout(Duration::from_secs(10));
    match runner {
        Some(runner) => builder.runner(runner).start().await.expect("worker"),
        None => builder.start().await.expect("worker"),
    }
}

/// Waits (bounded) until `check` holds.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let began = Instant::now();
    while !check().await {
        assert!(began.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finished(q: &Queue, id: JobId) -> JobInfo {
    until("the job's end", Duration::from_secs(180), || async {
        matches!(q.state(id).await, Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled))
    })
    .await;
    q.job_unredacted(id).await.expect("job")
}

// ---- the matrix --------------------------------------------------------

#[derive(Copy, Clone, Debug)]
enum Kind {
    Success,
    Err,
    Panic,
    RetryThenSuccess,
    Timeout,
    CancelQueued,
    CancelRunning,
    ResultOverLimit,
}

/// What the database says of a job, runner-specific fields left out.
#[derive(Debug, PartialEq)]
struct Rows {
    state: JobState,
    charged: u32,
    max_attempts: u32,
    result: Option<serde_json::Value>,
    result_in_store: bool,
    last_error: Option<String>,
    attempts: Vec<(AttemptState, bool, Option<String>, Option<String>)>,
}

async fn run_case(kind: Kind, ray: Option<&str>) -> Rows {
    let db = sqlite();
    let q = queue(&db).await;
    let worker = worker_with(&q, ray.map(ray_runner)).await;
    let counter = db.dir.path().join("flaky-runs").display().to_string();
    let id = match kind {
        Kind::Success => square::enqueue(&q, 7).await.unwrap().id(),
        Kind::Err => odd_fails::enqueue(&q, 3).await.unwrap().id(),
        Kind::Panic => boom::enqueue(&q, 1).await.unwrap().id(),
        Kind::RetryThenSuccess => flaky::options()
            .max_retries(2)
            .backoff(Duration::from_millis(10), Duration::from_millis(20))
            .enqueue(&q, counter)
            .await
            .unwrap()
            .id(),
        Kind::Timeout => sleepy::options().timeout(Duration::from_secs(1)).enqueue(&q, 10_000).await.unwrap().id(),
        Kind::CancelQueued => {
            let job = square::options().run_after(Duration::from_secs(3600)).enqueue(&q, 2).await.unwrap();
            q.cancel(job.id()).await.unwrap();
            job.id()
        }
        Kind::CancelRunning => {
            let job = sleepy::enqueue(&q, 60_000).await.unwrap();
            let id = job.id();
            until("the attempt to run", Duration::from_secs(120), || async {
                let info = q.job(id).await.unwrap();
                info.attempt_list.last().is_some_and(|a| a.state == AttemptState::Running)
            })
            .await;
            q.cancel(id).await.unwrap();
            id
        }
        Kind::ResultOverLimit => big::enqueue(&q, 100_000).await.unwrap().id(),
    };
    let info = finished(&q, id).await;
    let result = match info.state {
        JobState::Succeeded => Some(Job::<serde_json::Value>::from_id(&q, id).result().await.expect("result")),
        _ => None,
    };
    worker.shutdown().await;
    Rows {
        state: info.state,
        charged: info.attempts,
        max_attempts: info.max_attempts,
        result: result.map(|v| match v {
            serde_json::Value::String(s) if s.len() > 1000 => serde_json::json!(format!("{} chars", s.len())),
            v => v,
        }),
        result_in_store: info.result_ref.is_some(),
        last_error: info.last_error,
        attempts: info
            .attempt_list
            .iter()
            .map(|a| (a.state, a.charged, a.error_class.clone(), a.error_message.clone()))
            .collect(),
    }
}

async fn matrix() {
    let Some(address) = ray_address() else { return };
    let kinds = [
        Kind::Success,
        Kind::Err,
        Kind::Panic,
        Kind::RetryThenSuccess,
        Kind::Timeout,
        Kind::CancelQueued,
        Kind::CancelRunning,
        Kind::ResultOverLimit,
    ];
    let runs = kinds.map(|kind| {
        let address = address.clone();
        tokio::spawn(async move {
            let local = run_case(kind, None).await;
            let ray = run_case(kind, Some(&address)).await;
            (kind, local, ray)
        })
    });
    for run in runs {
        let (kind, local, ray) = run.await.expect("case");
        println!("  {kind:?}: {:?}, {} attempt(s)", ray.state, ray.attempts.len());
        assert_eq!(local, ray, "{kind:?}: local (left) and ray_job (right) left different rows");
        let expected = match kind {
            Kind::Success | Kind::RetryThenSuccess | Kind::ResultOverLimit => JobState::Succeeded,
            Kind::Err | Kind::Panic | Kind::Timeout => JobState::Failed,
            Kind::CancelQueued | Kind::CancelRunning => JobState::Cancelled,
        };
        assert_eq!(ray.state, expected, "{kind:?}");
    }
}

// ---- a worker killed while its Ray jobs run ----------------------------

fn spawn_worker(db: &Db, address: &str, log: &Path, id: Option<&str>) -> std::process::Child {
    let out = std::fs::OpenOptions::new().append(true).create(true).open(log).expect("worker log");
    let err = out.try_clone().expect("worker log");
    Command::new(std::env::current_exe().expect("current exe"))
        .args(["worker", "--runner", "ray-job", "--ray-address", address, "--concurrency", "4"])
        .args(["--heartbeat-ms", "200", "--stuck-timeout-ms", "8000", "--db", &db.url])
        .args(id.map(|id| ["--id", id]).into_iter().flatten())
        .env_remove("RAY_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn a worker process")
}

/// A worker killed while its Ray jobs run, and another started: with
/// `id`, both under that id (a pod restarted), which must follow the jobs
/// its predecessor left, the running ones and those Ray holds PENDING for
/// longer than the stuck timeout; without, a worker of its own, which
/// adopts them.
async fn sigkill(id: Option<&str>) {
    let Some(address) = ray_address() else { return };
    let db = sqlite();
    let q = queue(&db).await;
    let runs = db.dir.path().join("runs.log");
    let worker_log = db.dir.path().join("workers.log");
    let path = runs.display().to_string();
    let mut ids = Vec::new();
    for i in 0..6u64 {
        let job = match id {
            // One CPU each on the two-CPU cluster: two run, two wait
            // PENDING past the stuck timeout (8 s) while the worker is away.
            Some(_) if i < 4 => record::options().num_cpus(1.0).enqueue(&q, path.clone(), i, 10_000).await,
            Some(_) => continue,
            None => record::enqueue(&q, path.clone(), i, 4000).await,
        };
        ids.push(job.unwrap().id());
    }
    let mut first = spawn_worker(&db, &address, &worker_log, id);
    // Kill it once Ray jobs of its run.
    until("Ray jobs to run", Duration::from_secs(120), || async {
        let mut running = 0;
        for id in &ids {
            let info = q.job(*id).await.unwrap();
            running += info.attempt_list.iter().filter(|a| a.state == AttemptState::Running).count();
        }
        running >= 2
    })
    .await;
    first.kill().expect("SIGKILL the worker");
    first.wait().expect("reap it");
    let mut second = spawn_worker(&db, &address, &worker_log, id);
    let mut infos = Vec::new();
    for id in &ids {
        infos.push(finished(&q, *id).await);
    }
    let _ = second.kill();
    let _ = second.wait();
    let log = std::fs::read_to_string(&runs).unwrap_or_default();
    let mut per_job: BTreeMap<u64, usize> = BTreeMap::new();
    for line in log.lines() {
        *per_job.entry(line.parse().expect("a job number")).or_default() += 1;
    }
    let workers = std::fs::read_to_string(&worker_log).unwrap_or_default();
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.state, JobState::Succeeded, "job {i}: {info:?}\nworkers:\n{workers}");
        let lost = info.attempt_list.iter().filter(|a| a.state == AttemptState::Lost).count();
        assert_eq!(lost, 0, "job {i} has a LOST attempt: {info:?}");
        assert_eq!(info.attempt_list.len(), 1, "job {i} ran as one attempt: {info:?}");
        assert_eq!(per_job.get(&(i as u64)), Some(&1), "job {i} ran once: {log}");
    }
}

// ---- bad input ---------------------------------------------------------

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Forwards `port` to the Ray dashboard: the dashboard "comes back".
async fn forward(port: u16, address: &str) -> tokio::task::JoinHandle<()> {
    let target = address.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the forwarder");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// Forwards `port` to the Ray dashboard until the set is aborted: then the
/// listener and every connection through it (pooled ones too) are gone.
async fn forward_until_cut(port: u16, address: &str) -> tokio::task::JoinSet<()> {
    let target = address.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the forwarder");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut set = tokio::task::JoinSet::new();
    set.spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let _ = tx.send(inbound);
        }
    });
    set.spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Some(mut inbound) = rx.recv().await {
            let target = target.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    set
}

/// The worker's dashboard goes away for good while a job runs, and the
/// job's process ends without a word (as when the whole cluster is lost):
/// its attempt goes silent and is found LOST, not followed for ever.
async fn cluster_lost() {
    let Some(address) = ray_address() else { return };
    let db = sqlite();
    let q = queue(&db).await;
    let port = free_port();
    let mut forwarder = forward_until_cut(port, &address).await;
    let worker = worker_with(&q, Some(ray_runner(&format!("http://127.0.0.1:{port}")))).await;
    let id = sleepy::enqueue(&q, 600_000).await.unwrap().id();
    until("the job to run on Ray", Duration::from_secs(120), || async {
        q.job(id).await.unwrap().attempt_list.last().is_some_and(|a| a.state == AttemptState::Running)
    })
    .await;
    let ray_job = q.job_unredacted(id).await.unwrap().attempt_list.last().and_then(|a| a.ray_job_id.clone());
    let ray_job = ray_job.expect("the Ray job's id");
    forwarder.abort_all();
    while forwarder.join_next().await.is_some() {}
    // The job's process goes (stopped behind the worker's back).
    RayClient::new(&address).expect("address").stop(&ray_job).await.expect("stop the Ray job");
    let info = finished(&q, id).await;
    worker.shutdown().await;
    assert_eq!(info.state, JobState::Failed, "{info:?}");
    let attempt = info.attempt_list.last().expect("an attempt");
    assert_eq!(attempt.state, AttemptState::Lost, "{attempt:?}");
}

async fn unreachable() {
    let db = sqlite();
    let q = queue(&db).await;
    let port = free_port();
    let worker = worker_with(&q, Some(ray_runner(&format!("http://127.0.0.1:{port}")))).await;
    let first = square::enqueue(&q, 5).await.unwrap().id();
    let second = square::enqueue(&q, 6).await.unwrap().id();
    until("the breaker to open", Duration::from_secs(60), || async { q.stats().await.unwrap().cluster_down }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = q.stats().await.unwrap();
    assert!(stats.cluster_submission_failures >= 1, "{stats:?}");
    let metrics = q.metrics_text().await.unwrap();
    assert!(metrics.contains("rustyray_cluster_up 0"), "{metrics}");
    assert!(metrics.contains("rustyray_cluster_submission_failures_total"), "{metrics}");
    for id in [first, second] {
        let info = q.job(id).await.unwrap();
        assert_eq!(info.state, JobState::Queued, "{info:?}");
        assert_eq!(info.attempts, 0, "no attempt is charged: {info:?}");
        for a in &info.attempt_list {
            assert!(!a.charged && a.error_class.as_deref() == Some("Unsubmitted"), "{a:?}");
            assert!(a.error_message.as_deref().unwrap_or("").contains("unreachable"), "{a:?}");
        }
    }
    let Some(address) = ray_address() else {
        worker.shutdown().await;
        return;
    };
    let forwarder = forward(port, &address).await;
    for id in [first, second] {
        let info = finished(&q, id).await;
        assert_eq!(info.state, JobState::Succeeded, "{info:?}");
        assert_eq!(info.attempts, 1, "{info:?}");
    }
    assert!(!q.stats().await.unwrap().cluster_down);
    worker.shutdown().await;
    forwarder.abort();
}

async fn fails_with(runner: RayJobRunner, class: &str, contains: &[&str]) -> JobInfo {
    let db = sqlite();
    let q = queue(&db).await;
    let worker = worker_with(&q, Some(runner)).await;
    let id = square::enqueue(&q, 3).await.unwrap().id();
    let info = finished(&q, id).await;
    worker.shutdown().await;
    assert_eq!(info.state, JobState::Failed, "{info:?}");
    let attempt = info.attempt_list.last().expect("an attempt");
    assert_eq!(attempt.state, AttemptState::Failed, "{attempt:?}");
    assert_eq!(attempt.error_class.as_deref(), Some(class), "{attempt:?}");
    let message = attempt.error_message.clone().unwrap_or_default();
    assert!(message.contains(&id.to_string()), "the message names the job: {message}");
    for needle in contains {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    info
}

async fn wrong_token() {
    let (Ok(address), Ok(token)) =
        (std::env::var("RUSTYRAY_TEST_RAY_AUTH"), std::env::var("RUSTYRAY_TEST_RAY_AUTH_TOKEN"))
    else {
        eprintln!(
            "\n*** RUSTYRAY_TEST_RAY_AUTH / RUSTYRAY_TEST_RAY_AUTH_TOKEN are not set: SKIPPING the token test \
             (it needs a dashboard with RAY_AUTH_MODE=token) ***\n"
        );
        return;
    };
    let client = |token: &str| RayClient::new(&address).expect("address").with_token(Some(token.to_string()));
    // No token, a wrong one: refused, and the attempt says so.
    assert!(matches!(
        RayClient::new(&address).unwrap().job("nothing").await,
        Err(rustyray::ray::RayError::Unauthorized { status: 401, .. })
    ));
    fails_with(RayJobRunner::with_client(client("not-the-token")), "RayUnauthorized", &["403", "RAY_AUTH_TOKEN"]).await;
    // The right token runs the job.
    let db = sqlite();
    let q = queue(&db).await;
    let worker = worker_with(&q, Some(RayJobRunner::with_client(client(&token)))).await;
    let id = square::enqueue(&q, 9).await.unwrap().id();
    let info = finished(&q, id).await;
    worker.shutdown().await;
    assert_eq!(info.state, JobState::Succeeded, "{info:?}");
    assert_eq!(info.result, Some(serde_json::json!(81)));
    // A token read from a file is read again when refused: the token the
    // file holds after a rotation is sent without a new client.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth_token");
    std::fs::write(&file, "not-the-token\n").unwrap();
    let rotating = RayClient::new(&address).unwrap().with_token_file(&file).unwrap();
    assert!(matches!(rotating.job("nothing").await, Err(rustyray::ray::RayError::Unauthorized { status: 403, .. })));
    std::fs::write(&file, format!("{token}\n")).unwrap();
    assert!(
        matches!(rotating.clone().job("nothing").await, Err(rustyray::ray::RayError::NotFound { .. })),
        "the refused request went again with the new token, and was let in"
    );
}

async fn missing_binary() {
    // Uploading a binary that is not there fails before any submission.
    let runner = ray_runner("http://127.0.0.1:9").upload_binary(true).binary("/nonexistent/rustyray-app");
    fails_with(runner, "RayBinary", &["/nonexistent/rustyray-app", "cannot read it"]).await;
    // A shared path the cluster does not have: the Ray job fails, and its log says why.
    let Some(address) = ray_address() else { return };
    let runner = ray_runner(&address).binary("/nonexistent/rustyray-app");
    fails_with(runner, "RayJobFailed", &["ended FAILED", "/nonexistent/rustyray-app", "end of its log"]).await;
}

async fn rejected() {
    let Some(address) = ray_address() else { return };
    let runner = ray_runner(&address).runtime_env(serde_json::json!("not an object"));
    fails_with(runner, "RayRejected", &["answered 400", "runtime_env must be a dict"]).await;
}

async fn pending() {
    let Some(address) = ray_address() else { return };
    let runner =
        ray_runner(&address).resource("rustyray_no_node_has_this", 1.0).pending_timeout(Duration::from_secs(3));
    fails_with(runner, "RayPending", &["stayed PENDING longer than 3s"]).await;
}

async fn huge_log() {
    let Some(address) = ray_address() else { return };
    let db = sqlite();
    let q = queue(&db).await;
    let worker = worker_with(&q, Some(ray_runner(&address).log_tail(4096))).await;
    let id = noisy_exit::enqueue(&q, 30).await.unwrap().id();
    let info = finished(&q, id).await;
    worker.shutdown().await;
    assert_eq!(info.state, JobState::Failed, "{info:?}");
    let attempt = info.attempt_list.last().expect("an attempt");
    assert_eq!(attempt.error_class.as_deref(), Some("RayJobFailed"), "{attempt:?}");
    let message = attempt.error_message.clone().unwrap_or_default();
    assert!(message.contains("THE LAST LINE"), "the tail is kept: {}", &message[message.len().saturating_sub(300)..]);
    assert!(message.len() < 4096 + 2048, "the tail is bounded: {} bytes", message.len());
    assert!(attempt.log_ref.as_deref().is_some_and(|r| r.ends_with("/logs")), "{attempt:?}");
    assert!(attempt.ray_job_id.as_deref().is_some_and(|r| r.starts_with("rustyray-")), "{attempt:?}");
}

async fn uploaded() {
    let Some(address) = ray_address() else { return };
    let db = sqlite();
    let q = queue(&db).await;
    // A copy under another name, so the package is this binary alone.
    let copy: PathBuf = db.dir.path().join("rustyray-uploaded-app");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let worker = worker_with(&q, Some(ray_runner(&address).upload_binary(true).binary(&copy))).await;
    let a = square::enqueue(&q, 11).await.unwrap().id();
    let b = square::enqueue(&q, 12).await.unwrap().id();
    for (id, want) in [(a, 121), (b, 144)] {
        let info = finished(&q, id).await;
        assert_eq!(info.state, JobState::Succeeded, "{info:?}");
        assert_eq!(info.result, Some(serde_json::json!(want)));
    }
    worker.shutdown().await;
}
