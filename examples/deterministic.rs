//! Deterministic test mode finding an ordering bug.
//!
//! `restock` puts an item on a shelf and `sell` takes one off. The buggy
//! graph submits `restock` and then `sell`, trusting submission order, with
//! no dependency between them: a normal run nearly always restocks first and
//! passes. Deterministic mode tries orders a seed picks: it finds a seed
//! whose run sells from an empty shelf, prints it, and replays it exactly
//! (`RUSTYRAY_SEED=<seed>` picks the seed to replay). The fixed graph passes
//! the restocked count to `sell_after`, which makes `sell` wait for it, and
//! then passes under every seed.
//!
//! ```sh
//! cargo run --example deterministic
//! ```

use std::cell::RefCell;

use rustyray::prelude::*;
use rustyray::{TaskInfo, deterministic};

thread_local! {
    /// The shelf. A deterministic run keeps every task on one thread, so a
    /// thread-local is the run's own (a normal run uses `NORMAL_SHELF`).
    static SHELF: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The shelf of the normal runs, whose tasks run on many threads.
static NORMAL_SHELF: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Which shelf the current run uses.
static DETERMINISTIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn with_shelf<T>(f: impl FnOnce(&mut Vec<String>) -> T) -> T {
    if DETERMINISTIC.load(std::sync::atomic::Ordering::Relaxed) {
        SHELF.with_borrow_mut(f)
    } else {
        f(&mut NORMAL_SHELF.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

#[rustyray::remote]
fn restock(item: String) -> usize {
    with_shelf(|shelf| {
        shelf.push(item);
        shelf.len()
    })
}

#[rustyray::remote]
fn sell() -> Option<String> {
    with_shelf(|shelf| shelf.pop())
}

/// The fix: taking the restocked count makes the sale wait for the restock.
#[rustyray::remote]
fn sell_after(_restocked: usize) -> Option<String> {
    with_shelf(|shelf| shelf.pop())
}

/// The buggy graph: what was sold.
async fn buggy() -> Option<String> {
    let _restocked = restock::remote("apple".to_string());
    sell::remote().get().await.ok().flatten()
}

/// The fixed graph.
async fn fixed() -> Option<String> {
    let restocked = restock::remote("apple".to_string());
    sell_after::remote(&restocked).get().await.ok().flatten()
}

/// One deterministic run of the buggy graph: what was sold, and the history.
fn run_buggy(seed: u64) -> rustyray::Result<(Option<String>, Vec<TaskInfo>)> {
    SHELF.with_borrow_mut(Vec::clear);
    Runtime::builder().deterministic(seed).run(|rt| async move {
        let sold = buggy().await;
        rt.wait_idle().await;
        (sold, rt.tasks())
    })
}

/// One line per task: id, function, state, and when it started (virtual time).
fn describe(tasks: &[TaskInfo]) -> Vec<String> {
    tasks
        .iter()
        .map(|task| {
            let started = task.attempts.first().and_then(|a| a.started_at.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{} {} {} started at {:?}", task.id, task.function, task.state, started.unwrap_or_default())
        })
        .collect()
}

fn main() -> rustyray::Result<()> {
    // Normal runs: the bug hides.
    let tokio = tokio::runtime::Runtime::new()
        .map_err(|error| Error::Internal { reason: Box::leak(format!("tokio: {error}").into_boxed_str()) })?;
    let mut passed = 0;
    let normal_runs = 20;
    for _ in 0..normal_runs {
        NORMAL_SHELF.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        let sold = tokio.block_on(async {
            let rt = Runtime::builder().num_cpus(4).build()?;
            let sold = rt.scope(buggy()).await;
            rt.shutdown().await;
            Ok::<_, Error>(sold)
        })?;
        passed += usize::from(sold.is_some());
    }
    drop(tokio);
    println!("normal runs: {passed} of {normal_runs} sold an apple");

    // Deterministic runs: seeds try other orders.
    DETERMINISTIC.store(true, std::sync::atomic::Ordering::Relaxed);
    let seeds: Vec<u64> = match deterministic::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..100).collect(),
    };
    let mut failing = None;
    for &seed in &seeds {
        let (sold, history) = run_buggy(seed)?;
        if sold.is_none() {
            println!("seed {seed}: sold from an empty shelf (replay with RUSTYRAY_SEED={seed})");
            for line in describe(&history) {
                println!("    {line}");
            }
            failing = Some((seed, sold, describe(&history)));
            break;
        }
    }
    match failing {
        Some((seed, sold, history)) => {
            // The replay: the same interleaving, outputs and history.
            let (again, replayed) = run_buggy(seed)?;
            let same = again == sold && describe(&replayed) == history;
            println!("replay of seed {seed}: {}", if same { "identical" } else { "DIFFERENT" });
        }
        None => println!("no seed among {} exposed the bug", seeds.len()),
    }

    // The fix passes under every seed.
    let mut fixed_passed = 0;
    for seed in 0..100 {
        SHELF.with_borrow_mut(Vec::clear);
        let sold = Runtime::builder().deterministic(seed).run(|_rt| fixed())?;
        fixed_passed += usize::from(sold.is_some());
    }
    println!("fixed graph: {fixed_passed} of 100 seeds sold an apple");
    Ok(())
}
