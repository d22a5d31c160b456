//! Durable jobs that survive a worker killed with SIGKILL.
//!
//! `cargo run --release --example durable`
//!
//! The producer enqueues jobs into a SQLite file in a temporary directory and
//! starts two worker processes of this same binary (`durable worker --db ..`,
//! the subcommand `rustyray::cli::run` gives every application). Mid-run it
//! kills one worker with SIGKILL and starts a new one. The killed worker's
//! attempts stop heartbeating, are marked LOST and run again; every job ends
//! SUCCEEDED.

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustyray::queue::{AttemptState, JobFilter, JobState, Queue};

/// A job: a little CPU work and a pause, so the kill lands mid-run.
#[rustyray::remote]
fn checksum(seed: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(30));
    (0..10_000u64).fold(seed, |acc, x| acc.wrapping_mul(31).wrapping_add(x))
}

fn main() -> ExitCode {
    if std::env::args().nth(1).is_some() {
        // `durable worker --db URL ...`: this binary as a worker (or any other command).
        return rustyray::cli::run();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(produce()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn start_worker(url: &str, n: usize) -> std::io::Result<Child> {
    println!("starting worker process {n}");
    Command::new(std::env::current_exe()?)
        .args(["worker", "--db", url, "--concurrency", "4", "--heartbeat-ms", "200", "--stuck-timeout-ms", "1500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

async fn produce() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/jobs.db", dir.path().display());
    let q = Queue::connect(&url).await?;
    let jobs = checksum::options()
        .max_retries(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .enqueue_many(&q, (0..300).map(|i| (i,)))
        .await?;
    println!("enqueued {} jobs into {url}", jobs.len());

    let mut workers = vec![start_worker(&url, 1)?, start_worker(&url, 2)?];
    let started = Instant::now();
    while q.stats().await?.count(JobState::Succeeded) < 60 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = q.stats().await?.count(JobState::Running);
    println!("SIGKILL worker process 1 with {running} jobs running across both workers");
    workers[0].kill()?;
    workers[0].wait()?;
    workers[0] = start_worker(&url, 3)?;

    loop {
        let stats = q.stats().await?;
        if stats.count(JobState::Succeeded) as usize == jobs.len() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("jobs still unfinished after 120 s: {:?}", stats.by_state).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    for worker in &mut workers {
        let _ = Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status();
        let _ = worker.wait();
    }

    let stats = q.stats().await?;
    println!("\n{} jobs in {:.1}s: {:?}", jobs.len(), elapsed.as_secs_f64(), stats.by_state);
    let mut recovered = 0;
    for row in q.jobs(JobFilter::default().limit(1000)).await? {
        let info = q.job(row.id).await?;
        for lost in info.attempt_list.iter().filter(|a| a.state == AttemptState::Lost) {
            recovered += 1;
            let winner = info.attempt_list.iter().find(|a| a.state == AttemptState::Succeeded);
            println!(
                "job {} attempt {} LOST on {} -> attempt {} SUCCEEDED on {}",
                info.id,
                lost.attempt,
                lost.worker_id.as_deref().unwrap_or("?"),
                winner.map(|a| a.attempt).unwrap_or(0),
                winner.and_then(|a| a.worker_id.as_deref()).unwrap_or("?"),
            );
        }
    }
    println!("{recovered} LOST attempts recovered; every job SUCCEEDED: {}", stats.count(JobState::Succeeded) == 300);
    let first = jobs[7].result().await?;
    println!("job 7's result: {first}");
    Ok(())
}
