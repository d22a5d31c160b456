//! What the runtime knows about its tasks: states, attempt history and statistics.
//!
//! Live tasks are described from the task manager's table; finished ones are
//! kept in a bounded ring (oldest evicted first) so a long-running process
//! does not grow without limit. Statistics are running totals plus a
//! histogram of attempt run times.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustyray_core::{Error, FunctionId, TaskError, TaskId, TaskKind};

use crate::events::{EventKind, Events};
use crate::metrics::{FunctionMetrics, Functions};
use crate::store::StoreUsage;

/// Where a task is in its lifecycle:
/// `PendingArgs -> Queued -> Running -> Succeeded | Failed | Cancelled`,
/// with `Delayed` before `PendingArgs` for a task given a start time.
/// A retry is a new attempt of the same task: `Running -> Queued -> Running`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    /// Held until its start time (`run_after` / `run_at`), before it waits
    /// for its arguments; cancellable meanwhile. Then `PendingArgs`.
    Delayed,
    /// Waiting for the objects it takes as arguments.
    PendingArgs,
    /// Ready, waiting for its turn (or for the backoff before a retry).
    Queued,
    /// An attempt is running.
    Running,
    /// Finished with a value.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled (directly, through its parent, or by shutdown).
    Cancelled,
}

impl TaskState {
    /// Whether the task has finished.
    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled)
    }

    /// The state's name as Ray spells it: `PENDING_ARGS`, `QUEUED`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Delayed => "DELAYED",
            TaskState::PendingArgs => "PENDING_ARGS",
            TaskState::Queued => "QUEUED",
            TaskState::Running => "RUNNING",
            TaskState::Succeeded => "SUCCEEDED",
            TaskState::Failed => "FAILED",
            TaskState::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt ended.
#[derive(Clone, Debug)]
pub enum AttemptOutcome {
    /// Still running.
    Running,
    /// Produced the task's value.
    Succeeded,
    /// Returned `Err`, panicked or timed out.
    Failed(Box<TaskError>),
    /// Stopped because the task was cancelled (or the runtime shut down).
    Cancelled,
}

/// One attempt of a task.
#[derive(Clone, Debug)]
pub struct AttemptInfo {
    /// 1 for the first run, 2 for the first retry, ...
    pub number: u32,
    /// When it started.
    pub started_at: SystemTime,
    /// How long it ran; `None` while it runs.
    pub duration: Option<Duration>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Whether it ran on the thread of a task waiting for it (see `get_blocking`).
    pub inline: bool,
}

/// A snapshot of one task.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The name given with `.name(..)`.
    pub name: Option<Arc<str>>,
    /// The function (or `Actor::method`) it runs.
    pub function: FunctionId,
    /// Remote call, actor creation or actor method call.
    pub kind: TaskKind,
    /// Where it is in its lifecycle.
    pub state: TaskState,
    /// The task that submitted it.
    pub parent: Option<TaskId>,
    /// Its priority.
    pub priority: i32,
    /// Its queue.
    pub queue: Option<Arc<str>>,
    /// When it was submitted.
    pub submitted_at: SystemTime,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptInfo>,
    /// The error it finished with.
    pub error: Option<Error>,
    /// Its arguments as text, only if the call was made with
    /// `record_args(true)`: arguments are redacted by default.
    pub args: Option<Arc<str>>,
}

/// Where an actor is in its lifecycle: `Pending -> Alive -> Restarting -> Alive | Dead`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorState {
    /// Its constructor has not finished.
    Pending,
    /// It takes calls.
    Alive,
    /// It crashed and is being rebuilt from its constructor arguments.
    Restarting,
    /// It ended: killed, crashed with no restarts left, never built, or every
    /// handle to it was dropped.
    Dead,
}

impl ActorState {
    /// The state's name as Ray spells it: `PENDING`, `ALIVE`, `RESTARTING`, `DEAD`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorState::Pending => "PENDING",
            ActorState::Alive => "ALIVE",
            ActorState::Restarting => "RESTARTING",
            ActorState::Dead => "DEAD",
        }
    }
}

