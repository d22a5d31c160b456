//! What the runtime knows about its tasks: states, attempt history and statistics.
//!
//! The public snapshots ([`TaskInfo`], [`ActorInfo`], [`Stats`]) and the
//! records they are made from (`Record`, one per task). The manager keeps
//! finished tasks' records in a bounded ring (`manager/records.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustyray_core::{DeathReason, Error, FunctionId, TaskError, TaskId, TaskKind};

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
    pub death: Option<DeathReason>,
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
    /// A clock from now; on a deterministic run's virtual time, wall times
    /// count from the Unix epoch, so a replay reports the same ones.
    pub(crate) fn new() -> Self {
        if crate::timer::is_virtual() {
            return Clock { instant: crate::timer::now(), system: SystemTime::UNIX_EPOCH };
        }
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

/// The attempts of one task: almost always one, kept inline (in the ring of
/// finished tasks as in the task table) rather than in an allocation of its own.
pub(crate) type Attempts = smallvec::SmallVec<[AttemptRecord; 1]>;

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
    pub(crate) plain: bool,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A finished plain task's record, for tests of what reads records.
    pub(crate) fn record(id: u64, state: TaskState) -> Record {
        Record {
            id: TaskId::from_u64(id),
            name: None,
            function: FunctionId::new(&"t::f"),
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
            plain: true,
            args: None,
        }
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
