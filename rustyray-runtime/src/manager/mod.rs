//! The task manager: one event loop that owns every task's lifecycle.
//!
//! Everything that changes a task's state arrives here as a [`Msg`] on one
//! channel: submissions, finished attempts, cancellations, a task starting or
//! stopping to wait, and timer expiries (timeouts and retry backoff). The loop
//! takes messages in batches, applies them to [`Core`] (the task table, the
//! dependency table and the scheduler), then releases whatever may run now to
//! the executor. Lower layers never call up into the manager: executors and
//! object refs only send messages.
//!
//! `Core` sits behind a mutex so that `Runtime::tasks()` and `stats()` can
//! read it from any thread; the loop holds it only while applying a batch,
//! never across an `.await`.

mod actors;
mod delayed;
mod direct;
mod entry;
mod lifecycle;
mod runners;

use std::future::poll_fn;
use std::sync::Weak;
use std::task::Poll;
use std::time::Instant;

use parking_lot::Mutex;
use rustyray_core::{ActorConfig, ActorId, ActorInstance, Error, ObjectId, TaskError, TaskId};
use tokio::sync::{mpsc, oneshot};

use crate::executor::{Handoff, Report, Start};
use crate::runtime::Shared;

pub(crate) use direct::submit_call;
pub(crate) use entry::Entry;
pub(crate) use lifecycle::Core;

/// How many messages the loop takes per batch.
const BATCH: usize = 256;

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
    /// A running task waits for objects.
    Blocked(TaskId),
    /// A running task stopped waiting.
    Unblocked(TaskId),
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
}

/// A plain task (`waiter`) wants to run queued `task` on its own thread.
pub(crate) struct Claim {
    pub(crate) task: TaskId,
    pub(crate) waiter: Option<TaskId>,
    pub(crate) reply: std::sync::mpsc::Sender<Option<Start>>,
}

/// A new actor: its creation task, its configuration, and why it cannot exist, if so.
pub(crate) struct NewActor {
    pub(crate) entry: Box<Entry>,
    /// Where its calls will wait (callers find it in the runtime's table).
    pub(crate) slot: std::sync::Arc<crate::executor::ActorSlot>,
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
    /// What the runner that ran it does next.
    pub(crate) handoff: Handoff,
}

/// What fires on the manager's timer wheel.
#[derive(Debug)]
pub(crate) enum Timer {
    /// An attempt's timeout.
    Timeout { task: TaskId, attempt: u32 },
    /// The end of the backoff before a retry.
    Retry { task: TaskId },
    /// The start time of a delayed task (`run_after` / `run_at`).
    Release { task: TaskId },
}

/// The event loop.
pub(crate) struct Manager {
    core: std::sync::Arc<Mutex<Core>>,
    rx: mpsc::UnboundedReceiver<Msg>,
    shared: Weak<Shared>,
}

impl Manager {
    pub(crate) fn new(
        core: std::sync::Arc<Mutex<Core>>,
        rx: mpsc::UnboundedReceiver<Msg>,
        shared: Weak<Shared>,
    ) -> Self {
        Manager { core, rx, shared }
    }

    /// Runs until the runtime shuts down or every handle to it is gone. If
    /// the future is dropped instead (its tokio runtime went away), the
    /// manager's `Drop` still fails everything unfinished.
    pub(crate) async fn run(mut self) {
        let mut messages = Vec::with_capacity(BATCH);
        let mut timers = Vec::new();
        loop {
            let open = poll_fn(|cx| {
                {
                    let mut core = self.core.lock();
                    while timers.len() < BATCH {
                        match core.timers.poll_expired(cx) {
                            Poll::Ready(timer) => timers.push(timer),
                            Poll::Pending => break,
                        }
                    }
                }
                match self.rx.poll_recv_many(cx, &mut messages, BATCH) {
                    Poll::Ready(0) => Poll::Ready(false),
                    Poll::Ready(_) => Poll::Ready(true),
                    Poll::Pending if !timers.is_empty() => Poll::Ready(true),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let Some(shared) = self.shared.upgrade() else { break };
            let (dead_states, stop) = {
                let mut core = self.core.lock();
                core.tick();
                // Timers first: a timeout that fired is settled before the attempt's
                // own outcome (possibly in this batch) is looked at.
                for timer in timers.drain(..) {
                    core.on_timer(&shared, timer);
                }
                for msg in messages.drain(..) {
                    core.handle(&shared, msg);
                }
                core.dispatch(&shared);
                core.notify_idle();
                (core.take_dead_states(), !open || core.is_shut_down())
            };
            drop_states(shared.handle(), dead_states);
            if stop {
                break;
            }
        }
        tracing::debug!("rustyray task manager stopped");
    }
}

impl Drop for Manager {
    /// However the loop ends (an explicit shutdown, every handle gone, or
    /// its future dropped with the tokio runtime beneath it), nobody may wait
    /// forever on an object of this runtime: every unfinished task fails with
    /// [`Error::RuntimeShutdown`], and so does every task still on its way in
    /// a message. Later messages cannot be sent (the channel is closed), so
    /// their senders fail them the same way.
    fn drop(&mut self) {
        self.rx.close();
        let shared = self.shared.upgrade();
        if let Some(shared) = &shared {
            shared.mark_shut_down();
        }
        let dead_states = {
            let mut core = self.core.lock();
            if !core.is_shut_down() {
                core.shutdown();
            }
            while let Ok(msg) = self.rx.try_recv() {
                refuse(msg);
            }
            core.notify_idle();
            core.take_dead_states()
        };
        if let Some(shared) = shared {
            shared.directory().clear();
            drop_states(shared.handle(), dead_states);
        } else {
            drop_states_here(dead_states);
        }
    }
}

/// Drops the states of killed actors on a blocking thread: a state's `Drop`
/// is the user's code, which may block or call back into the runtime, so it
/// runs neither on the manager's thread nor under its lock. (If the tokio
/// runtime is shutting down, tokio drops the job, and so the states, here.)
fn drop_states(handle: &tokio::runtime::Handle, states: Vec<ActorInstance>) {
    if !states.is_empty() {
        drop(handle.spawn_blocking(move || drop_states_here(states)));
    }
}

/// Drops actor states where we are, a panicking `Drop` caught.
fn drop_states_here(states: Vec<ActorInstance>) {
    for state in states {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(state)));
    }
}

/// Settles a message the manager will never handle: tasks in it fail with
/// [`Error::RuntimeShutdown`], and whoever waits for a reply gets one.
fn refuse(msg: Msg) {
    match msg {
        Msg::Submit(entry) => {
            entry.output().complete(Err(Error::RuntimeShutdown));
        }
        Msg::CreateActor(new) => {
            new.entry.output().complete(Err(Error::RuntimeShutdown));
        }
        Msg::WhenIdle(reply) | Msg::Shutdown(reply) => {
            let _ = reply.send(());
        }
        // A claim's waiter sees its reply dropped and waits for the object,
        // which has failed; the rest concern tasks that have failed already.
        Msg::Claim(_)
        | Msg::Finished(_)
        | Msg::Reports(_)
        | Msg::Cancel(_)
        | Msg::Blocked(_)
        | Msg::Unblocked(_)
        | Msg::ReleaseActor(_)
        | Msg::KillActor(_)
        | Msg::ObjectReady(_) => {}
    }
}
