//! Publishing lifecycle events to NATS JetStream from the database's event
//! outbox: at least once (an event is marked published only after the
//! broker acknowledged it, so a crash in between publishes it again), and
//! de-duplicated by the broker through `Nats-Msg-Id`, which is the event's
//! job and sequence number. A broker outage delays events and degrades
//! health; it never blocks or loses job state, which lives in the database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use rustyray_queue::{Event, Queue};

use crate::metrics::ServiceMetrics;

/// Where and how to publish.
#[derive(Clone)]
pub struct NatsConfig {
    /// The server, `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream, created if missing (default `RUSTYRAY_JOBS`).
    pub stream: String,
    /// Subjects are `<prefix>.<kind>` (default `rustyray.jobs`).
    pub subject_prefix: String,
    /// How long the broker remembers message ids to drop duplicates.
    pub duplicate_window: Duration,
}

impl NatsConfig {
    /// Publishes to the server at `url` with the default stream and subjects.
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            stream: "RUSTYRAY_JOBS".into(),
            subject_prefix: "rustyray.jobs".into(),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// The server's address without its credentials, for logs and health.
    pub fn address(&self) -> String {
        redact(&self.url)
    }

    /// The subject of `event`.
    pub fn subject(&self, event: &Event) -> String {
        format!("{}.{}", self.subject_prefix, event.kind)
    }
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.address())
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("duplicate_window", &self.duplicate_window)
            .finish()
    }
}

/// `url` (one server or a comma-separated list) without user names,
/// passwords or tokens: NATS takes a token as the user name
/// (`nats://token@host`), so the whole user part goes.
fn redact(url: &str) -> String {
    let one = |url: &str| match url.rsplit_once('@') {
        Some((before, host)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{host}"),
            None => format!("***@{host}"),
        },
        None => url.to_string(),
    };
    url.split(',').map(|url| one(url.trim())).collect::<Vec<_>>().join(",")
}

/// How much of the broker's limit on a message an event may take: the rest
/// is for the headers (the message id).
const HEADROOM: usize = 1024;

/// `event` as published: whole if it fits the broker's limit on a message
/// (`max_payload`), else without its arguments and with its error cut short,
/// so that one event too large for the broker never holds back those after
/// it (the job itself, arguments included, stays readable through the API).
fn payload(event: &Event, max_payload: usize) -> Result<Vec<u8>, String> {
    let encode =
        |event: &Event| serde_json::to_vec(event).map_err(|error| format!("encoding event {}: {error}", event.seq));
    let limit = max_payload.saturating_sub(HEADROOM);
    let whole = encode(event)?;
    if whole.len() <= limit {
        return Ok(whole);
    }
    let mut slim = event.clone();
    slim.args = None;
    if let Some(error) = &mut slim.error {
        let keep = (limit / 2).min(error.len());
        let cut = (0..=keep).rev().find(|at| error.is_char_boundary(*at)).unwrap_or(0);
        error.truncate(cut);
    }
    tracing::warn!(seq = event.seq, job = %event.job_id, bytes = whole.len(), max_payload, "event too large for the broker: published without its arguments");
    let slim_bytes = encode(&slim)?;
    if slim_bytes.len() <= limit {
        return Ok(slim_bytes);
    }
    // Escaping can grow the error again (a control character takes six
    // bytes in JSON): then it goes, and the job says it.
    slim.error = Some("(too large for the broker: read the job)".into());
    encode(&slim)
}

/// The id the broker de-duplicates by: unique across databases too.
pub fn message_id(event: &Event) -> String {
    format!("{}:{}", event.job_id, event.seq)
}

/// The publisher task's handle: whether the broker is reachable, and why not.
#[derive(Clone, Debug)]
pub(crate) struct Publisher {
    status: Arc<Mutex<(bool, String)>>,
}

impl Publisher {
    pub(crate) fn start(queue: Queue, config: NatsConfig, metrics: ServiceMetrics) -> Self {
        let status = Arc::new(Mutex::new((false, format!("connecting to {}", config.address()))));
        tokio::spawn(run(queue, config, metrics, Arc::downgrade(&status)));
        Publisher { status }
    }

    /// (connected, what was last seen).
    pub(crate) fn status(&self) -> (bool, String) {
        self.status.lock().map(|s| s.clone()).unwrap_or((false, "status unavailable".into()))
    }
}

type Status = std::sync::Weak<Mutex<(bool, String)>>;

fn set(status: &Status, connected: bool, detail: String) -> bool {
    let Some(status) = status.upgrade() else { return false };
    if let Ok(mut s) = status.lock() {
        *s = (connected, detail);
    }
    true
}

