//! Scale runs: what RustyRay does with a million tasks, long chains, wide
//! fan-ins and large objects, and how much memory it takes and gives back.
//!
//! `cargo run --release --example scale` prints one line per run. Memory
//! figures are the process's resident set (`VmRSS`) and its peak (`VmHWM`)
//! from `/proc/self/status` (Linux).

use std::time::{Duration, Instant};

use rustyray::prelude::*;

#[rustyray::remote]
fn inc(x: u64) -> u64 {
    x + 1
}

#[rustyray::remote]
async fn inc_async(x: u64) -> u64 {
    x + 1
}

#[rustyray::remote]
async fn sum_all(parts: Vec<ObjectRef<u64>>) -> Result<u64, rustyray::Error> {
    Ok(rustyray::get_all(&parts).await?.into_iter().sum())
}

#[rustyray::remote]
fn first(bytes: &[u8]) -> u8 {
    bytes[0]
}

/// A field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Gives freed heap pages back to the OS where the allocator can (glibc keeps
/// them otherwise).
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the allocator's discretion.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Heap memory the allocator has handed out and not had back, in MiB: what the
/// program (runtime included) really holds, whatever pages the allocator keeps.
fn heap_in_use_mib() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        (info.uordblks + info.hblkhd) as f64 / (1024.0 * 1024.0)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        f64::NAN
    }
}

fn per(elapsed: Duration, n: u64) -> Duration {
    elapsed / u32::try_from(n).unwrap_or(u32::MAX)
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;
    let million: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let baseline = status_mib("VmRSS");
    println!("baseline: heap in use {:.1} MiB, resident set {baseline:.0} MiB", heap_in_use_mib());

    // 1. A million tasks queued at once (plain bodies: at most one per core
    //    runs at a time, as `init()` uses every core).
    let started = Instant::now();
    let refs: Vec<ObjectRef<u64>> = (0..million).map(inc::remote).collect();
    let submitted = started.elapsed();
    let queued_rss = status_mib("VmRSS");
    let values = rustyray::get_all(&refs).await?;
    assert!(values.iter().enumerate().all(|(i, v)| *v == i as u64 + 1));
    let elapsed = started.elapsed();
    println!(
        "{million} tasks queued at once: submitted in {:.2} s, all done in {:.2} s ({:?}/task); \
         resident set with all queued {:.0} MiB, peak {:.0} MiB",
        submitted.as_secs_f64(),
        elapsed.as_secs_f64(),
        per(elapsed, million),
        queued_rss,
        status_mib("VmHWM")
    );
    drop((refs, values));
    rt.wait_idle().await;
    trim();
    println!(
        "after dropping the refs: {} objects alive, heap in use {:.1} MiB, resident set {:.0} MiB (baseline {baseline:.0} MiB)",
        rt.objects(),
        heap_in_use_mib(),
        status_mib("VmRSS")
    );

    // 2. A 100k-deep dependency chain.
    let depth = 100_000u64;
    let started = Instant::now();
    let mut link = inc_async::remote(0);
    for _ in 1..depth {
        link = inc_async::remote(link);
    }
    let end = link.get().await?;
    assert_eq!(end, depth);
    println!(
        "{depth}-deep chain: {:.2} s, {:?} per hop",
        started.elapsed().as_secs_f64(),
        per(started.elapsed(), depth)
    );
    drop(link);

    // 3. A 100k-wide fan-in into one task.
    let width = 100_000u64;
    let started = Instant::now();
    let parts: Vec<ObjectRef<u64>> = (0..width).map(inc_async::remote).collect();
    let total = sum_all::remote(parts).get().await?;
    assert_eq!(total, width * (width + 1) / 2);
    println!(
        "{width}-wide fan-in: {:.2} s, {:?} per input",
        started.elapsed().as_secs_f64(),
        per(started.elapsed(), width)
    );

    // 4. One 100 MB object passed to 10 tasks, against a 1 KB one.
    for (label, size) in [("1 KB", 1usize << 10), ("100 MB", 100 << 20)] {
        let object = rustyray::put(vec![1u8; size]);
        let started = Instant::now();
        let readers: Vec<ObjectRef<u8>> = (0..10).map(|_| first::remote(&object)).collect();
        rustyray::get_all(&readers).await?;
        println!("a {label} object passed to 10 tasks: {:?}", started.elapsed());
    }

    rt.wait_idle().await;
    trim();
    println!(
        "at the end: {} objects alive, heap in use {:.1} MiB, resident set {:.0} MiB, peak {:.0} MiB",
        rt.objects(),
        heap_in_use_mib(),
        status_mib("VmRSS"),
        status_mib("VmHWM")
    );
    rt.shutdown().await;
    Ok(())
}
