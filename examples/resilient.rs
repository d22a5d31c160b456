//! Retries, timeouts and cancellation, with what the runtime records about each.
//!
//! - a flaky call that fails twice and succeeds on its third attempt;
//! - a call that gives up after its retries, with the last error;
//! - a slow call cut off by its timeout, then retried with backoff;
//! - a tree of calls cancelled at the root: every dependent fails at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustyray::prelude::*;
use rustyray::{AttemptOutcome, TaskState};

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);
static SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two calls (a service that is warming up).
#[rustyray::remote]
async fn fetch_quote(symbol: String) -> Result<f64, String> {
    match FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) {
        0 => Err(format!("{symbol}: connection refused")),
        1 => Err(format!("{symbol}: 503 service unavailable")),
        _ => Ok(101.25),
    }
}

/// Always fails.
#[rustyray::remote]
fn parse_report(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

/// Hangs on its first call, answers quickly afterwards.
#[rustyray::remote]
async fn slow_lookup(key: u32) -> u32 {
    if SLOW_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    key * 2
}

#[rustyray::remote]
async fn stage(input: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    input + 1
}

fn show_attempts(rt: &Runtime, task: Option<rustyray::TaskId>) {
    let Some(info) = task.and_then(|id| rt.task(id)) else { return };
    println!("    {} {} ({}), {} attempt(s):", info.id, info.function, info.state, info.attempts.len());
    for attempt in &info.attempts {
        let outcome = match &attempt.outcome {
            AttemptOutcome::Succeeded => "succeeded".to_string(),
            AttemptOutcome::Failed(error) => error.to_string(),
            AttemptOutcome::Cancelled => "cancelled".to_string(),
            AttemptOutcome::Running => "running".to_string(),
        };
        println!("      #{} after {:?}: {outcome}", attempt.number, attempt.duration.unwrap_or_default());
    }
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;

    println!("1. retries: a flaky call with max_retries(3)");
    let quote = fetch_quote::options().max_retries(3).remote("RUST".to_string());
    println!("    value: {}", quote.get().await?);
    rt.wait_idle().await;
    show_attempts(&rt, quote.task());

    println!("2. giving up: max_retries(2) on a call that always fails");
    let report = parse_report::options().max_retries(2).remote("not a number".to_string());
    println!("    error: {}", report.get().await.unwrap_err());

    println!("3. timeouts: timeout(100ms), max_retries(1), backoff(50ms..1s)");
    let started = Instant::now();
    let lookup = slow_lookup::options()
        .timeout(Duration::from_millis(100))
        .max_retries(1)
        .backoff(Duration::from_millis(50), Duration::from_secs(1))
        .remote(21);
    println!("    value: {} after {:?}", lookup.get().await?, started.elapsed());
    rt.wait_idle().await;
    show_attempts(&rt, lookup.task());

    println!("4. cancellation: a chain of five stages, cancelled at the root");
    let root = stage::remote(0);
    let mut last = root.clone();
    for _ in 0..4 {
        last = stage::remote(&last);
    }
    rustyray::cancel(&root);
    let started = Instant::now();
    println!("    last stage: {} (after {:?})", last.get().await.unwrap_err(), started.elapsed());
    rt.wait_idle().await;
    let cancelled = rt.tasks().iter().filter(|t| t.state == TaskState::Cancelled).count();
    println!("    {cancelled} tasks cancelled");

    let stats = rt.stats();
    println!(
        "totals: {} submitted, {} succeeded, {} failed, {} cancelled, {} retries",
        stats.submitted, stats.succeeded, stats.failed, stats.cancelled, stats.retried
    );
    rt.shutdown().await;
    Ok(())
}
