//! Queries: what the runtime's handles read from the manager's state
//! (tasks, actors, statistics, metrics, the timeline, idleness).

use rustc_hash::FxHashMap;
use rustyray_core::TaskId;
use tokio::sync::oneshot;

use super::core::Core;
use crate::accounting::StoreUsage;
use crate::state::{TaskFilter, TaskInfo};

impl Core {
    pub(crate) fn subscribe(&mut self) -> crate::events::EventStream {
        self.books.records.events.subscribe()
    }

    pub(crate) fn close_events(&mut self) {
        self.books.records.events.close();
    }

    /// What a metrics scrape reports.
    pub(crate) fn metrics_snapshot(&self, usage: StoreUsage) -> crate::metrics::Snapshot {
        let stats = self.stats(usage);
        crate::metrics::Snapshot {
            functions: self.books.records.functions.all().to_vec(),
            pending_args: self.books.records.pending_args,
            queued: self.books.records.queued,
            running: stats.running,
            actors: self.actors.counts(),
            store: usage,
            events_dropped: self.books.records.events.dropped.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The Chrome trace of the tasks kept and live.
    /// What the timeline shows, copied out under the manager's lock; the
    /// JSON is built from it after the lock is released
    /// ([`Snapshot::render`](crate::timeline::Snapshot::render)).
    pub(crate) fn timeline(&self) -> crate::timeline::Snapshot {
        let mut records: Vec<crate::state::Record> = self.books.records.finished().into_iter().cloned().collect();
        records.extend(self.tasks.values().map(|entry| entry.record(None)));
        let classes: FxHashMap<rustyray_core::ActorId, &'static str> =
            self.actors.infos().into_iter().map(|info| (info.id, info.class)).collect();
        crate::timeline::Snapshot { records, classes, origin: self.clock.origin(), now: crate::timer::now() }
    }

    /// The replies due now: to a finished shutdown, and to idle waiters once
    /// no task is unfinished. The loop sends them after it has dropped what
    /// finished tasks left (see [`Core::remains`]), so that whoever they wake
    /// finds every input and unheld output released.
    pub(super) fn take_replies(&mut self) -> Vec<oneshot::Sender<()>> {
        let mut replies = std::mem::take(&mut self.shutdown_replies);
        // Direct calls on their way count until the manager hears of them;
        // after a shutdown, nothing it may still hear of is waited for.
        let on_their_way = !self.shut_down && self.directory.unannounced.count() > 0;
        if !self.tasks.is_empty() || !self.abandoned.is_empty() || on_their_way {
            return replies;
        }
        replies.append(&mut self.idle_waiters);
        // Idle: give back the memory a burst of work grew the tables to.
        const KEEP: usize = 1024;
        if self.tasks.capacity() > KEEP {
            self.tasks.shrink_to(KEEP);
            self.waiting.shrink_to(KEEP);
            self.books.scheduler.shrink_to(KEEP);
            self.resolved.shrink_to(KEEP);
        }
        replies
    }

    /// Snapshots the tasks `filter` selects: live ones, then kept finished ones.
    pub(crate) fn tasks(&self, filter: &TaskFilter) -> Vec<TaskInfo> {
        let mut live: Vec<TaskInfo> =
            self.tasks.values().map(|e| e.record(None).info(&self.clock)).filter(|i| filter.matches(i)).collect();
        live.sort_by_key(|info| info.id);
        let mut all: Vec<TaskInfo> = self
            .books
            .records
            .finished()
            .into_iter()
            .map(|r| r.info(&self.clock))
            .filter(|i| filter.matches(i))
            .collect();
        all.append(&mut live);
        all
    }

    /// Every actor: live ones, then recently dead ones.
    pub(crate) fn actors(&self) -> Vec<crate::state::ActorInfo> {
        self.actors.infos()
    }

    /// One task, if it is live or still kept.
    pub(crate) fn task(&self, id: TaskId) -> Option<TaskInfo> {
        match self.tasks.get(&id) {
            Some(entry) => Some(entry.record(None).info(&self.clock)),
            None => self.books.records.find(id).map(|r| r.info(&self.clock)),
        }
    }

    pub(crate) fn stats(&self, usage: StoreUsage) -> crate::state::Stats {
        let mut stats = self.books.records.stats(usage);
        // Count tasks whose value is out but whose report is still on its way
        // as succeeded, so the totals agree with what `get` has returned.
        if stats.running > 0 {
            let unreported = self.tasks.values().filter(|e| e.succeeded_unreported()).count() as u64;
            stats.running -= unreported;
            stats.succeeded += unreported;
        }
        stats
    }

    /// CPU units free now and in total, and attempts in flight.
    pub(crate) fn load(&self) -> ((f64, f64), usize) {
        (self.books.scheduler.cpus(), self.books.scheduler.in_flight())
    }
}
