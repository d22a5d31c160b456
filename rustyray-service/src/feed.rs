//! The event feed: one task per service follows the database's event outbox
//! and fans new events out to every SSE and gRPC watcher.
//!
//! Events are read in sequence order. PostgreSQL hands out sequence numbers
//! at insert time but makes rows visible at commit, so a later number can be
//! seen before an earlier one; the feed holds back at such a gap until it
//! fills or [`GAP_WAIT`] passes (a rolled-back transaction leaves a gap that
//! never fills). Watchers that fall behind the broadcast channel, or resume
//! from an older event, read the missed events from the database, so the
//! backlog is bounded by the queue's event retention, not by memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::Stream;
use rustyray_queue::{Event, JobId, Queue};
use tokio::sync::broadcast;

use crate::error::{Result, ServiceError};

/// How long the feed waits for an earlier sequence number to commit.
pub const GAP_WAIT: Duration = Duration::from_secs(2);
const PAGE: u32 = 512;

/// Where watchers subscribe.
#[derive(Clone, Debug)]
pub(crate) struct Feed {
    queue: Queue,
    live: broadcast::Sender<Arc<Event>>,
    /// The newest sequence number the feed has delivered.
    delivered: Arc<AtomicI64>,
    /// Turns true when the service stops: every watcher's stream ends.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Feed {
    /// Starts following `queue`'s events from the newest one.
    pub(crate) async fn start(queue: Queue, poll: Duration) -> Result<Self> {
        let from = queue.last_event_seq().await?;
        let (live, _) = broadcast::channel(4096);
        let delivered = Arc::new(AtomicI64::new(from));
        let closing = tokio::sync::watch::Sender::new(false);
        let feed = Feed { queue: queue.clone(), live: live.clone(), delivered: delivered.clone(), closing };
        tokio::spawn(follow(queue, live.downgrade(), delivered, from, poll));
        Ok(feed)
    }

    /// Ends every watcher's stream, so that a graceful shutdown is not held
    /// open by clients that would watch forever.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// The newest event delivered so far.
    pub(crate) fn delivered(&self) -> i64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Events after `after` (`None`: only new ones), oldest first, then live
    /// ones, optionally only `job`'s. The stream ends when the service stops
    /// or the database fails while catching up.
    pub(crate) fn watch(
        &self,
        after: Option<i64>,
        job: Option<JobId>,
    ) -> impl Stream<Item = Result<Arc<Event>>> + use<> {
        let mut live = self.live.subscribe();
        let queue = self.queue.clone();
        let delivered = self.delivered.clone();
        let mut closing = self.closing.subscribe();
        let mut last = after.unwrap_or_else(|| self.delivered());
        async_stream(move |yield_| async move {
            let wanted = |event: &Event| job.is_none_or(|job| event.job_id == job);
            'catch_up: loop {
                // What the database holds past `last`, up to what the feed
                // has delivered: later ones arrive live, in the feed's order.
                let ceiling = delivered.load(Ordering::Acquire);
                while last < ceiling {
                    let page = match queue.events_after(last, PAGE).await {
                        Ok(page) => page,
                        Err(error) => {
                            let _ = yield_.send(Err(ServiceError::from(error))).await;
                            return;
                        }
                    };
                    let done = page.len() < PAGE as usize;
                    for event in page.into_iter().take_while(|event| event.seq <= ceiling) {
                        last = event.seq;
                        if wanted(&event) && yield_.send(Ok(Arc::new(event))).await.is_err() {
                            return;
                        }
                    }
                    if done {
                        break;
                    }
                }
                last = last.max(ceiling);
                loop {
                    let next = tokio::select! {
                        next = live.recv() => next,
                        _ = closing.wait_for(|closed| *closed) => return,
                    };
                    match next {
                        Ok(event) if event.seq <= last => {}
                        Ok(event) => {
                            last = event.seq;
                            if wanted(&event) && yield_.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue 'catch_up,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        })
    }
}

/// A stream fed by a task through a small channel: `body` sends items and
/// stops when the receiver is gone.
fn async_stream<T, F, Fut>(body: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The feed's task: reads new events, holds back at gaps, broadcasts.
async fn follow(
    queue: Queue,
    live: broadcast::WeakSender<Arc<Event>>,
    delivered: Arc<AtomicI64>,
    mut cursor: i64,
    poll: Duration,
) {
    let mut signals = queue.signals();
    let mut gap_since: Option<Instant> = None;
    let mut failing = false;
    loop {
        let Some(sender) = live.upgrade() else { return };
        match queue.events_after(cursor, PAGE).await {
            Ok(events) => {
                failing = false;
                let full = events.len() == PAGE as usize;
                for event in events {
                    if event.seq != cursor + 1 {
                        let since = *gap_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < GAP_WAIT {
                            break;
                        }
                    }
                    gap_since = None;
                    cursor = event.seq;
                    delivered.store(cursor, Ordering::Release);
                    let _ = sender.send(Arc::new(event));
                }
                if full && gap_since.is_none() {
                    continue;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "the event feed cannot read events; retrying");
                }
                failing = true;
            }
        }
        drop(sender);
        let wait = if gap_since.is_some() { Duration::from_millis(20) } else { poll };
        tokio::select! {
            signal = signals.recv() => {
                if matches!(signal, Err(broadcast::error::RecvError::Closed)) {
                    tokio::time::sleep(wait).await;
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
        // Collect a burst of changes into one read.
        while signals.try_recv().is_ok() {}
    }
}
