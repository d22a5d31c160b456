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
mod books;
mod core;
mod delayed;
mod dependencies;
mod dispatch;
mod outcome;
mod queries;
mod records;
mod submit;
mod table;
mod workers;

use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::task::Poll;

use parking_lot::Mutex;
use rustyray_core::{ActorInstance, Error, Runner, TaskId};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::executor::Exec;
use crate::protocol::Msg;

pub(crate) use self::core::Core;

/// How many messages the loop takes per batch.
const BATCH: usize = 256;

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
    core: Arc<Mutex<Core>>,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// The runtime, held weakly: the manager stops once every handle (and
    /// every running attempt, which holds one) is gone.
    runtime: Weak<dyn Runner>,
    /// The manager's own channel, held weakly for the same reason.
    tx: mpsc::WeakUnboundedSender<Msg>,
    handle: Handle,
    /// The seeded choices of a deterministic run, handed to the executor.
    det_choices: Option<Arc<crate::deterministic::Det>>,
    /// Whether this is a deterministic run (everything on one thread).
    det: bool,
}

impl Manager {
    pub(crate) fn new(
        core: Arc<Mutex<Core>>,
        rx: mpsc::UnboundedReceiver<Msg>,
        runtime: Weak<dyn Runner>,
        tx: mpsc::WeakUnboundedSender<Msg>,
        handle: Handle,
        det_choices: Option<Arc<crate::deterministic::Det>>,
    ) -> Self {
        let det = det_choices.is_some();
        Manager { core, rx, runtime, tx, handle, det_choices, det }
    }

    /// The executor's handle for this batch, if the runtime is still there.
    fn exec(&self) -> Option<Exec> {
        Some(Exec::new(self.runtime.upgrade()?, self.tx.upgrade()?, self.handle.clone(), self.det_choices.clone()))
    }

    /// Runs until the runtime shuts down or every handle to it is gone. If
    /// the future is dropped instead (its tokio runtime went away), the
    /// manager's `Drop` still fails everything unfinished.
    pub(crate) async fn run(mut self) {
        let mut messages = Vec::with_capacity(BATCH);
        let mut timers = Vec::new();
        let mut remains = Vec::new();
        loop {
            let open = poll_fn(|cx| {
                {
                    let mut core = self.core.lock();
                    while timers.len() < BATCH {
                        match core.books.timers.poll_expired(cx) {
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
            let Some(exec) = self.exec() else { break };
            {
                let mut core = self.core.lock();
                core.tick();
                // Timers first: a timeout that fired is settled before the attempt's
                // own outcome (possibly in this batch) is looked at.
                for timer in timers.drain(..) {
                    core.on_timer(&exec, timer);
                }
                for msg in messages.drain(..) {
                    core.handle(&exec, msg);
                }
                std::mem::swap(&mut core.remains, &mut remains);
            }
            // What the batch finished goes before anything is dispatched: a
            // dependent released now then finds its input's value held by the
            // store alone, and its last attempt moves the value out.
            drop_remains(&mut remains);
            let (dead_states, replies, stop) = {
                let mut core = self.core.lock();
                core.dispatch(&exec);
                std::mem::swap(&mut core.remains, &mut remains);
                (core.take_dead_states(), core.take_replies(), !open || core.is_shut_down())
            };
            drop_remains(&mut remains);
            for reply in replies {
                let _ = reply.send(());
            }
            if self.det {
                // One thread runs everything: the states are dropped here.
                drop_states_here(dead_states);
            } else {
                drop_states(exec.handle(), dead_states);
            }
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
        let (dead_states, replies, mut remains) = {
            let mut core = self.core.lock();
            if !core.is_shut_down() {
                core.shutdown();
            }
            core.directory().clear();
            (core.take_dead_states(), core.take_replies(), std::mem::take(&mut core.remains))
        };
        drop_remains(&mut remains);
        // A refused task's arguments are the user's values too: dropped
        // without the lock, a panic caught.
        while let Ok(msg) = self.rx.try_recv() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| refuse(msg)));
        }
        for reply in replies {
            let _ = reply.send(());
        }
        if self.runtime.strong_count() > 0 && !self.det {
            drop_states(&self.handle, dead_states);
        } else {
            drop_states_here(dead_states);
        }
    }
}

/// Drops the states of killed actors on a blocking thread: a state's `Drop`
/// is the user's code, which may block or call back into the runtime, so it
/// runs neither on the manager's thread nor under its lock. (If the tokio
/// runtime is shutting down, tokio drops the job, and so the states, here.)
fn drop_states(handle: &Handle, states: Vec<ActorInstance>) {
    if !states.is_empty() {
        drop(handle.spawn_blocking(move || drop_states_here(states)));
    }
}

/// Drops what finished tasks left, where we are, each panicking `Drop`
/// caught: the runtime lives on whatever a user's `Drop` does.
#[expect(clippy::vec_box, reason = "entries come boxed: the box moves, not the entry")]
fn drop_remains(remains: &mut Vec<Box<crate::task::Entry>>) {
    for remains in remains.drain(..) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(remains)));
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
        Msg::Deadlock(_, reply) => {
            let _ = reply.send(0);
        }
        // A claim's waiter sees its reply dropped and waits for the object,
        // which has failed; the rest concern tasks that have failed already.
        Msg::Claim(_)
        | Msg::Finished(_)
        | Msg::Reports(_)
        | Msg::Cancel(_)
        | Msg::Blocked(..)
        | Msg::Unblocked(..)
        | Msg::ReleaseActor(_)
        | Msg::KillActor(_)
        | Msg::ObjectReady(_) => {}
    }
}