async fn run(queue: Queue, config: NatsConfig, metrics: ServiceMetrics, status: Status) {
    let mut delay = Duration::from_millis(100);
    loop {
        let outcome = publish_until_error(&queue, &config, &metrics, &status).await;
        metrics.broker_connected.set(0);
        let Err(error) = outcome else { return };
        metrics.publish_failures.inc();
        tracing::warn!(broker = %config.address(), %error, "event broker unavailable; events wait in the database");
        if !set(&status, false, error) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Connects and publishes until something fails (`Err`) or the service is
/// gone (`Ok`).
async fn publish_until_error(
    queue: &Queue,
    config: &NatsConfig,
    metrics: &ServiceMetrics,
    status: &Status,
) -> Result<(), String> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(&config.url)
        .await
        .map_err(|error| format!("connecting to {}: {error}", config.address()))?;
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(jetstream::stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        duplicate_window: config.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(|error| format!("creating stream {}: {error}", config.stream))?;
    metrics.broker_connected.set(1);
    if !set(status, true, format!("publishing to {} on {}", config.stream, config.address())) {
        return Ok(());
    }
    let mut signals = queue.signals();
    loop {
        if status.strong_count() == 0 {
            return Ok(());
        }
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(format!("lost the connection to {}", config.address()));
        }
        let events = queue.unpublished_events(256).await.map_err(|error| format!("reading events: {error}"))?;
        metrics.events_unpublished.set(events.len() as i64);
        if events.is_empty() {
            tokio::select! {
                _ = signals.recv() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let mut acks = Vec::with_capacity(events.len());
        for event in &events {
            let payload = payload(event, client.max_payload())?;
            let publish = PublishMessage::build().payload(payload.into()).message_id(message_id(event));
            let ack = js
                .send_publish(config.subject(event), publish)
                .await
                .map_err(|error| format!("publishing event {}: {error}", event.seq))?;
            acks.push((event.seq, ack));
        }
        let mut done = Vec::with_capacity(acks.len());
        let mut failure = None;
        for (seq, ack) in acks {
            match tokio::time::timeout(Duration::from_secs(5), ack).await {
                Ok(Ok(_)) => done.push(seq),
                Ok(Err(error)) => failure = Some(format!("event {seq} not acknowledged: {error}")),
                Err(_) => failure = Some(format!("event {seq} not acknowledged within 5 s")),
            }
            if failure.is_some() {
                break;
            }
        }
        // Only what the broker acknowledged is marked; the rest goes again.
        queue.mark_events_published(&done).await.map_err(|error| format!("marking events published: {error}"))?;
        metrics.events_published.inc_by(done.len() as u64);
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
}

#[cfg(test)]
mod tests {
    use rustyray_queue::{JobId, JobState};

    use super::*;

    fn event(args: Option<serde_json::Value>, error: Option<String>) -> Event {
        Event {
            seq: 7,
            kind: "submitted".into(),
            job_id: JobId::new(),
            function: "f".into(),
            queue: "default".into(),
            state: JobState::Queued,
            attempt: 0,
            error,
            args,
            at: 0,
        }
    }

    #[test]
    fn credentials_never_reach_logs_or_health() {
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("nats://user:s3cret@broker:4222"), "nats://***@broker:4222");
        assert_eq!(redact("nats://s3cret-token@broker"), "nats://***@broker");
        assert_eq!(redact("tls://a:p@one:4222, nats://two:4222"), "tls://***@one:4222,nats://two:4222");
        let config = NatsConfig::new("nats://user:s3cret@broker:4222");
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    }

    #[test]
    fn an_error_that_escaping_grows_past_the_limit_goes() {
        // Half the limit of control characters is three times the limit once escaped.
        let event = event(None, Some("\u{1}".repeat(8 * 1024)));
        let max = 16 * 1024;
        let bytes = payload(&event, max).unwrap();
        assert!(bytes.len() <= max - HEADROOM, "{} bytes", bytes.len());
        let sent: Event = serde_json::from_slice(&bytes).unwrap();
        assert!(sent.error.as_deref().is_some_and(|error| error.contains("read the job")), "{:?}", sent.error);
    }

    #[test]
    fn an_event_that_fits_is_published_whole() {
        let event = event(Some(serde_json::json!(["small"])), Some("boom".into()));
        let sent: Event = serde_json::from_slice(&payload(&event, 1 << 20).unwrap()).unwrap();
        assert_eq!(sent, event);
    }

    #[test]
    fn an_event_too_large_goes_without_its_arguments_and_with_its_error_cut() {
        let big = "x".repeat(64 * 1024);
        let event = event(Some(serde_json::json!([big])), Some(format!("é{big}")));
        let max = 16 * 1024;
        let bytes = payload(&event, max).unwrap();
        assert!(bytes.len() <= max - HEADROOM, "{} bytes", bytes.len());
        let sent: Event = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(sent.args, None);
        assert!(sent.error.as_deref().is_some_and(|error| error.starts_with('é') && error.len() < big.len()));
        assert_eq!((sent.seq, sent.job_id, sent.state), (event.seq, event.job_id, event.state));
    }
}
