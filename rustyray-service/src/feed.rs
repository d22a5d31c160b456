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
    /// How many watchers may be open at once.
    max_watchers: usize,
}

impl Feed {
    /// Starts following `queue`'s events from the newest one; at most
    /// `max_watchers` may watch at once.
    pub(crate) async fn start(queue: Queue, poll: Duration, max_watchers: usize) -> Result<Self> {
        let from = queue.last_event_seq().await?;
        let (live, _) = broadcast::channel(4096);
        let delivered = Arc::new(AtomicI64::new(from));
        let closing = tokio::sync::watch::Sender::new(false);
        let feed =
            Feed { queue: queue.clone(), live: live.clone(), delivered: delivered.clone(), closing, max_watchers };
        tokio::spawn(follow(queue, live.downgrade(), delivered, from, poll));
        Ok(feed)
    }

    /// Ends every watcher's stream, so that a graceful shutdown is not held
    /// open by clients that would watch forever.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// How many watchers may be open at once (the event streams' limit,
    /// which other long-lived streams share as their own).
    pub(crate) fn max_watchers(&self) -> usize {
        self.max_watchers
    }

    /// Turns true once the service stops (see [`close`](Self::close)): other
    /// streams that would run for ever end on it too.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// The newest event delivered so far.
    pub(crate) fn delivered(&self) -> i64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Events after `after` (`None`: only new ones), oldest first, then live
    /// ones, optionally only `job`'s. The stream ends when the service stops
    /// or the database fails while catching up. An event stream holds no
    /// request slot once it is open, so watchers have a limit of their own:
    /// past it, RESOURCE_EXHAUSTED.
    pub(crate) fn watch(
        &self,
        after: Option<i64>,
        job: Option<JobId>,
    ) -> Result<impl Stream<Item = Result<Arc<Event>>> + use<>> {
        let mut live = self.live.subscribe();
        // Counted with this one: two watchers admitted at once cannot both
        // take the last place.
        if self.live.receiver_count() > self.max_watchers {
            return Err(ServiceError::Overloaded(format!(
                "{} event streams are open, the most this service serves; try again later",
                self.max_watchers
            )));
        }
        let queue = self.queue.clone();
        let delivered = self.delivered.clone();
        let mut closing = self.closing.subscribe();
        // An `after` past what the feed has delivered (a client whose last
        // id outlived a database made anew, say) would drop every event up
        // to it: it is taken as the newest, and later events reach it.
        let mut last = after.map_or_else(|| self.delivered(), |after| after.min(self.delivered()));
        Ok(async_stream(move |yield_| async move {
            let wanted = |event: &Event| job.is_none_or(|job| event.job_id == job);
            'catch_up: loop {
                // What the database holds past `last`, up to what the feed
                // has delivered: later ones arrive live, in the feed's order.
                let ceiling = delivered.load(Ordering::Acquire);
                while last < ceiling {
                    // A long catch-up ends with its client or the service,
                    // even where no event of it is wanted (and so sent).
                    if *closing.borrow() || yield_.is_closed() {
                        return;
                    }
                    let page = match queue.events_after(last, PAGE).await {
                        Ok(page) => page,
                        Err(error) => {
                            let _ = yield_.send(Err(ServiceError::from(error))).await;
                            return;
                        }
                    };
                    let done = caught_up(&page, ceiling);
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
                    // A watcher of one job may see no event of its own for
                    // ever: it ends when its client goes, not when a send fails.
                    let next = tokio::select! {
                        next = live.recv() => next,
                        _ = closing.wait_for(|closed| *closed) => return,
                        () = yield_.closed() => return,
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
        }))
    }
}

/// Whether a catch-up `page` (events in sequence order, at most [`PAGE`])
/// holds every stored event up to `ceiling`: a short page holds all there
/// are, and a page that reaches `ceiling` or past it all up to it. (Going
/// by the events delivered alone, a full page of events past `ceiling`
/// after a gap or pruned events would be read again and again.)
fn caught_up(page: &[Event], ceiling: i64) -> bool {
    page.len() < PAGE as usize || page.last().is_some_and(|event| event.seq >= ceiling)
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

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn feed() -> Feed {
        let queue = Queue::connect("sqlite::memory:").await.expect("an in-memory queue");
        Feed::start(queue, Duration::from_millis(10), 2).await.expect("the feed starts")
    }

    /// Waits (with a generous bound against a hang) until the feed has `count` watchers.
    async fn watchers_drop_to(feed: &Feed, count: usize) {
        let settled = tokio::time::timeout(Duration::from_secs(10), async {
            while feed.live.receiver_count() > count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(settled.is_ok(), "{} watchers left, expected {count}", feed.live.receiver_count());
    }

    fn event(seq: i64) -> Event {
        Event {
            seq,
            kind: "submitted".into(),
            job_id: JobId::new(),
            function: "f".into(),
            queue: "default".into(),
            state: rustyray_queue::JobState::Queued,
            attempt: 0,
            error: None,
            args: None,
            at: 0,
        }
    }

    #[test]
    fn a_full_page_past_the_ceiling_ends_the_catch_up() {
        let page = |from: i64| (from..from + i64::from(PAGE)).map(event).collect::<Vec<_>>();
        // Nothing stored between the watcher's last event (say 10) and the
        // feed's (100), and a full page of newer ones: done, not read again.
        assert!(caught_up(&page(101), 100));
        // A full page that ends before the ceiling: more to read.
        assert!(!caught_up(&page(1), 1000));
        // A full page that ends at it, or a short page: done.
        assert!(caught_up(&page(1), i64::from(PAGE)));
        assert!(caught_up(&[event(5)], 1000));
        assert!(caught_up(&[], 1000));
    }

    #[tokio::test]
    async fn a_watcher_of_a_job_without_events_ends_when_its_client_goes() {
        let feed = feed().await;
        let before = feed.live.receiver_count();
        let watcher = feed.watch(None, Some(JobId::new())).expect("a watcher");
        assert_eq!(feed.live.receiver_count(), before + 1);
        drop(watcher);
        watchers_drop_to(&feed, before).await;
    }

    #[tokio::test]
    async fn watchers_past_the_limit_are_refused_until_one_goes() {
        let feed = feed().await;
        let first = feed.watch(None, None).expect("the first watcher");
        let _second = feed.watch(None, None).expect("the second watcher");
        assert!(
            matches!(feed.watch(None, None).err(), Some(ServiceError::Overloaded(_))),
            "a third past the limit of 2"
        );
        drop(first);
        watchers_drop_to(&feed, 1).await;
        assert!(feed.watch(None, None).is_ok(), "a place came free");
    }

    #[tokio::test]
    async fn a_watcher_whose_last_id_is_past_the_newest_event_still_gets_new_ones() {
        let feed = feed().await;
        let mut watcher = feed.watch(Some(i64::MAX), None).expect("a watcher");
        let _ = feed.live.send(Arc::new(event(feed.delivered() + 1)));
        let got = tokio::time::timeout(Duration::from_secs(10), watcher.next()).await;
        assert!(matches!(got, Ok(Some(Ok(_)))), "the live event did not arrive");
    }

    #[tokio::test]
    async fn a_watcher_still_gets_its_events_until_then() {
        let feed = feed().await;
        let mut watcher = feed.watch(None, None).expect("a watcher");
        let _ = feed.live.send(Arc::new(event(feed.delivered() + 1)));
        let got = tokio::time::timeout(Duration::from_secs(10), watcher.next()).await;
        assert!(matches!(got, Ok(Some(Ok(_)))), "the live event did not arrive");
    }
}
