//! The admin page with something to look at: serves the job service over a
//! SQLite queue in a temporary directory, with a worker, jobs that
//! succeed, fail (with a backtrace) and run long, and a new job every few
//! seconds, then prints the page's address and the tokens to sign in with.
//! Serves until Ctrl-C.
//!
//! ```text
//! cargo run --example admin               # then open http://127.0.0.1:8080/admin
//! cargo run --example admin -- 0.0.0.0:9000
//! ```

use std::time::Duration;

use rustyray::queue::{JobOptions, Queue, Worker};
use rustyray::service::{Role, Service, Tokens};
use serde_json::json;

/// Demo tokens: anyone who reads this file has them. Use real ones
/// (`RUSTYRAY_TOKENS`) for anything but a demo on your own machine.
const ADMIN: &str = "demo-admin-token-change-me";
const READ: &str = "demo-read-token-change-me";

#[rustyray::remote]
fn thumbnail(width: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    width / 4
}

#[rustyray::remote]
fn import(path: String) -> Result<u64, String> {
    Err(format!("cannot open {path}: no such file or directory"))
}

#[rustyray::remote]
fn checksum(block: u64) -> u64 {
    if block == 13 {
        panic!("block {block} is corrupt");
    }
    block.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[rustyray::remote]
async fn sleepy(seconds: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let dir = tempfile::tempdir()?;
    let q = Queue::connect(&format!("sqlite://{}/jobs.db", dir.path().display())).await?;
    let tokens = Tokens::new().with(ADMIN, Role::Admin).with(READ, Role::Read);
    let service = Service::builder(&q).tokens(tokens).build().await?;
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| format!("listening on {address}: {e}"))?;
    let local = listener.local_addr()?;
    let worker = Worker::builder(&q).concurrency(2).start().await?;

    for width in [640, 1280, 1920] {
        q.enqueue_by_name(thumbnail::NAME, json!([width]), JobOptions::default().name(format!("thumbnail {width}")))
            .await?;
    }
    let recorded = JobOptions { record_args: true, ..JobOptions::default() };
    q.enqueue_by_name(
        import::NAME,
        json!(["/data/2026-05.csv"]),
        recorded.clone().name("monthly import").max_retries(1),
    )
    .await?;
    q.enqueue_by_name(checksum::NAME, json!([13]), JobOptions::default().name("checksum block 13").queue("io")).await?;
    q.enqueue_by_name(sleepy::NAME, json!([3600]), JobOptions::default().name("an hour's nap")).await?;

    // A new job every few seconds, so that the pages have something to follow.
    let feeder = {
        let q = q.clone();
        tokio::spawn(async move {
            for n in 1u32.. {
                tokio::time::sleep(Duration::from_secs(4)).await;
                let options = JobOptions::default().name(format!("thumbnail batch {n}"));
                if q.enqueue_by_name(thumbnail::NAME, json!([n * 100]), options).await.is_err() {
                    break;
                }
            }
        })
    };

    println!("admin page: http://{local}/admin");
    println!("  sign in with the admin token {ADMIN}");
    println!("  or the read token            {READ}");
    println!("Ctrl-C stops it.");
    service
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    feeder.abort();
    worker.shutdown().await;
    Ok(())
}
