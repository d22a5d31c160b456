//! A pipeline: stages chained by object refs, so each stage starts as soon as
//! its input is ready, and documents flow through without the driver waiting
//! in between.
//!
//! generate -> normalize -> count words -> merge all counts -> top words

use std::collections::BTreeMap;

use rustyray::prelude::*;

const WORDS: &[&str] = &["ray", "rust", "task", "actor", "object", "future", "graph", "store"];

/// Stage 1: makes a document (async: stands in for fetching it).
#[rustyray::remote]
async fn fetch(doc: u64, len: usize) -> String {
    tokio::task::yield_now().await;
    (0..len).map(|i| WORDS[((doc * 31 + i as u64 * 7) % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
}

/// Stage 2: normalizes it (reads the stored text in place: `&str`).
#[rustyray::remote]
fn normalize(text: &str) -> String {
    text.to_uppercase()
}

/// Stage 3: counts its words.
#[rustyray::remote]
fn count_words(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Stage 4: merges two partial counts.
#[rustyray::remote]
fn merge(a: BTreeMap<String, u64>, b: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut merged = a;
    for (word, n) in b {
        *merged.entry(word).or_insert(0) += n;
    }
    merged
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;
    let docs = 32;
    // Build the whole graph first: every call returns at once.
    let counts: Vec<ObjectRef<BTreeMap<String, u64>>> = (0..docs)
        .map(|doc| {
            let text = fetch::remote(doc, 1000);
            let upper = normalize::remote(text);
            count_words::remote(upper)
        })
        .collect();
    let total = counts.into_iter().reduce(|a, b| merge::remote(a, b)).expect("at least one document");
    println!("submitted {} tasks; waiting for the merged counts", rt.stats().submitted);

    let total = total.get().await?;
    let mut top: Vec<(String, u64)> = total.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (word, n) in top.iter().take(5) {
        println!("{word:>8} {n}");
    }
    let stats = rt.stats();
    println!("{} tasks succeeded, {} failed", stats.succeeded, stats.failed);
    rt.shutdown().await;
    Ok(())
}
