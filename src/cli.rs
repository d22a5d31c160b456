//! The operations a Django `manage.py` would give, for an application's own
//! binary: hand its arguments to [`run`] and it gains `worker`, `enqueue`,
//! `jobs`, `show`, `cancel`, `retry`, `stats` and `functions`.
//!
//! ```no_run
//! #[rustyray::remote]
//! fn resize(path: String, width: u32) -> u64 { width as u64 }
//!
//! fn main() -> std::process::ExitCode {
//!     rustyray::cli::run()
//! }
//! ```
//!
//! `app worker --db sqlite://jobs.db --concurrency 4` then runs jobs until
//! SIGTERM or Ctrl-C (it finishes what it runs within the grace period and
//! releases the rest). `--db` defaults to the `RUSTYRAY_DB` environment
//! variable; `--json` prints machine-readable output.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::queue::{JobFilter, JobId, JobInfo, JobOptions, JobState, Queue, QueueError, Worker};

/// The command line.
#[derive(Debug, Parser)]
#[command(about = "Durable RustyRay jobs: run workers, enqueue and inspect jobs")]
pub struct Cli {
    /// The queue database: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "RUSTYRAY_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One operation.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run jobs until SIGTERM or Ctrl-C.
    Worker(WorkerArgs),
    /// Enqueue a call of a registered function with JSON arguments.
    Enqueue(EnqueueArgs),
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Show one job with its attempts.
    Show {
        /// The job's id.
        id: String,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// Serve the HTTP/JSON and gRPC job API and the admin page at /admin
    /// (and, with `--worker`, run jobs too).
    #[cfg(feature = "service")]
    Serve(ServeArgs),
    /// Run a FAILED or CANCELLED job again.
    Retry {
        /// The job's id.
        id: String,
    },
    /// Counts per state and queue, run times, live workers.
    Stats,
    /// The registered remote functions.
    Functions,
    /// Run one attempt in this process and record its outcome (the
    /// entrypoint of a Ray job; the worker that submitted it follows it).
    RunAttempt(RunAttemptArgs),
}

/// `run-attempt` options.
#[derive(Debug, Args)]
pub struct RunAttemptArgs {
    /// The attempt's id.
    pub attempt: String,
    /// Heartbeat interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
}

/// `worker` options.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues to claim from, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub queues: Vec<String>,
    /// Attempts run at once (default: the CPU count).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The runner: `local` (this process) or `ray-job` (each attempt a Ray
    /// job; needs the `ray` feature and `--ray-address`).
    #[arg(long, default_value = "local")]
    pub runner: String,
    /// The Ray dashboard, for `--runner ray-job` (`http://HOST:8265`). The
    /// token, if the cluster wants one, comes from RAY_AUTH_TOKEN,
    /// RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.
    #[arg(long, env = "RUSTYRAY_RAY_ADDRESS")]
    pub ray_address: Option<String>,
    /// The binary Ray jobs run (default: this program).
    #[arg(long)]
    pub ray_binary: Option<std::path::PathBuf>,
    /// Upload the binary to the cluster as the jobs' working_dir package
    /// (for a cluster whose nodes do not share this filesystem).
    #[arg(long)]
    pub ray_upload: bool,
    /// How long a Ray job may stay PENDING before its attempt fails, milliseconds.
    #[arg(long, default_value_t = 600_000)]
    pub ray_pending_timeout_ms: u64,
    /// The database URL the Ray jobs use (default: `--db`). It is in each
    /// job's entrypoint, which the dashboard shows: a `--db` with a password
    /// is not put there unless given here on purpose.
    #[arg(long, env = "RUSTYRAY_RAY_DB_URL")]
    pub ray_db_url: Option<String>,
    /// A limit across all workers, `QUEUE=N` (repeatable).
    #[arg(long = "queue-limit", value_parser = parse_limit)]
    pub queue_limits: Vec<(String, u32)>,
    /// Heartbeat interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// An attempt silent this long is LOST, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub stuck_timeout_ms: u64,
    /// How long running attempts may finish at shutdown, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub grace_ms: u64,
    /// This worker's id (default: host and process id). Give each process
    /// its own, such as its pod's name: a process restarted under the same
    /// id follows the Ray jobs its predecessor left running.
    #[arg(long, env = "RUSTYRAY_WORKER_ID")]
    pub id: Option<String>,
}

