//! Scale runs: what RustyRay does with a million tasks, long chains, wide
//! fan-ins and large objects, and how much memory it takes and gives back.
//!
//! `cargo run --release --example scale [tasks]` prints one line per run.
//! Memory figures are the process's resident set (`VmRSS`) and its peak
//! (`VmHWM`) from `/proc/self/status` (Linux), and the bytes the program
//! holds on the heap, counted by the example's own global allocator (so the
//! figure per task is what the runtime and the caller's refs hold, whatever
//! pages the system allocator keeps mapped).
//!
//! The resident set after the refs are dropped is printed twice: as the
//! runtime leaves it (it asks glibc for its free pages back when its last
//! object goes: see `Builder::trim_memory`), and after the program asks
//! once more (`malloc_trim`), to tell what is ours from what is the
//! allocator's.
//! With `SCALE_MALLOC_STATS=1` set, glibc's per-arena figures are printed to
//! stderr before that.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustyray::prelude::*;

/// The system allocator, counting the bytes handed out and not yet freed.
struct Counting;

static HEAP_LIVE: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only read for reporting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

fn grew(bytes: usize) {
    let live = HEAP_LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes the program holds on the heap now.
fn heap_live() -> usize {
    HEAP_LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak of the heap held, from now.
fn reset_heap_peak() -> usize {
    let live = heap_live();
    HEAP_PEAK.store(live, Ordering::Relaxed);
    live
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Opened by `main` once every gated task is queued.
static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

/// An object that is not ready until the gate opens.
#[rustyray::remote]
async fn gate() -> Result<u64, rustyray::Error> {
    let _ = GATE.acquire().await;
    Ok(0)
}

#[rustyray::remote]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

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

/// Prints glibc's per-arena figures (bytes mapped and in use) to stderr.
fn malloc_stats() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_stats only reads the allocator's state and prints it.
    unsafe {
        libc::malloc_stats();
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

/// The resident set once it has stopped falling for half a second (the
/// runtime gives glibc's free pages back on a thread of its own when its
/// last object goes, which takes a moment for a large heap), in MiB.
async fn settled_rss() -> f64 {
    let mut last = status_mib("VmRSS");
    let mut steady = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = status_mib("VmRSS");
        steady = if (last - now).abs() < 0.5 { steady + 1 } else { 0 };
        last = now;
        if steady == 10 {
            break;
        }
    }
    last
}

/// What is left once every ref of a run is dropped: objects, heap held, the
/// resident set as the runtime leaves it, and after one more `malloc_trim`
/// by the program (what glibc could still give back).
async fn after_drop(rt: &rustyray::Runtime, baseline: f64) {
    let held = heap_live();
    if std::env::var_os("SCALE_MALLOC_STATS").is_some() {
        malloc_stats();
    }
    let kept = settled_rss().await;
    trim();
    println!(
        "  after dropping the refs: {} objects alive, heap held {:.1} MiB; resident set {kept:.0} MiB \
         ({:.1}x the baseline {baseline:.0} MiB), {:.0} MiB after one more malloc_trim",
        rt.objects(),
        mib(held),
        kept / baseline,
        status_mib("VmRSS")
    );
}

fn per(elapsed: Duration, n: u64) -> Duration {
    elapsed / u32::try_from(n).unwrap_or(u32::MAX)
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;
    let million: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    // The baseline is a runtime in its steady state: it has run work of each
    // kind, so its threads (their stacks and allocator arenas) exist, and
    // enough of it (10,000 tasks) to fill its ring of finished-task records,
    // a fixed cost of any runtime that has run that much.
    let warm: Vec<ObjectRef<u64>> = (0..5_000).flat_map(|i| [inc::remote(i), inc_async::remote(i)]).collect();
    rustyray::get_all(&warm).await?;
    drop(warm);
    rt.wait_idle().await;
    let baseline = settled_rss().await;
    println!(
        "baseline: heap held {:.1} MiB (glibc in use {:.1} MiB), resident set {baseline:.0} MiB, peak {:.0} MiB",
        mib(heap_live()),
        heap_in_use_mib(),
        status_mib("VmHWM")
    );

    // 1. A million tasks queued behind one unfinished object: they all wait
    //    in the task table for their argument, which is what a task costs
    //    while it waits.
    let before = reset_heap_peak();
    let rss_before = status_mib("VmRSS");
    let hwm_before = status_mib("VmHWM");
    let started = Instant::now();
    let blocker = gate::remote();
    let refs: Vec<ObjectRef<u64>> = (0..million).map(|i| add::remote(&blocker, i)).collect();
    let submitted = started.elapsed();
    // Every submission is in the manager's table once it reports them pending.
    while rt.stats().pending < million {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let queued = heap_live();
    let queued_rss = status_mib("VmRSS");
    let per_task = (queued.saturating_sub(before)) as f64 / million as f64;
    println!(
        "{million} tasks queued behind one unfinished object: submitted in {:.2} s; \
         {per_task:.0} B per queued task held on the heap (the caller's refs included); \
         resident set {queued_rss:.0} MiB (+{:.0} MiB, {:.0} B per task)",
        submitted.as_secs_f64(),
        queued_rss - rss_before,
        (queued_rss - rss_before) * 1024.0 * 1024.0 / million as f64,
    );
    GATE.add_permits(1);
    let values = rustyray::get_all(&refs).await?;
    assert!(values.iter().enumerate().all(|(i, v)| *v == i as u64));
    println!(
        "  all done in {:.2} s; peak while they ran: heap held +{:.0} MiB, resident set {:.0} MiB (+{:.0} MiB over {hwm_before:.0})",
        started.elapsed().as_secs_f64(),
        mib(HEAP_PEAK.load(Ordering::Relaxed).saturating_sub(before)),
        status_mib("VmHWM"),
        status_mib("VmHWM") - hwm_before,
    );
    drop((refs, values, blocker));
    rt.wait_idle().await;
    after_drop(&rt, baseline).await;

    // 2. A million tasks ready at once (plain bodies: at most one per core
    //    runs at a time, as `init()` uses every core).
    let before = reset_heap_peak();
    let started = Instant::now();
    let refs: Vec<ObjectRef<u64>> = (0..million).map(inc::remote).collect();
    let submitted = started.elapsed();
    let queued_rss = status_mib("VmRSS");
    let values = rustyray::get_all(&refs).await?;
    assert!(values.iter().enumerate().all(|(i, v)| *v == i as u64 + 1));
    let elapsed = started.elapsed();
    println!(
        "{million} tasks ready at once: submitted in {:.2} s, all done in {:.2} s ({:?}/task); \
         resident set after submitting {:.0} MiB, peak {:.0} MiB; peak heap held +{:.0} MiB",
        submitted.as_secs_f64(),
        elapsed.as_secs_f64(),
        per(elapsed, million),
        queued_rss,
        status_mib("VmHWM"),
        mib(HEAP_PEAK.load(Ordering::Relaxed).saturating_sub(before)),
    );
    drop((refs, values));
    rt.wait_idle().await;
    after_drop(&rt, baseline).await;

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
    println!(
        "at the end: {} objects alive, heap held {:.1} MiB, resident set {:.0} MiB, peak {:.0} MiB",
        rt.objects(),
        mib(heap_live()),
        status_mib("VmRSS"),
        status_mib("VmHWM")
    );
    rt.shutdown().await;
    Ok(())
}
