//! The job service end to end: serve the HTTP/JSON API over a SQLite queue
//! with a worker in the same process, then, as a client would over HTTP,
//! submit jobs, watch their events, cancel one, and read statistics.
//!
//! ```text
//! cargo run --release --example service
//! ```
//!
//! Given arguments, it is the application's command line instead, with these
//! functions registered: `cargo run --example service -- serve --db
//! sqlite://jobs.db --worker 4` serves until Ctrl-C, with tokens from
//! `RUSTYRAY_TOKENS` (see README.md).

use std::time::Duration;

use futures::StreamExt;
use rustyray::queue::{Queue, Worker};
use rustyray::service::{Role, Service, Tokens};
use serde_json::{Value, json};

#[rustyray::remote]
fn fib(n: u64) -> u64 {
    (1..n).fold((0u64, 1u64), |(a, b), _| (b, a.wrapping_add(b))).1
}

#[rustyray::remote]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

const ADMIN: &str = "example-admin-token-change-me";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().len() > 1 {
        let code = rustyray::cli::run_async().await;
        std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 });
    }
    let dir = tempfile::tempdir()?;
    let q = Queue::connect(&format!("sqlite://{}/jobs.db", dir.path().display())).await?;
    let tokens = Tokens::new().with(ADMIN, Role::Admin);
    let service = Service::builder(&q).tokens(tokens).public_health(true).build().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.serve(listener, async move {
        let _ = stopped.await;
    }));
    let worker = Worker::builder(&q).concurrency(2).start().await?;
    println!("serving on {base}");

    let http = reqwest::Client::new();
    // Watch events as they happen.
    let events = http.get(format!("{base}/api/events")).bearer_auth(ADMIN).send().await?;
    let watcher = tokio::spawn(async move {
        let mut stream = events.bytes_stream();
        let mut seen = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            for line in String::from_utf8_lossy(&chunk).lines().filter_map(|l| l.strip_prefix("data:")) {
                let event: Value = serde_json::from_str(line.trim()).unwrap_or_default();
                println!(
                    "  event {:>3} {:<10} job {} attempt {}",
                    event["seq"], event["kind"], event["job_id"], event["attempt"]
                );
                seen += 1;
            }
            if seen >= 8 {
                break;
            }
        }
    });

    // Submit: a function by its registered name, JSON arguments, options.
    let submit = |function: &str, args: Value| {
        http.post(format!("{base}/api/jobs"))
            .bearer_auth(ADMIN)
            .json(&json!({"function": function, "args": args, "options": {"max_retries": 2}}))
            .send()
    };
    let created: Value = submit(fib::NAME, json!([40])).await?.json().await?;
    println!("POST /api/jobs -> {created}");
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let long: Value = submit(slow::NAME, json!([60_000])).await?.json().await?;
    let long_id = long["id"].as_str().unwrap_or_default().to_string();

    // Bad input is refused before anything is written, naming the field.
    let refused: Value = submit("app::missing", json!([])).await?.json().await?;
    println!("POST /api/jobs (unknown function) -> {refused}");

    // Wait for the result, then cancel the long one while it runs.
    let job = loop {
        let job: Value = http.get(format!("{base}/api/jobs/{id}")).bearer_auth(ADMIN).send().await?.json().await?;
        if job["state"] == "SUCCEEDED" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("GET /api/jobs/{id} -> state {} result {}", job["state"], job["result"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled: Value =
        http.post(format!("{base}/api/jobs/{long_id}/cancel")).bearer_auth(ADMIN).send().await?.json().await?;
    println!("POST /api/jobs/{long_id}/cancel -> {cancelled}");
    rustyray::queue::Job::<u64>::from_id(&q, long_id.parse()?).wait().await?;

    let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    let stats: Value = http.get(format!("{base}/api/stats")).bearer_auth(ADMIN).send().await?.json().await?;
    println!("GET /api/stats -> by state {}", stats["by_state"]);
    let health: Value = http.get(format!("{base}/api/health")).send().await?.json().await?;
    println!("GET /api/health -> {} {}", health["status"], health["reasons"]);

    worker.shutdown().await;
    let _ = stop.send(());
    server.await??;
    Ok(())
}