fn parse_state(text: &str) -> Result<JobState, String> {
    text.parse().map_err(|error: QueueError| error.to_string())
}

fn parse_limit(text: &str) -> Result<(String, u32), String> {
    let (queue, n) = text.split_once('=').ok_or_else(|| format!("`{text}` is not QUEUE=N"))?;
    let n = n.parse().map_err(|e| format!("`{n}`: {e}"))?;
    Ok((queue.to_string(), n))
}

/// `enqueue` options.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The function's registered name (`crate::module::function`).
    pub function: String,
    /// The arguments: a JSON array, one element per parameter.
    pub args: String,
    /// The queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// -100..=100, higher first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Retries after a failed attempt.
    #[arg(long, default_value_t = 0)]
    pub max_retries: u32,
    /// Timeout of one attempt, milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Not before this many milliseconds from now.
    #[arg(long)]
    pub run_after_ms: Option<u64>,
    /// A name for listings.
    #[arg(long)]
    pub name: Option<String>,
    /// Makes the enqueue idempotent: run again with the same key (say, by a
    /// script that retries), it writes nothing and prints the first job's id.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// `serve` options. Tokens come from `RUSTYRAY_TOKENS` (`role:token`,
/// comma-separated) or the file `--tokens-file` names, never from the
/// command line.
#[cfg(feature = "service")]
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file of tokens, one `role:token` per line (roles: read, admin).
    #[arg(long, env = "RUSTYRAY_TOKENS_FILE")]
    pub tokens_file: Option<std::path::PathBuf>,
    /// Serve /api/health without a token.
    #[arg(long)]
    pub public_health: bool,
    /// Serve /metrics without a token.
    #[arg(long)]
    pub public_metrics: bool,
    /// The queues submissions may name (comma-separated); default: any.
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Publish lifecycle events to NATS JetStream at this URL.
    #[cfg(feature = "nats")]
    #[arg(long, env = "RUSTYRAY_NATS")]
    pub nats: Option<String>,
    /// Also run a worker in this process, with this many attempts at once.
    #[arg(long)]
    pub worker: Option<usize>,
}

/// `jobs` filters.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this state (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<JobState>,
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only this function.
    #[arg(long)]
    pub function: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Parses the process's arguments and runs the command on a new tokio
/// runtime. For an application whose `main` is already async, use [`run_async`].
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_cli(cli))
}

/// Parses the process's arguments and runs the command on the current tokio runtime.
pub async fn run_async() -> ExitCode {
    run_cli(Cli::parse()).await
}

/// Runs a parsed command line.
pub async fn run_cli(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        #[cfg(feature = "service")]
        Command::Serve(_) => serve(cli).await.map_err(|error| error.to_string()),
        _ => execute(cli).await.map_err(|error| error.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "service")]
