//! Lifecycle events published to a real NATS JetStream server from the
//! database's outbox: every event arrives, de-duplicated by its id, and an
//! outage of the broker delays events without losing any or blocking jobs.
//!
//! `RUSTYRAY_TEST_NATS` names the server (`nats://127.0.0.1:4222`); unset,
//! these tests say so and skip. The outage test runs its own `nats-server`
//! (from PATH or /usr/sbin) on a free port so it can stop and restart it.

mod queue;
mod service;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use queue::within;
use rustyray::queue::{Event, Queue, Worker};
use rustyray::service::NatsConfig;
use service::Server;

#[rustyray::remote]
fn square(x: i64) -> i64 {
    x * x
}

#[rustyray::remote]
fn length(text: String) -> usize {
    text.len()
}

fn nats_url() -> Option<String> {
    match std::env::var("RUSTYRAY_TEST_NATS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("RUSTYRAY_TEST_NATS is not set: SKIPPING the NATS JetStream tests");
            None
        }
    }
}

/// A stream and subject prefix no other test run shares.
fn config(url: &str) -> NatsConfig {
    let tag = format!("t{}_{}", std::process::id(), fastrand::u32(..));
    let mut config = NatsConfig::new(url);
    config.stream = format!("RUSTYRAY_TEST_{tag}");
    config.subject_prefix = format!("rustyray_test.{tag}");
    config
}

async fn worker(q: &Queue) -> Worker {
    Worker::builder(q).concurrency(4).heartbeat(Duration::from_millis(50)).start().await.expect("worker")
}

/// Every message in `stream` (at least `want`, waiting for them), as events
/// with their message ids.
async fn read_all(url: &str, stream: &str, want: usize) -> Vec<(String, Event)> {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let stream = js.get_stream(stream).await.expect("stream exists");
    let consumer = stream.create_consumer(pull::Config::default()).await.expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    loop {
        // Wait long for what must come, briefly for duplicates past it.
        let patience = if out.len() < want { Duration::from_secs(30) } else { Duration::from_millis(500) };
        let Ok(Some(message)) = tokio::time::timeout(patience, messages.next()).await else { break };
        let message = message.expect("message");
        let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string()).unwrap_or_default();
        let event: Event = serde_json::from_slice(&message.payload).expect("an event");
        message.ack().await.expect("ack");
        out.push((id, event));
    }
    out
}

