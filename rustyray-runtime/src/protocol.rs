//! The messages the task manager receives: the one channel through which
//! runtime handles, object refs, executors and actor threads tell it what
//! happened.
//!
//! Lower layers never call up into the manager: they send a [`Msg`]. The
//! manager answers only by releasing attempts ([`Start`](crate::task::Start))
//! to the executor, and by writing outputs.

use std::time::Instant;

use rustyray_core::{ActorConfig, ActorId, Error, ObjectId, TaskError, TaskId};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::task::{Entry, Start, Unannounced};

/// What the manager is told.
pub(crate) enum Msg {
    /// A new task.
    Submit(Box<Entry>),
    /// An attempt ended (boxed, as are the other large messages: a message
    /// takes the room of the largest, and a burst of submissions may queue
    /// a great many).
    Finished(Box<Finished>),
    /// What happened to attempts, in a batch.
    Reports(Vec<Report>),
    /// Cancel a task and its children.
    Cancel(TaskId),
    /// An attempt of a running task waits for objects.
    Blocked(TaskId, u32),
    /// An attempt of a running task stopped waiting.
    Unblocked(TaskId, u32),
    /// A plain task (`waiter`) wants to run queued `task` on its own thread.
    Claim(Box<Claim>),
    /// A new actor, with its creation task; `rejected` says why it cannot exist.
    CreateActor(Box<NewActor>),
    /// Every handle to an unnamed actor is gone.
    ReleaseActor(ActorId),
    /// End an actor.
    KillActor(ActorId),
    /// An object of another runtime that some task waits for is ready.
    ObjectReady(ObjectId),
    /// Reply once no task is unfinished.
    WhenIdle(oneshot::Sender<()>),
    /// Stop: fail everything unfinished, then reply.
    Shutdown(oneshot::Sender<()>),
    /// A deterministic run (of this seed) can make no progress: fail every
    /// unfinished task with a deadlock report, then reply how many there were.
    #[cfg_attr(not(feature = "deterministic"), allow(dead_code))]
    Deadlock(u64, oneshot::Sender<usize>),
}

/// A plain task (`waiter`) wants to run queued `task` on its own thread.
pub(crate) struct Claim {
    pub(crate) task: TaskId,
    /// The waiting task and its attempt.
    pub(crate) waiter: Option<(TaskId, u32)>,
    pub(crate) reply: std::sync::mpsc::Sender<Option<Start>>,
}

/// A new actor: its creation task, its configuration, and why it cannot
/// exist, if so. Its slot is in the actor directory (unless it was rejected).
pub(crate) struct NewActor {
    pub(crate) entry: Box<Entry>,
    pub(crate) config: ActorConfig,
    pub(crate) rejected: Option<Error>,
}

/// The outcome of one attempt, as the executor reports it. On success the
/// executor has already written the value to the task's output.
pub(crate) struct Finished {
    pub(crate) task: TaskId,
    pub(crate) attempt: u32,
    pub(crate) outcome: Result<(), Box<TaskError>>,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
    /// What the worker that ran it does next.
    pub(crate) handoff: Handoff,
}

/// What happened to attempts, reported in batches.
pub(crate) enum Report {
    /// It ended (or was skipped because it was already cancelled).
    Finished(Finished),
    /// It continues as its own tokio task, which `abort` stops.
    Spawned { task: TaskId, attempt: u32, abort: AbortHandle },
    /// A method of the actor panicked: the actor lost its state, and with it
    /// the calls still in flight (task, attempt).
    Crashed(ActorId, Finished, Vec<(TaskId, u32)>),
    /// A worker that had reported itself idle found a lookahead in its
    /// mailbox and started it.
    Resumed { task: TaskId, attempt: u32, started: Instant },
    /// A direct call its caller left at the actor without telling the
    /// manager: the actor's thread took it to run (see `actor::direct`).
    Announce(Unannounced),
    /// Such a call, taken and ended (or skipped, cancelled) before its
    /// announcement went: both in one.
    Ran(Unannounced, Finished),
}

/// What a worker does once its attempt has ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// The attempt ran without a worker (an async body, or inline).
    None,
    /// The worker starts this lookahead next, which takes over the CPU.
    Next(TaskId, u32),
    /// The worker gives the CPU back and goes on with an attempt that was
    /// handed to it with a CPU of its own.
    Released,
    /// The worker's mailbox was empty: it holds no CPU now, and waits a
    /// moment for a new attempt before it returns its thread.
    Idle,
}
