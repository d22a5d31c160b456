//! The job service under a bounded load, loopback only: `POST /api/jobs`
//! and `GET /api/jobs/{id}` from 64 concurrent keep-alive connections for a
//! fixed time each, with throughput and p50/p99 latency, beside the queue's
//! in-process enqueue rate measured in the same run; and how long a
//! transition takes to reach an SSE client.
//!
//! The load comes from a runtime of its own (threads named `bench-client`),
//! so that each load line can say what share of this process's CPU time the
//! client took: on a small machine client and server share the cores, and a
//! client that takes most of them caps the figure below the server's rate.
//!
//! `cargo bench --bench service` (SQLite; set `RUSTYRAY_TEST_POSTGRES` for
//! PostgreSQL too). Prints one line per figure; BENCHMARKS.md quotes them.

mod queue_db;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rustyray::queue::Queue;
use rustyray::service::{Role, Service, Tokens};
use serde_json::json;

#[rustyray::remote]
fn noop(i: u64) -> u64 {
    i
}

const CONNECTIONS: usize = 64;
const WINDOW: Duration = Duration::from_secs(3);
const TOKEN: &str = "bench-admin-token-0123456789";

const CLIENT_THREAD: &str = "bench-client";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// The runtime the load runs on, apart from the server's.
fn client_runtime() -> &'static tokio::runtime::Runtime {
    static CLIENT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    CLIENT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(CLIENT_THREAD)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// CPU time (clock ticks) this process's threads have used so far: the
/// client's threads, then every other thread (server, database drivers).
/// Threads that ended are not counted; `(0, 0)` where `/proc` is missing.
fn cpu_ticks() -> (u64, u64) {
    let (mut client, mut server) = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return (0, 0) };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(name), Ok(stat)) =
            (std::fs::read_to_string(path.join("comm")), std::fs::read_to_string(path.join("stat")))
        else {
            continue;
        };
        // Fields after the `(comm)`: state is the first, utime the 12th, stime the 13th.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        if name.trim().starts_with(CLIENT_THREAD) {
            client += ticks;
        } else {
            server += ticks;
        }
    }
    (client, server)
}

/// What one load window measured.
struct Load {
    rate: f64,
    p50: f64,
    p99: f64,
    /// The client's share of this process's CPU time in the window.
    client_share: f64,
    /// This process's CPU time over the window's wall time (2.0 = two cores busy).
    process_cores: f64,
    /// CPU time per request outside the client (server, database driver), µs.
    server_us: f64,
    /// CPU time per request in the client, µs.
    client_us: f64,
}

async fn fresh(label: &str) -> (Queue, Option<tempfile::TempDir>) {
    let (url, dir) = queue_db::fresh_url(label).await;
    (Queue::builder(&url).max_connections(32).connect().await.unwrap(), dir)
}

/// Runs `request` from CONNECTIONS clients for WINDOW on the client runtime.
async fn load<F, Fut>(request: F) -> Load
where
    F: Fn(reqwest::Client, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let ticks_before = cpu_ticks();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let request = request.clone();
        tasks.push(client_runtime().spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut latencies = Vec::new();
            let mut i = c as u64;
            while start.elapsed() < WINDOW {
                let t = Instant::now();
                assert!(request(client.clone(), i).await, "a request failed under load");
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                i += CONNECTIONS as u64;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ticks_after = cpu_ticks();
    let client = ticks_after.0.saturating_sub(ticks_before.0) as f64;
    let server = ticks_after.1.saturating_sub(ticks_before.1) as f64;
    // Clock ticks are 1/100 s on Linux.
    let process_cores = (client + server) / 100.0 / elapsed;
    all.sort_by(f64::total_cmp);
    let requests = all.len().max(1) as f64;
    Load {
        server_us: server * 1e4 / requests,
        client_us: client * 1e4 / requests,
        rate: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        client_share: client / (client + server).max(1.0),
        process_cores,
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms; process CPU {:.2} cores, client {:.0}% of it; \
             CPU per request: server {:.0} µs, client {:.0} µs",
            self.p50,
            self.p99,
            self.process_cores,
            self.client_share * 100.0,
            self.server_us,
            self.client_us
        )
    }
}

async fn run(label: &str) {
    let (q, _dir) = fresh(label).await;
    // The in-process baseline: one enqueue at a time, 64 tasks at once.
    let baseline = {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < WINDOW {
                    noop::enqueue(&q, n).await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let service = Service::builder(&q).tokens(Tokens::new().with(TOKEN, Role::Admin)).build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Arc::new(format!("http://{}", listener.local_addr().unwrap()));
    tokio::spawn(service.serve(listener, std::future::pending()));

    let url = base.clone();
    let submits = load(move |client, i| {
        let url = format!("{url}/api/jobs");
        async move {
            let body = json!({"function": noop::NAME, "args": [i]});
            let r = client.post(url).bearer_auth(TOKEN).json(&body).send().await;
            r.is_ok_and(|r| r.status() == 201)
        }
    })
    .await;
    let ids: Arc<Vec<String>> = Arc::new(
        q.jobs(rustyray::queue::JobFilter::default().limit(1000))
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id.to_string())
            .collect(),
    );
    let url = base.clone();
    let gets = load(move |client, i| {
        let url = format!("{url}/api/jobs/{}", ids[i as usize % ids.len()]);
        async move {
            let r = client.get(url).bearer_auth(TOKEN).send().await;
            match r {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await;

    // SSE: enqueue, then time until the `submitted` event reaches the client.
    let client = reqwest::Client::new();
    let response = client.get(format!("{base}/api/events")).bearer_auth(TOKEN).send().await.unwrap();
    let mut stream = response.bytes_stream();
    let mut delays = Vec::new();
    for i in 0..50u64 {
        let sent = Instant::now();
        noop::enqueue(&q, i).await.unwrap();
        loop {
            let chunk = stream.next().await.unwrap().unwrap();
            if String::from_utf8_lossy(&chunk).contains("event: submitted") {
                break;
            }
        }
        delays.push(sent.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    delays.sort_by(f64::total_cmp);
    println!("{label}: in-process enqueue (64 tasks, one job each call): {baseline:.0}/s");
    println!(
        "{label}: POST /api/jobs, 64 connections: {:.0}/s ({:.2}x in-process), {submits}",
        submits.rate,
        submits.rate / baseline
    );
    println!("{label}: GET /api/jobs/{{id}}, 64 connections: {:.0}/s, {gets}", gets.rate);
    println!(
        "{label}: SSE, enqueue to event at the client: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        run("sqlite").await;
        if std::env::var("RUSTYRAY_TEST_POSTGRES").is_ok_and(|v| !v.is_empty()) {
            run("postgres").await;
        }
    });
}