async fn serve(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    use crate::service::{Service, Tokens};
    let Command::Serve(args) = cli.command else { return Ok(()) };
    let q = connect(cli.db.as_deref(), None).await?;
    let mut tokens = Tokens::from_env()?;
    if let Some(path) = &args.tokens_file
        && std::env::var_os(crate::service::TOKENS_FILE_ENV).is_none()
    {
        tokens = Tokens::parse(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)?;
    }
    let mut builder =
        Service::builder(&q).tokens(tokens).public_health(args.public_health).public_metrics(args.public_metrics);
    if !args.queues.is_empty() {
        builder = builder.known_queues(args.queues);
    }
    #[cfg(feature = "nats")]
    if let Some(url) = args.nats {
        builder = builder.nats(crate::service::NatsConfig::new(url));
    }
    let service = builder.build().await?;
    let (runtime, worker) = match args.worker {
        Some(concurrency) => {
            let runtime = crate::Runtime::builder().build()?;
            let worker = Worker::builder(&q).concurrency(concurrency).runtime(runtime.clone()).start().await?;
            (Some(runtime), Some(worker))
        }
        None => (None, None),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| format!("{}: {e}", args.listen))?;
    let address = listener.local_addr()?;
    eprintln!(
        "serving {} on http://{address} (admin page: http://{address}/admin); Ctrl-C or SIGTERM stops it",
        q.url()
    );
    service.serve(listener, wait_for_signal()).await?;
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    if let Some(runtime) = runtime {
        runtime.shutdown().await;
    }
    Ok(())
}

/// A job process (`run-attempt`) on PostgreSQL writes results up to this
/// size into the job's row. Past the queue's usual limit they would go to
/// the default result store, a directory on whichever cluster node ran the
/// job, which the application cannot read (its own store is not known
/// here). On SQLite the default store is beside the database file, which
/// the job process shares with the application.
const RUN_ATTEMPT_RESULT_LIMIT: usize = 64 << 20;

async fn connect(db: Option<&str>, result_limit: Option<usize>) -> Result<Queue, QueueError> {
    let Some(url) = db else {
        return Err(QueueError::InvalidUrl {
            url: String::new(),
            reason: "no database given: pass --db URL or set RUSTYRAY_DB".into(),
        });
    };
    match result_limit {
        Some(limit) => Queue::builder(url).result_limit(limit).connect().await,
        None => Queue::connect(url).await,
    }
}

async fn execute(cli: Cli) -> Result<(), QueueError> {
    let json = cli.json;
    if let Command::Functions = cli.command {
        let functions: Vec<_> = crate::registry::functions()
            .into_iter()
            .map(|f| serde_json::json!({ "name": f.name(), "signature": f.signature(), "async": f.is_async() }))
            .collect();
        if json {
            println!("{}", serde_json::Value::Array(functions));
        } else {
            for f in crate::registry::functions() {
                println!("{:<40} {}", f.name(), f.signature());
            }
        }
        return Ok(());
    }
    let on_server = cli.db.as_deref().is_some_and(|url| !url.starts_with("sqlite:"));
    let result_limit = (on_server && matches!(cli.command, Command::RunAttempt(_))).then_some(RUN_ATTEMPT_RESULT_LIMIT);
    let q = connect(cli.db.as_deref(), result_limit).await?;
    match cli.command {
        Command::Worker(args) => worker(&q, args).await,
        Command::Enqueue(args) => {
            let values: serde_json::Value =
                serde_json::from_str(&args.args).map_err(|error| QueueError::InvalidArguments {
                    function: args.function.clone(),
                    message: format!("the arguments are not JSON: {error}"),
                })?;
            let mut options =
                JobOptions { priority: args.priority, max_retries: args.max_retries, ..JobOptions::default() };
            options.queue = args.queue;
            options.name = args.name;
            options.timeout = args.timeout_ms.map(Duration::from_millis);
            options.run_after = args.run_after_ms.map(Duration::from_millis);
            options.idempotency_key = args.idempotency_key;
            let id = q.enqueue_by_name(&args.function, values, options).await?;
            if json {
                println!("{}", serde_json::json!({ "id": id }));
            } else {
                println!("{id}");
            }
            Ok(())
        }
        Command::Jobs(args) => {
            let filter = JobFilter {
                state: args.state,
                queue: args.queue,
                function: args.function,
                limit: Some(args.limit),
                ..JobFilter::default()
            };
            let jobs = q.jobs(filter).await?;
            if json {
                println!("{}", to_json(&jobs));
            } else {
                println!("{:<36}  {:<9}  {:<10}  {:>3}  FUNCTION", "ID", "STATE", "QUEUE", "ATT");
                for job in jobs {
                    println!(
                        "{:<36}  {:<9}  {:<10}  {:>3}  {}",
                        job.id, job.state, job.queue, job.attempts, job.function
                    );
                }
            }
            Ok(())
        }
        Command::Show { id } => {
            let info = q.job(id.parse()?).await?;
            if json {
                println!("{}", to_json(&info));
            } else {
                print_job(&info);
            }
            Ok(())
        }
        Command::Cancel { id } => {
            let id: JobId = id.parse()?;
            let state = q.cancel(id).await?;
            if json {
                println!("{}", serde_json::json!({ "id": id, "state": state }));
            } else if state == JobState::Running {
                println!("{id}: cancel requested; its worker is stopping it");
            } else {
                println!("{id}: {state}");
            }
            Ok(())
        }
        Command::Retry { id } => {
            let id: JobId = id.parse()?;
            q.retry(id).await?;
            if json {
                println!("{}", serde_json::json!({ "id": id, "state": JobState::Queued }));
            } else {
                println!("{id}: QUEUED");
            }
            Ok(())
        }
        Command::Stats => {
            let stats = q.stats().await?;
            if json {
                println!("{}", to_json(&stats));
            } else {
                for (state, n) in &stats.by_state {
                    println!("{state:<10} {n}");
                }
                println!("lost attempts {}", stats.lost_attempts);
                println!("workers alive {}", stats.workers_alive);
                println!(
                    "run time      mean {:.3}s  p50 {:.3}s  p99 {:.3}s",
                    stats.run_time_mean, stats.run_time_p50, stats.run_time_p99
                );
            }
            Ok(())
        }
        Command::Functions => Ok(()),
        #[cfg(feature = "service")]
        Command::Serve(_) => Ok(()),
        Command::RunAttempt(args) => run_attempt(&q, args).await,
    }
}

