//! What the Ray runner costs, next to Ray itself and the local runner, in
//! one run (figures for BENCHMARKS.md):
//!
//! - per-job latency, enqueue to SUCCEEDED, of a trivial job through
//!   `ray_job` (median of 20, one at a time), beside a bare Ray job of `true`
//!   submitted through the same API and followed until it SUCCEEDED, and
//!   beside `local`;
//! - jobs/s through `ray_job` with the worker's in-flight limit at 2, 8, 32.
//!
//! ```text
//! ray start --head --port 6390 --num-cpus 2 --dashboard-host 127.0.0.1
//! cargo run --release --features ray --example ray_bench [-- JOBS_PER_THROUGHPUT_RUN]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustyray::queue::{Queue, Worker};
use rustyray::ray::{JobStatus, JobSubmission, RayClient, RayJobRunner};

/// The trivial job.
#[rustyray::remote]
fn noop(n: u64) -> u64 {
    n
}

const SAMPLES: usize = 20;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if let Some(first) = args.next()
        && first.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    {
        return rustyray::cli::run();
    }
    let jobs: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(64);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(jobs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn bench(jobs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::var("RUSTYRAY_RAY_ADDRESS").unwrap_or_else(|_| "http://127.0.0.1:8265".into());
    let client = RayClient::from_env(&address)?;
    println!("Ray {} at {address}", client.version().await?.ray_version);
    let dir = tempfile::tempdir()?;

    // Warm the cluster up (the first job of a session pays for the job agent).
    let warm = client.submit(&JobSubmission::new("true")).await?;
    wait_ray(&client, &warm).await?;

    // Bare Ray: submit `true`, follow it to SUCCEEDED.
    let mut bare = Vec::new();
    for _ in 0..SAMPLES {
        let began = Instant::now();
        let id = client.submit(&JobSubmission::new("true")).await?;
        wait_ray(&client, &id).await?;
        bare.push(began.elapsed());
    }

    // local.
    let q = Queue::builder(format!("sqlite://{}/local.db", dir.path().display()))
        .poll_interval(Duration::from_millis(5))
        .connect()
        .await?;
    let worker = Worker::builder(&q).concurrency(2).start().await?;
    let mut local = Vec::new();
    for i in 0..SAMPLES as u64 {
        let began = Instant::now();
        noop::enqueue(&q, i).await?.result().await?;
        local.push(began.elapsed());
    }
    worker.shutdown().await;

    // ray_job, one at a time.
    let q = Queue::builder(format!("sqlite://{}/ray.db", dir.path().display()))
        .poll_interval(Duration::from_millis(5))
        .connect()
        .await?;
    let worker = Worker::builder(&q).concurrency(2).runner(RayJobRunner::with_client(client.clone())).start().await?;
    let mut ray_job = Vec::new();
    for i in 0..SAMPLES as u64 {
        let began = Instant::now();
        noop::enqueue(&q, i).await?.result().await?;
        ray_job.push(began.elapsed());
    }
    worker.shutdown().await;

    let (bare, local, ray_job) = (median(bare), median(local), median(ray_job));
    println!("per-job latency, enqueue to SUCCEEDED, median of {SAMPLES}:");
    println!("  bare Ray job (`true`)  {:>9.1} ms", bare.as_secs_f64() * 1e3);
    println!(
        "  ray_job                {:>9.1} ms   {:.2}x bare Ray",
        ray_job.as_secs_f64() * 1e3,
        ray_job.as_secs_f64() / bare.as_secs_f64()
    );
    println!("  local                  {:>9.3} ms", local.as_secs_f64() * 1e3);

    println!("throughput, {jobs} trivial jobs through ray_job:");
    for in_flight in [2usize, 8, 32] {
        let q = Queue::builder(format!("sqlite://{}/tp{in_flight}.db", dir.path().display()))
            .poll_interval(Duration::from_millis(5))
            .connect()
            .await?;
        let began = Instant::now();
        let ids = noop::enqueue_many(&q, (0..jobs as u64).map(|i| (i,))).await?;
        let worker = Worker::builder(&q)
            .concurrency(in_flight)
            .runner(RayJobRunner::with_client(client.clone()))
            .start()
            .await?;
        for job in ids {
            job.result().await?;
        }
        let elapsed = began.elapsed();
        worker.shutdown().await;
        println!(
            "  in flight {in_flight:>2}: {:>6.2} jobs/s ({:.1} s)",
            jobs as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

async fn wait_ray(client: &RayClient, id: &str) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let details = client.job(id).await?;
        match details.status {
            JobStatus::Succeeded => return Ok(()),
            status if status.is_terminal() => return Err(format!("Ray job {id} ended {status:?}").into()),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
