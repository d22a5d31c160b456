//! Fixed work for counting instructions: `batches` batches of 1,000 of one
//! shape, submitted then gathered, after a warm-up batch.
//!
//! Wall-clock figures on a shared machine move by half from one hour to the
//! next; instruction counts do not. `benches/work_per_task.sh` runs each shape
//! here under `valgrind --tool=callgrind` with 10 and with 30 batches and
//! divides the difference by 20,000: the instructions one task (or call)
//! costs, start-up excluded, beside its baseline's.
//!
//! ```text
//! cargo run --release --example work_per_task -- <shape> <batches>
//! ```
//!
//! Shapes: `async` (trivial async remote functions), `pair` (trivial async
//! remote functions of two ready refs, as in a tree reduce), `tokio` (`tokio::spawn`
//! and await, their baseline), `plain` (trivial plain remote functions, run
//! on the runtime's CPU workers), `actor` (calls of a plain actor method),
//! `mpsc` (a bare actor: an mpsc mailbox and a oneshot per reply, theirs).
//! The `work_per_task_mimalloc` example is the same program with mimalloc as
//! its global allocator.

use rustyray::prelude::*;
use tokio::sync::{mpsc, oneshot};

#[rustyray::remote]
async fn small_value() -> u64 {
    1
}

#[rustyray::remote]
fn small_plain_value() -> u64 {
    1
}

#[rustyray::remote]
async fn sum_of_two(a: u64, b: u64) -> u64 {
    a + b
}

#[rustyray::actor]
pub struct Counter {
    n: u64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn small_value(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// The tasks or calls in one batch.
const BATCH: usize = 1000;

async fn batch(shape: &str, counter: &ActorHandle<Counter>, bare: &mpsc::UnboundedSender<oneshot::Sender<u64>>) {
    match shape {
        "async" => {
            let refs: Vec<ObjectRef<u64>> = (0..BATCH).map(|_| small_value::remote()).collect();
            let _ = rustyray::get_all(&refs).await;
        }
        "pair" => {
            // Tasks with two ref arguments, as in a tree reduce.
            let (a, b) = (rustyray::put(1u64), rustyray::put(2u64));
            let refs: Vec<ObjectRef<u64>> = (0..BATCH).map(|_| sum_of_two::remote(&a, &b)).collect();
            let _ = rustyray::get_all(&refs).await;
        }
        "plain" => {
            let refs: Vec<ObjectRef<u64>> = (0..BATCH).map(|_| small_plain_value::remote()).collect();
            let _ = rustyray::get_all(&refs).await;
        }
        "tokio" => {
            let handles: Vec<_> = (0..BATCH).map(|_| tokio::spawn(async { 1u64 })).collect();
            for handle in handles {
                let _ = handle.await;
            }
        }
        "actor" => {
            let refs: Vec<ObjectRef<u64>> = (0..BATCH).map(|_| counter.small_value()).collect();
            let _ = rustyray::get_all(&refs).await;
        }
        _ => {
            let replies: Vec<oneshot::Receiver<u64>> = (0..BATCH)
                .map(|_| {
                    let (tx, rx) = oneshot::channel();
                    let _ = bare.send(tx);
                    rx
                })
                .collect();
            for reply in replies {
                let _ = reply.await;
            }
        }
    }
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_else(|| "async".to_string());
    if !["async", "pair", "plain", "tokio", "actor", "mpsc"].contains(&shape.as_str()) {
        return Err(format!("unknown shape {shape:?}: async, pair, plain, tokio, actor or mpsc").into());
    }
    let batches: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let rt = {
        let _entered = tokio.enter();
        rustyray::Runtime::builder().num_cpus(2).build()?
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<u64>>();
    tokio.spawn(async move {
        let mut n = 0u64;
        while let Some(reply) = rx.recv().await {
            n += 1;
            let _ = reply.send(n);
        }
    });
    tokio.block_on(rt.scope(async {
        let counter = Counter::remote();
        counter.ready().await?;
        for _ in 0..=batches {
            batch(&shape, &counter, &tx).await;
        }
        Ok::<_, rustyray::Error>(())
    }))?;
    Ok(())
}
