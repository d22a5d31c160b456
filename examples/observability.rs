//! Observability: run a small workload, then print the runtime's Prometheus
//! metrics, write `timeline.json` (open it in https://ui.perfetto.dev or
//! chrome://tracing) and print the lifecycle events it produced.
//!
//! ```sh
//! RUST_LOG=info cargo run --release --example observability
//! ```

use std::time::Duration;

use rustyray::prelude::*;
use rustyray::{EventKind, Runtime};

#[rustyray::remote]
fn tile(i: u64) -> u64 {
    (0..20_000u64).map(|x| (x * i) % 7).sum()
}

#[rustyray::remote]
fn total(parts: Vec<u64>) -> u64 {
    tracing::info!(parts = parts.len(), "adding up");
    parts.iter().sum()
}

#[rustyray::remote]
async fn flaky(attempt_to_pass: u32) -> Result<u32, String> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let task = rustyray::current_task();
    Err(format!("task {task:?} is flaky (would pass at attempt {attempt_to_pass})"))
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).init();
    let rt = Runtime::builder().build()?;
    let mut events = rt.subscribe();

    rt.scope(async {
        let tiles: Vec<ObjectRef<u64>> = (0..32).map(tile::remote).collect();
        let parts = rustyray::get_all(&tiles).await?;
        let sum = total::options().name("sum of tiles").remote(parts);
        println!("sum = {}", sum.get().await?);
        let failed = flaky::options().max_retries(2).remote(5u32);
        if let Err(error) = failed.get().await {
            println!("as planned, {error}");
        }
        Ok::<_, rustyray::Error>(())
    })
    .await?;
    rt.wait_idle().await;
    // An object kept alive, so the store's gauges have something to show.
    let frame = rt.put(vec![0u8; 1 << 20]);

    println!("\n--- Prometheus metrics (first lines, then the object store's)");
    let text = rt.metrics_text();
    let samples = text.lines().filter(|l| !l.starts_with('#'));
    for line in samples.clone().take(12).chain(samples.filter(|l| l.starts_with("rustyray_object"))) {
        println!("{line}");
    }
    drop(frame);
    match rt.write_timeline("timeline.json") {
        Ok(()) => println!("\n--- wrote timeline.json ({} tasks)", rt.tasks().len()),
        Err(error) => eprintln!("could not write timeline.json: {error}"),
    }

    rt.shutdown().await;
    println!("\n--- a few events");
    let mut shown = 0;
    while let Some(event) = events.recv().await {
        if matches!(event.kind, EventKind::TaskRetried { .. } | EventKind::TaskFailed { .. }) || shown < 3 {
            println!("{:?}", event.kind);
            shown += 1;
        }
    }
    Ok(())
}
