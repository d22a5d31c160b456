//! Durable jobs run on a Ray cluster, each attempt a Ray job.
//!
//! Start a local cluster, then run the example:
//!
//! ```text
//! ray start --head --port 6390 --num-cpus 2 --dashboard-host 127.0.0.1
//! cargo run --example ray_cluster --features ray
//! ```
//!
//! It enqueues a few jobs into a SQLite file, starts a worker whose runner
//! submits each attempt to the dashboard (`RUSTYRAY_RAY_ADDRESS`, default
//! `http://127.0.0.1:8265`), and prints each job's result, its Ray job id and
//! the end of its Ray log. The Ray jobs run this same binary as
//! `ray_cluster run-attempt ID --db URL`: a program that hands its arguments
//! to `rustyray::cli::run()` is its own job entrypoint. (A SQLite file works
//! because this cluster's only node shares the file; use PostgreSQL for a
//! cluster of several machines, with `.upload_binary(true)`.)

use std::process::ExitCode;
use std::time::Duration;

use rustyray::queue::{Job, Queue, Worker};
use rustyray::ray::RayJobRunner;

/// Squares a number, on whichever Ray node runs it.
#[rustyray::remote]
fn square(n: u64) -> u64 {
    println!("squaring {n} in process {}", std::process::id());
    n * n
}

/// Fails for odd numbers, to show an error travelling back.
#[rustyray::remote]
fn even_only(n: u64) -> Result<u64, String> {
    if n % 2 == 1 { Err(format!("{n} is odd")) } else { Ok(n / 2) }
}

fn main() -> ExitCode {
    // `ray_cluster run-attempt ...` (what the Ray jobs run) and the other
    // operations of the command line.
    if std::env::args().len() > 1 {
        return rustyray::cli::run();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::var("RUSTYRAY_RAY_ADDRESS").unwrap_or_else(|_| "http://127.0.0.1:8265".into());
    let dir = tempfile::tempdir()?;
    let q = Queue::connect(&format!("sqlite://{}/jobs.db", dir.path().display())).await?;
    let runner = RayJobRunner::new(&address)?;
    let version = runner.client().version().await?;
    println!("Ray {} at {address}", version.ray_version);
    let client = runner.client().clone();
    let worker = Worker::builder(&q).concurrency(4).runner(runner).start().await?;

    let squares: Vec<Job<u64>> = futures_join(&q, [3, 4, 5]).await?;
    let odd = even_only::options().max_retries(1).backoff(Duration::from_millis(100), Duration::from_secs(1));
    let odd = odd.enqueue(&q, 7).await?;
    for job in &squares {
        let value = job.result().await?;
        let info = job.info().await?;
        let attempt = info.attempt_list.last().ok_or("a finished job has an attempt")?;
        let ray_job = attempt.ray_job_id.clone().unwrap_or_default();
        println!("job {} -> {value}  (Ray job {ray_job})", job.id());
        let log = client.logs_tail(&ray_job, 300).await?;
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            println!("    | {line}");
        }
    }
    match odd.result().await {
        Ok(value) => println!("job {} -> {value}", odd.id()),
        Err(error) => {
            println!("job {} failed as expected: {error}", odd.id());
            for attempt in odd.info().await?.attempt_list {
                println!(
                    "    attempt {} {} on Ray job {}",
                    attempt.attempt,
                    attempt.state.as_str(),
                    attempt.ray_job_id.unwrap_or_default()
                );
            }
        }
    }
    worker.shutdown().await;
    Ok(())
}

async fn futures_join(q: &Queue, numbers: [u64; 3]) -> Result<Vec<Job<u64>>, rustyray::queue::QueueError> {
    let mut jobs = Vec::new();
    for n in numbers {
        jobs.push(square::enqueue(q, n).await?);
    }
    Ok(jobs)
}