impl fmt::Display for ActorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of one actor.
#[derive(Clone, Debug)]
pub struct ActorInfo {
    /// The actor's id.
    pub id: rustyray_core::ActorId,
    /// Its type.
    pub class: &'static str,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it is in its lifecycle.
    pub state: ActorState,
    /// How many times it was rebuilt after a crash.
    pub restarts: u32,
    /// Calls submitted and not finished.
    pub pending_calls: usize,
    /// Why it died.
    pub death: Option<String>,
}

/// Selects tasks in [`Runtime::tasks_where`](crate::Runtime::tasks_where).
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks with this name.
    pub name: Option<String>,
    /// Only tasks of this function (its registered name).
    pub function: Option<String>,
}

impl TaskFilter {
    /// Whether `info` is selected.
    pub fn matches(&self, info: &TaskInfo) -> bool {
        self.state.is_none_or(|state| state == info.state)
            && self.name.as_deref().is_none_or(|name| info.name.as_deref() == Some(name))
            && self.function.as_deref().is_none_or(|function| info.function.name() == function)
    }
}

/// Totals and run-time percentiles of a runtime.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Tasks submitted.
    pub submitted: u64,
    /// Tasks waiting for arguments or for their turn.
    pub pending: u64,
    /// Tasks with an attempt running.
    pub running: u64,
    /// Tasks finished with a value.
    pub succeeded: u64,
    /// Tasks finished with an error.
    pub failed: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Retries started (attempts after a task's first).
    pub retried: u64,
    /// Mean run time of finished attempts.
    pub mean_run_time: Duration,
    /// Median run time of finished attempts.
    pub p50_run_time: Duration,
    /// 99th percentile run time of finished attempts.
    pub p99_run_time: Duration,
    /// Objects alive in the object store.
    pub objects: usize,
    /// Bytes the values of the live objects take: each value's own bytes and
    /// the heap it owns, for values whose type has a known size (see
    /// `rustyray_core::size`; an `ObjectRef` inside a value counts as a handle).
    pub object_bytes: usize,
    /// Live objects holding a value whose type has no known size, so it is
    /// not in `object_bytes`. Derive `get_size2::GetSize` for such a type
    /// and use it in a remote signature to have it counted.
    pub unsized_objects: usize,
}

/// Converts the runtime's monotonic instants to wall-clock times.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Clock {
    instant: Instant,
    system: SystemTime,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock { instant: Instant::now(), system: SystemTime::now() }
    }

    /// The instant the clock started at.
    pub(crate) fn origin(&self) -> Instant {
        self.instant
    }

    pub(crate) fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.system + after,
            None => self.system - self.instant.duration_since(at),
        }
    }
}

/// One attempt, as the manager records it.
#[derive(Clone, Debug)]
pub(crate) struct AttemptRecord {
    pub(crate) number: u32,
    pub(crate) started: Instant,
    pub(crate) ended: Option<Instant>,
    pub(crate) outcome: AttemptOutcome,
    pub(crate) inline: bool,
}

impl AttemptRecord {
    fn info(&self, clock: &Clock) -> AttemptInfo {
        AttemptInfo {
            number: self.number,
            started_at: clock.wall(self.started),
            duration: self.ended.map(|ended| ended.duration_since(self.started)),
            outcome: self.outcome.clone(),
            inline: self.inline,
        }
    }
}

/// The attempts of one task.
pub(crate) type Attempts = Vec<AttemptRecord>;

/// Everything about a task but its body, as kept once it has finished.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) function: FunctionId,
    pub(crate) kind: TaskKind,
    pub(crate) state: TaskState,
    pub(crate) parent: Option<TaskId>,
    pub(crate) priority: i32,
    pub(crate) queue: Option<Arc<str>>,
    pub(crate) submitted: Instant,
    pub(crate) finished: Option<Instant>,
    pub(crate) attempts: Attempts,
    pub(crate) error: Option<Box<Error>>,
    /// The tasks whose outputs it took as arguments.
    pub(crate) inputs: Box<[TaskId]>,
    /// Whether its body is plain (CPU) code.
    pub(crate) blocking: bool,
    /// Its arguments, if the call opted in to recording them.
    pub(crate) args: Option<Arc<str>>,
}

