//! Monte-Carlo estimate of π, split into many CPU-bound tasks.
//!
//! Each task throws darts at the unit square with its own random stream and
//! counts the hits inside the quarter circle; the driver sums the counts.
//! Run it with `cargo run --release --example parallel_map [tasks] [samples-per-task]`.

use std::time::Instant;

use rustyray::prelude::*;

/// Counts, out of `samples` random points in the unit square, those inside the
/// quarter circle. Plain (CPU) body: runs on the blocking pool, one CPU each.
#[rustyray::remote]
fn count_hits(seed: u64, samples: u64) -> u64 {
    let mut state = seed;
    let mut next = || {
        // splitmix64: small, fast, and good enough for darts.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..samples)
        .filter(|_| {
            let (x, y) = (next(), next());
            x * x + y * y <= 1.0
        })
        .count() as u64
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let tasks = args.next().and_then(Result::ok).unwrap_or(64);
    let samples = args.next().and_then(Result::ok).unwrap_or(2_000_000);

    let rt = rustyray::init()?;
    println!("estimating pi with {tasks} tasks x {samples} samples on {} CPUs", rt.num_cpus());

    let started = Instant::now();
    let hits: Vec<ObjectRef<u64>> = (0..tasks).map(|seed| count_hits::remote(seed, samples)).collect();
    // A progress bar on a terminal (hidden when stderr is not one).
    let hits: u64 = rustyray::progress::get_all_with_progress(&hits, "sampling").await?.into_iter().sum();
    let elapsed = started.elapsed();

    let total = tasks * samples;
    let pi = 4.0 * hits as f64 / total as f64;
    println!("pi ~ {pi:.6} (error {:.2e})", (pi - std::f64::consts::PI).abs());
    println!(
        "{tasks} tasks in {:.3} s: {:.1} tasks/s, {:.1} M samples/s",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64() / 1e6
    );
    let stats = rt.stats();
    println!(
        "runtime: {} submitted, {} succeeded, median task {:?}",
        stats.submitted, stats.succeeded, stats.p50_run_time
    );
    rt.shutdown().await;
    Ok(())
}