/// Runs one attempt here; ends the process once its outcome is written, so
/// that a body abandoned at a timeout or cancel does not keep it alive.
async fn run_attempt(q: &Queue, args: RunAttemptArgs) -> Result<(), QueueError> {
    use crate::queue::AttemptRun;
    let attempt: uuid::Uuid = args.attempt.parse().map_err(|error| QueueError::Codec {
        context: format!("reading the attempt id `{}`", args.attempt),
        message: format!("{error}"),
    })?;
    let runtime = crate::Runtime::builder()
        .build()
        .map_err(|error| QueueError::Worker(format!("cannot start the in-process runtime: {error}")))?;
    let heartbeat = Duration::from_millis(args.heartbeat_ms);
    match crate::queue::run_attempt(q, attempt, runtime, heartbeat).await? {
        AttemptRun::Recorded { job, state, error_class } => {
            let how = error_class.map(|class| format!(" ({class})")).unwrap_or_default();
            eprintln!("attempt {attempt} of job {job}: {}{how}", state.as_str());
            std::process::exit(0);
        }
        AttemptRun::NotRunnable { state } => {
            let state = state.map(|s| s.as_str().to_string()).unwrap_or_else(|| "unknown".into());
            eprintln!("attempt {attempt} is {state}, not SUBMITTED as its job's current attempt: nothing was run");
            std::process::exit(3);
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}

fn print_job(info: &JobInfo) {
    println!("job       {}", info.id);
    println!("function  {}", info.function);
    if let Some(name) = &info.name {
        println!("name      {name}");
    }
    println!("queue     {} (priority {})", info.queue, info.priority);
    println!("state     {} ({} of {} attempts charged)", info.state, info.attempts, info.max_attempts);
    match &info.args {
        Some(args) => println!("args      {args}"),
        None => println!("args      <redacted>"),
    }
    if let Some(result) = &info.result {
        println!("result    {result}");
    }
    if let Some(reference) = &info.result_ref {
        println!("result    at {reference}");
    }
    if let Some(error) = &info.last_error {
        println!("error     {error}");
    }
    for a in &info.attempt_list {
        println!(
            "  attempt {:>2}  {:<9}  runner {}  worker {}{}",
            a.attempt,
            a.state.as_str(),
            a.runner,
            a.worker_id.as_deref().unwrap_or("-"),
            a.error_class
                .as_deref()
                .map(|c| format!("  {c}: {}", a.error_message.as_deref().unwrap_or("")))
                .unwrap_or_default()
        );
        if let Some(backtrace) = &a.backtrace {
            for line in backtrace.lines() {
                println!("      {line}");
            }
        }
    }
}

async fn worker(q: &Queue, args: WorkerArgs) -> Result<(), QueueError> {
    let mut builder = Worker::builder(q);
    match args.runner.as_str() {
        "local" => {}
        "ray-job" | "ray_job" => builder = with_ray_runner(builder, &args, q.url())?,
        other => {
            return Err(QueueError::Worker(format!(
                "unknown runner `{other}`: use `local` or `ray-job`{}",
                if cfg!(feature = "ray") { "" } else { " (ray-job needs the `ray` feature)" }
            )));
        }
    }
    let mut builder = builder
        .queues(args.queues)
        .heartbeat(Duration::from_millis(args.heartbeat_ms))
        .stuck_timeout(Duration::from_millis(args.stuck_timeout_ms))
        .grace_period(Duration::from_millis(args.grace_ms));
    if let Some(n) = args.concurrency {
        builder = builder.concurrency(n);
    }
    if let Some(id) = args.id {
        builder = builder.id(id);
    }
    for (queue, n) in args.queue_limits {
        builder = builder.queue_limit(queue, n);
    }
    let runtime = crate::Runtime::builder()
        .build()
        .map_err(|error| QueueError::Worker(format!("cannot start the in-process runtime: {error}")))?;
    let worker = builder.runtime(runtime.clone()).start().await?;
    eprintln!("worker {} running; Ctrl-C or SIGTERM stops it", worker.id());
    wait_for_signal().await;
    eprintln!("worker {} stopping", worker.id());
    worker.shutdown().await;
    runtime.shutdown().await;
    Ok(())
}

#[cfg(feature = "ray")]
fn with_ray_runner(
    builder: crate::queue::WorkerBuilder,
    args: &WorkerArgs,
    db_url: &str,
) -> Result<crate::queue::WorkerBuilder, QueueError> {
    let Some(address) = args.ray_address.as_deref() else {
        return Err(QueueError::Worker("--runner ray-job needs --ray-address http://HOST:8265".into()));
    };
    let mut runner = crate::ray::RayJobRunner::new(address)
        .map_err(|error| QueueError::Worker(error.to_string()))?
        .upload_binary(args.ray_upload)
        .pending_timeout(Duration::from_millis(args.ray_pending_timeout_ms));
    if let Some(binary) = &args.ray_binary {
        if !binary.is_file() && !args.ray_upload {
            eprintln!("note: {} is not a file here; the cluster's nodes must have it", binary.display());
        }
        runner = runner.binary(binary);
    }
    match &args.ray_db_url {
        Some(url) => runner = runner.db_url(url),
        // Every attempt would fail: refuse to start instead.
        None if db_url.contains("***") => {
            return Err(QueueError::Worker(
                "--db has a password, which Ray jobs would show in their entrypoint: give the URL \
                 the jobs should use with --ray-db-url (or RUSTYRAY_RAY_DB_URL)"
                    .into(),
            ));
        }
        None => {}
    }
    Ok(builder.runner(runner))
}

#[cfg(not(feature = "ray"))]
fn with_ray_runner(
    _: crate::queue::WorkerBuilder,
    _: &WorkerArgs,
    _: &str,
) -> Result<crate::queue::WorkerBuilder, QueueError> {
    Err(QueueError::Worker("--runner ray-job needs the `ray` feature of rustyray".into()))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
