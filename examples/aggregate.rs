//! A reduction through an actor: many tasks compute partial results and push
//! them into one accumulator actor as they finish, instead of combining them
//! in a tree of tasks (compare the `reduce` example).

use std::collections::BTreeMap;

use rustyray::prelude::*;

/// Collects word counts pushed by tasks.
#[rustyray::actor]
#[derive(Default)]
pub struct Accumulator {
    counts: BTreeMap<String, u64>,
    parts: u64,
}

#[rustyray::actor]
impl Accumulator {
    pub fn new() -> Self {
        Accumulator { counts: BTreeMap::new(), parts: 0 }
    }

    pub fn add(&mut self, part: BTreeMap<String, u64>) -> u64 {
        for (word, n) in part {
            *self.counts.entry(word).or_insert(0) += n;
        }
        self.parts += 1;
        self.parts
    }

    pub fn top(&self, k: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self.counts.iter().map(|(w, n)| (w.clone(), *n)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }
}

const TEXT: &str = "the quick brown fox jumps over the lazy dog and the dog sleeps while the fox runs";

/// Counts the words of one chunk and pushes the counts to the accumulator.
#[rustyray::remote]
fn count_chunk(chunk: u64, sink: ActorHandle<Accumulator>) -> Result<u64, rustyray::Error> {
    let mut counts = BTreeMap::new();
    for (i, word) in TEXT.split_whitespace().enumerate() {
        if !(i as u64 + chunk).is_multiple_of(3) {
            *counts.entry(word.to_string()).or_insert(0) += 1;
        }
    }
    sink.add(counts).get_blocking()
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;
    let sink = Accumulator::remote();
    let chunks: Vec<ObjectRef<u64>> = (0..64).map(|chunk| count_chunk::remote(chunk, sink.clone())).collect();
    rustyray::get_all(&chunks).await?;
    for (word, n) in sink.top(5).get().await? {
        println!("{word:>6} {n}");
    }
    println!("{} tasks and actor calls", rt.stats().submitted);
    rt.shutdown().await;
    Ok(())
}
