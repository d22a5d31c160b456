//! Lifecycle events: what happened to tasks and actors, as a stream an
//! application can forward to its own bus.
//!
//! Events go through a bounded broadcast channel that the task manager never
//! waits on: a subscriber that falls behind loses the oldest events it has
//! not read and is told how many with an [`EventKind::Lagged`] event. With no
//! subscriber, no event is even built.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::Stream;
use rustyray_core::{ActorId, DeathReason, FunctionId, TaskId};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// How many events a subscriber may fall behind before it loses the oldest.
pub(crate) const DEFAULT_CAPACITY: usize = 4096;
/// The most events a subscriber may fall behind by (`Builder::event_capacity`).
pub(crate) const MAX_CAPACITY: usize = 1 << 24;

/// One lifecycle event.
#[derive(Clone, Debug)]
pub struct Event {
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. Arguments appear only for calls made with `record_args(true)`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// A task was submitted.
    TaskSubmitted {
        /// The task.
        task: TaskId,
        /// Its function (or `Actor::method`).
        function: FunctionId,
        /// The name given with `.name(..)`.
        name: Option<Arc<str>>,
        /// The task that submitted it.
        parent: Option<TaskId>,
        /// Its arguments, if the call opted in to recording them.
        args: Option<Arc<str>>,
    },
    /// An attempt started.
    TaskStarted {
        /// The task.
        task: TaskId,
        /// Its function.
        function: FunctionId,
        /// 1 for the first attempt, 2 for the first retry, ...
        attempt: u32,
    },
    /// A task finished with a value.
    TaskSucceeded {
        /// The task.
        task: TaskId,
        /// Its function.
        function: FunctionId,
        /// The attempts it took.
        attempts: u32,
    },
    /// An attempt failed and the task will run again.
    TaskRetried {
        /// The task.
        task: TaskId,
        /// Its function.
        function: FunctionId,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        error: String,
        /// The backoff before the next attempt.
        delay: Duration,
    },
    /// A task finished with an error.
    TaskFailed {
        /// The task.
        task: TaskId,
        /// Its function.
        function: FunctionId,
        /// The error, as `get` reports it.
        error: String,
    },
    /// A task was cancelled (directly, through its parent, or by shutdown).
    TaskCancelled {
        /// The task.
        task: TaskId,
        /// Its function.
        function: FunctionId,
    },
    /// An actor was constructed and takes calls.
    ActorStarted {
        /// The actor.
        actor: ActorId,
        /// Its type.
        class: &'static str,
        /// Its name, if it has one.
        name: Option<String>,
    },
    /// An actor crashed and was rebuilt from its constructor arguments.
    ActorRestarted {
        /// The actor.
        actor: ActorId,
        /// Its type.
        class: &'static str,
        /// Restarts so far.
        restarts: u32,
    },
    /// An actor ended: killed, crashed with no restarts left, never built, or released.
    ActorDied {
        /// The actor.
        actor: ActorId,
        /// Its type.
        class: &'static str,
        /// Why.
        reason: DeathReason,
    },
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// Events lost.
        missed: u64,
    },
}

/// The sending side, kept by the task manager.
pub(crate) struct Events {
    sender: Option<broadcast::Sender<Event>>,
    capacity: usize,
    /// Events that slow subscribers missed (a running total).
    pub(crate) dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Events {
    pub(crate) fn new(capacity: usize) -> Self {
        Events { sender: None, capacity: capacity.max(1), dropped: Arc::default() }
    }

    /// Whether anyone listens (build events only then).
    pub(crate) fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Sends the event `kind` builds, if anyone listens.
    pub(crate) fn emit(&mut self, at: SystemTime, kind: impl FnOnce() -> EventKind) {
        if let Some(sender) = &self.sender
            && sender.send(Event { at, kind: kind() }).is_err()
        {
            // Every subscriber is gone: stop building events.
            self.sender = None;
        }
    }

    /// Ends every subscriber's stream (the runtime shut down).
    pub(crate) fn close(&mut self) {
        self.sender = None;
    }

    pub(crate) fn subscribe(&mut self) -> EventStream {
        let receiver = match &self.sender {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.capacity);
                self.sender = Some(sender);
                receiver
            }
        };
        EventStream { inner: BroadcastStream::new(receiver), closed: false, missed: 0, dropped: self.dropped.clone() }
    }
}

/// The lifecycle events of a runtime, from [`Runtime::subscribe`](crate::Runtime::subscribe) on.
///
/// A [`Stream`] of [`Event`]s; it ends when the runtime shuts down. Reading
/// slowly never slows the runtime: past the buffer's capacity the oldest
/// unread events are dropped and an [`EventKind::Lagged`] event says how many.
pub struct EventStream {
    inner: BroadcastStream<Event>,
    closed: bool,
    missed: u64,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl EventStream {
    /// The next event; `None` once the runtime has shut down.
    pub async fn recv(&mut self) -> Option<Event> {
        futures::StreamExt::next(self).await
    }

    /// Ends the stream.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// Events this subscriber missed by falling behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("missed", &self.missed).finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.closed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(event)),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                self.missed += missed;
                self.dropped.fetch_add(missed, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(Some(Event { at: SystemTime::now(), kind: EventKind::Lagged { missed } }))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn cancelled(n: u64) -> EventKind {
        EventKind::TaskCancelled { task: TaskId::from_u64(n), function: FunctionId::new(&"t::f") }
    }

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_and_is_told_how_many() {
        let mut events = Events::new(2);
        let mut stream = events.subscribe();
        for n in 0..5 {
            events.emit(SystemTime::now(), || cancelled(n));
        }
        let first = stream.next().await.map(|e| e.kind);
        assert!(matches!(first, Some(EventKind::Lagged { missed: 3 })), "{first:?}");
        let next = stream.next().await.map(|e| e.kind);
        assert!(matches!(next, Some(EventKind::TaskCancelled { task, .. }) if task.as_u64() == 3), "{next:?}");
        assert_eq!(stream.missed(), 3);
        drop(events);
        assert!(matches!(stream.next().await, Some(Event { kind: EventKind::TaskCancelled { .. }, .. })));
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn nothing_is_built_without_subscribers() {
        let mut events = Events::new(4);
        events.emit(SystemTime::now(), || unreachable!("no subscriber: the event is not built"));
        let stream = events.subscribe();
        drop(stream);
        events.emit(SystemTime::now(), || cancelled(1));
        assert!(!events.enabled());
    }
}
