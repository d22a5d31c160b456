//! The manager's records of its tasks: running totals and gauges, the
//! histogram of attempt run times, per-function metrics, the lifecycle
//! event sender, and the finished tasks, kept in a bounded ring (oldest
//! evicted first) so a long-running process does not grow without limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustyray_core::{FunctionId, TaskId};

use crate::accounting::StoreUsage;
use crate::events::{EventKind, Events};
use crate::metrics::{FunctionMetrics, Functions};
use crate::state::{Clock, Record, Stats, TaskState};

/// Running totals, the run-time histogram, per-function metrics, the
/// lifecycle event sender and the ring of finished tasks.
pub(crate) struct Records {
    finished: VecDeque<Record>,
    limit: usize,
    pub(crate) pending_args: u64,
    pub(crate) queued: u64,
    pub(crate) running: u64,
    run_time: hdrhistogram::Histogram<u64>,
    pub(crate) functions: Functions,
    pub(crate) events: Events,
    pub(crate) clock: Clock,
}

impl Records {
    pub(crate) fn new(limit: usize, clock: Clock, event_capacity: usize) -> Self {
        Records {
            finished: VecDeque::new(),
            limit,
            pending_args: 0,
            queued: 0,
            running: 0,
            // Three significant digits, resizing as longer run times appear.
            run_time: hdrhistogram::Histogram::new(3).expect("3 significant digits is a valid precision"),
            functions: Functions::default(),
            events: Events::new(event_capacity),
            clock,
        }
    }

    /// Counts a retry of a task of function index `metrics`.
    pub(crate) fn count_retry(&mut self, function: FunctionId) {
        if let Some(function) = self.functions.of(function) {
            function.retried += 1;
        }
    }

    /// Sends the lifecycle event `kind` builds, stamped `at`, if anyone listens.
    pub(crate) fn emit(&mut self, at: Instant, kind: impl FnOnce() -> EventKind) {
        if self.events.enabled() {
            let at = self.clock.wall(at);
            self.events.emit(at, kind);
        }
    }

    /// Counts a finished attempt's run time.
    pub(crate) fn attempt_ran(&mut self, run_time: Duration) {
        let nanos = u64::try_from(run_time.as_nanos()).unwrap_or(u64::MAX).max(1);
        // `record` grows the histogram to fit; `saturating_record` would clamp.
        let _ = self.run_time.record(nanos);
    }

    /// Whether finished tasks are kept at all (`max_finished_records` above 0).
    pub(crate) fn keeps_finished(&self) -> bool {
        self.limit > 0
    }

    /// Counts a finished task of `function`, ended in `state`, against its function.
    pub(crate) fn count_finished(&mut self, function: FunctionId, state: TaskState) {
        if let Some(function) = self.functions.of(function) {
            match state {
                TaskState::Succeeded => function.succeeded += 1,
                TaskState::Failed => function.failed += 1,
                _ => function.cancelled += 1,
            }
        }
    }

    /// Keeps a finished task, evicting the oldest past the limit, and
    /// counts it against its function (index `metrics`).
    pub(crate) fn keep(&mut self, record: Record) {
        self.count_finished(record.function, record.state);
        if self.limit == 0 {
            return;
        }
        if self.finished.len() >= self.limit {
            self.finished.pop_front();
        }
        // Kept in the order the reports came in. Workers report in batches,
        // so two workers' tasks arrive interleaved out of finishing order;
        // keeping the ring sorted here moved hundreds of records per task.
        // The rare readers sort what they copy out instead.
        self.finished.push_back(record);
    }

    /// The finished tasks kept, oldest first (by the time each finished).
    pub(crate) fn finished(&self) -> Vec<&Record> {
        let mut records: Vec<&Record> = self.finished.iter().collect();
        records.sort_by_key(|record| record.finished);
        records
    }

    /// A finished task, if still kept.
    pub(crate) fn find(&self, id: TaskId) -> Option<&Record> {
        self.finished.iter().rev().find(|record| record.id == id)
    }

    pub(crate) fn stats(&self, usage: StoreUsage) -> Stats {
        let nanos = |v: u64| Duration::from_nanos(v);
        let empty = self.run_time.is_empty();
        // The totals are the sums of the per-function counts: one count per event.
        let functions = self.functions.all();
        let total = |count: fn(&FunctionMetrics) -> u64| functions.iter().map(count).sum::<u64>();
        Stats {
            submitted: total(|f| f.submitted),
            pending: self.pending_args + self.queued,
            running: self.running,
            succeeded: total(|f| f.succeeded),
            failed: total(|f| f.failed),
            cancelled: total(|f| f.cancelled),
            retried: total(|f| f.retried),
            mean_run_time: if empty { Duration::ZERO } else { Duration::from_nanos(self.run_time.mean() as u64) },
            p50_run_time: if empty { Duration::ZERO } else { nanos(self.run_time.value_at_quantile(0.5)) },
            p99_run_time: if empty { Duration::ZERO } else { nanos(self.run_time.value_at_quantile(0.99)) },
            objects: usage.objects,
            object_bytes: usage.bytes,
            unsized_objects: usage.unsized_values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::record;

    fn records(limit: usize) -> Records {
        Records::new(limit, Clock::new(), 16)
    }

    #[test]
    fn the_ring_evicts_the_oldest_but_counts_all() {
        let mut records = records(2);
        for id in 1..=3 {
            records.keep(record(id, TaskState::Succeeded));
        }
        let kept: Vec<u64> = records.finished().into_iter().map(|r| r.id.as_u64()).collect();
        assert_eq!(kept, vec![2, 3]);
        assert!(records.find(TaskId::from_u64(1)).is_none());
        assert_eq!(records.stats(StoreUsage::default()).succeeded, 3);
    }

    #[test]
    fn records_are_listed_in_the_order_tasks_finished_not_reported() {
        let mut records = records(3);
        let start = Instant::now();
        for (id, ms) in [(1, 10), (2, 30), (3, 20), (4, 40)] {
            let mut r = record(id, TaskState::Succeeded);
            r.finished = Some(start + Duration::from_millis(ms));
            records.keep(r);
        }
        let kept: Vec<u64> = records.finished().into_iter().map(|r| r.id.as_u64()).collect();
        assert_eq!(kept, vec![3, 2, 4]);
    }

    #[test]
    fn percentiles_come_from_recorded_run_times() {
        let mut records = records(0);
        for ms in 1..=100 {
            records.attempt_ran(Duration::from_millis(ms));
        }
        let stats = records.stats(StoreUsage::default());
        let p50 = stats.p50_run_time.as_secs_f64();
        let p99 = stats.p99_run_time.as_secs_f64();
        assert!((0.049..=0.051).contains(&p50), "{p50}");
        assert!((0.098..=0.1).contains(&p99), "{p99}");
        assert!(stats.mean_run_time > Duration::from_millis(49));
    }
}