impl Record {
    pub(crate) fn info(&self, clock: &Clock) -> TaskInfo {
        TaskInfo {
            id: self.id,
            name: self.name.clone(),
            function: self.function,
            kind: self.kind.clone(),
            state: self.state,
            parent: self.parent,
            priority: self.priority,
            queue: self.queue.clone(),
            submitted_at: clock.wall(self.submitted),
            finished_at: self.finished.map(|at| clock.wall(at)),
            attempts: self.attempts.iter().map(|a| a.info(clock)).collect(),
            error: self.error.as_deref().cloned(),
            args: self.args.clone(),
        }
    }
}

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
    /// The time of the batch the manager is applying.
    pub(crate) now: Instant,
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
            now: Instant::now(),
        }
    }

    /// Counts a retry of a task of function slot `metrics`.
    pub(crate) fn count_retry(&mut self, metrics: u32) {
        if let Some(function) = self.functions.get_mut(metrics) {
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

    /// Keeps a finished task, evicting the oldest past the limit, and
    /// counts it against its function (slot `metrics`).
    pub(crate) fn keep(&mut self, record: Record, metrics: u32) {
        if let Some(function) = self.functions.get_mut(metrics) {
            match record.state {
                TaskState::Succeeded => function.succeeded += 1,
                TaskState::Failed => function.failed += 1,
                _ => function.cancelled += 1,
            }
        }
        if self.limit == 0 {
            return;
        }
        if self.finished.len() >= self.limit {
            self.finished.pop_front();
        }
        // Kept in the order the tasks finished, which reports from different
        // threads may reach the manager out of; almost always the back.
        let at = record.finished;
        let position = self.finished.iter().rposition(|kept| kept.finished <= at).map_or(0, |i| i + 1);
        self.finished.insert(position, record);
    }

    /// The finished tasks kept, oldest first.
    pub(crate) fn finished(&self) -> impl Iterator<Item = &Record> {
        self.finished.iter()
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

    fn record(id: u64, state: TaskState) -> Record {
        Record {
            id: TaskId::from_u64(id),
            name: None,
            function: FunctionId::new("t::f"),
            kind: TaskKind::Normal,
            state,
            parent: None,
            priority: 0,
            queue: None,
            submitted: Instant::now(),
            finished: Some(Instant::now()),
            attempts: Attempts::new(),
            error: None,
            inputs: Box::new([]),
            blocking: true,
            args: None,
        }
    }

    fn records(limit: usize) -> Records {
        Records::new(limit, Clock::new(), 16)
    }

    #[test]
    fn the_ring_evicts_the_oldest_but_counts_all() {
        let mut records = records(2);
        let slot = records.functions.slot(FunctionId::new("t::f"));
        for id in 1..=3 {
            records.keep(record(id, TaskState::Succeeded), slot);
        }
        let kept: Vec<u64> = records.finished().map(|r| r.id.as_u64()).collect();
        assert_eq!(kept, vec![2, 3]);
        assert!(records.find(TaskId::from_u64(1)).is_none());
        assert_eq!(records.stats(StoreUsage::default()).succeeded, 3);
    }

    #[test]
    fn records_are_kept_in_the_order_tasks_finished_not_reported() {
        let mut records = records(3);
        let slot = records.functions.slot(FunctionId::new("t::f"));
        let start = Instant::now();
        for (id, ms) in [(1, 10), (2, 30), (3, 20), (4, 40)] {
            let mut r = record(id, TaskState::Succeeded);
            r.finished = Some(start + Duration::from_millis(ms));
            records.keep(r, slot);
        }
        let kept: Vec<u64> = records.finished().map(|r| r.id.as_u64()).collect();
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

    #[test]
    fn filters_select_by_state_name_and_function() {
        let clock = Clock::new();
        let mut r = record(1, TaskState::Failed);
        r.name = Some(Arc::from("n"));
        let info = r.info(&clock);
        assert!(TaskFilter { state: Some(TaskState::Failed), ..Default::default() }.matches(&info));
        assert!(!TaskFilter { state: Some(TaskState::Running), ..Default::default() }.matches(&info));
        assert!(
            TaskFilter { name: Some("n".into()), function: Some("t::f".into()), ..Default::default() }.matches(&info)
        );
        assert!(!TaskFilter { function: Some("t::g".into()), ..Default::default() }.matches(&info));
    }
}