async fn wait_published(q: &Queue) {
    within("published", async {
        while !q.unpublished_events(1).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_jetstream_once_with_its_id_as_message_id() {
    let Some(url) = nats_url() else { return };
    for db in queue::backends().await {
        let q = db.queue().await;
        let config = config(&url);
        let stream = config.stream.clone();
        let server = Server::start_with(&q, |b| b.nats(config)).await;
        let w = worker(&q).await;
        let jobs = square::enqueue_many(&q, (0..20).map(|i| (i,))).await.unwrap();
        for job in &jobs {
            within("result", job.result()).await.unwrap();
        }
        wait_published(&q).await;
        let events = q.events_after(0, 1000).await.unwrap();
        assert_eq!(events.len(), 60, "{}: submitted, started, succeeded per job", db.label);
        let published = read_all(&url, &stream, events.len()).await;
        assert_eq!(published.len(), events.len(), "{}", db.label);
        for (id, event) in &published {
            assert_eq!(id, &rustyray::service::message_id(event));
        }
        let mut seqs: Vec<i64> = published.iter().map(|(_, e)| e.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, events.iter().map(|e| e.seq).collect::<Vec<_>>(), "each event exactly once");
        let (_, health) = (
            (),
            reqwest::Client::new()
                .get(server.url("/api/health"))
                .bearer_auth(service::READ)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap(),
        );
        let broker = health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "broker").unwrap().clone();
        assert_eq!(broker["ok"], true, "{health}");
        w.shutdown().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_the_broker_takes_goes_without_its_arguments_and_holds_back_none() {
    let Some(url) = nats_url() else { return };
    let db = queue::sqlite();
    let q = db.queue().await;
    let config = config(&url);
    let stream = config.stream.clone();
    let server = Server::start_with(&q, |b| b.nats(config)).await;
    // Past the broker's limit on a message (1 MiB by default) once recorded.
    let big = "x".repeat(2 << 20);
    let options = rustyray::queue::JobOptions { record_args: true, ..Default::default() };
    let large = q.enqueue_by_name(length::NAME, serde_json::json!([big]), options).await.unwrap();
    let after = square::enqueue_many(&q, (0..3).map(|i| (i,))).await.unwrap();
    wait_published(&q).await;
    let published = read_all(&url, &stream, 4).await;
    assert_eq!(published.len(), 4, "the large job's event and the three after it");
    let sent =
        published.iter().map(|(_, event)| event).find(|event| event.job_id == large).expect("the large job's event");
    assert_eq!(sent.args, None, "published without its arguments");
    assert_eq!(
        q.events_after(0, 10).await.unwrap()[0].args.as_ref().map(|args| args[0].as_str().map(str::len)),
        Some(Some(big.len())),
        "the database keeps them"
    );
    for job in &after {
        assert!(published.iter().any(|(_, event)| event.job_id == job.id()), "an event after the large one arrived");
    }
    server.stop().await;
}

/// A `nats-server -js` of this test's own, on `port`, keeping its data in `dir`.
fn spawn_nats(port: u16, dir: &std::path::Path) -> Child {
    let binary = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
        .expect("RUSTYRAY_TEST_NATS is set, so nats-server must be installed");
    Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts")
}

async fn reachable(url: &str) {
    within("nats-server up", async {
        while async_nats::connect(url).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_delays_events_degrades_health_and_loses_none() {
    if nats_url().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut broker = spawn_nats(port, dir.path());
    reachable(&url).await;
    let db = queue::sqlite();
    let q = db.queue().await;
    let config = config(&url);
    let stream = config.stream.clone();
    let server = Server::start_with(&q, |b| b.nats(config).public_health(true)).await;
    let w = worker(&q).await;
    let first = square::enqueue_many(&q, (0..10).map(|i| (i,))).await.unwrap();
    for job in &first {
        within("result", job.result()).await.unwrap();
    }
    wait_published(&q).await;
    // The broker goes away mid-stream: jobs go on, events wait.
    broker.kill().unwrap();
    broker.wait().unwrap();
    let second = square::enqueue_many(&q, (10..20).map(|i| (i,))).await.unwrap();
    for job in &second {
        within("result without a broker", job.result()).await.unwrap();
    }
    let degraded = within("degraded", async {
        loop {
            let health: serde_json::Value =
                reqwest::get(server.url("/api/health")).await.unwrap().json().await.unwrap();
            if health["status"] == "degraded" && health["reasons"].to_string().contains("broker") {
                break health;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(degraded["reasons"].to_string().contains("delayed"), "{degraded}");
    assert!(!q.unpublished_events(1).await.unwrap().is_empty(), "events wait in the database");
    let mut broker = spawn_nats(port, dir.path());
    reachable(&url).await;
    wait_published(&q).await;
    let events = q.events_after(0, 1000).await.unwrap();
    assert_eq!(events.len(), 60);
    let published = read_all(&url, &stream, events.len()).await;
    let mut per_event: HashMap<i64, usize> = HashMap::new();
    for (_, event) in &published {
        *per_event.entry(event.seq).or_default() += 1;
    }
    assert_eq!(per_event.len(), events.len(), "every event arrived");
    assert!(per_event.values().all(|&n| n == 1), "and once, after de-duplication: {per_event:?}");
    w.shutdown().await;
    server.stop().await;
    let _ = broker.kill();
    let _ = broker.wait();
}
