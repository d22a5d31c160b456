//! The manager's state, [`Core`], and how each message is applied to it.
//!
//! The task lifecycle is `PENDING_ARGS -> QUEUED -> RUNNING -> SUCCEEDED |
//! FAILED | CANCELLED`; each stage has a file of its own:
//!
//! - `submit.rs`: a new task is checked and waits for its inputs;
//! - `dependencies.rs`: written outputs release (or fail) their dependents;
//! - `dispatch.rs`: ready tasks are released to the executor, and waits
//!   give their resources back;
//! - `outcome.rs`: attempts end, are retried, time out or are cancelled,
//!   and tasks are finalized;
//! - `queries.rs`: what the runtime's handles read (tasks, stats, timeline).
//!
//! The gauges, the scheduler's line and the timer wheel are kept by
//! [`Books`](super::books::Books), which every stage updates the same way.
//!
//! Every way an output gets written (success, failure, cancellation, timeout,
//! a failed input, shutdown) ends in `Core::finalize` or in the executor's
//! write followed by a `Finished` message, and every written output is then
//! looked up in the waiting table, so dependents are released (or failed)
//! exactly once, iteratively, however long the chain.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use rustyray_core::{Error, ObjectId, TaskId};
use smallvec::SmallVec;
use tokio::sync::oneshot;

use super::books::Books;
use super::dependencies::Waiters;
use super::records::Records;
use super::table::TaskTable;
use super::workers::Workers;
use crate::actor::{Actors, Directory};
use crate::config::Config;
use crate::executor::Exec;
use crate::protocol::{Claim, Msg, NewActor, Report};
use crate::scheduler::Scheduler;
use crate::state::{Clock, TaskState};
use crate::task::Abandoned;

/// The manager's state.
pub(crate) struct Core {
    pub(super) tasks: TaskTable,
    /// Tasks waiting for each object not yet written.
    pub(super) waiting: FxHashMap<ObjectId, Waiters>,
    /// Objects just written whose waiters have not been looked at yet.
    pub(super) resolved: Vec<ObjectId>,
    /// The scheduler's line, the records and gauges, the timer wheel.
    pub(super) books: Books,
    pub(super) abandoned: FxHashMap<TaskId, SmallVec<[Abandoned; 1]>>,
    pub(super) clock: Clock,
    /// The address of the runtime this core belongs to, to tell its objects from others'.
    pub(super) owner: usize,
    pub(super) shut_down: bool,
    /// Who waits for the runtime to have no unfinished task.
    pub(super) idle_waiters: Vec<oneshot::Sender<()>>,
    /// Whoever asked for the shutdown, answered with the idle waiters.
    pub(super) shutdown_replies: Vec<oneshot::Sender<()>>,
    /// What is left of finished tasks once their records are taken: it may
    /// hold a user's values, so the loop drops it once it has let go of the
    /// lock (see [`Entry::take_record`](crate::task::Entry::take_record)).
    #[expect(clippy::vec_box, reason = "entries come boxed: the box moves, not the entry")]
    pub(super) remains: Vec<Box<crate::task::Entry>>,
    pub(super) workers: Workers,
    pub(super) actors: Actors,
    /// The runtime's actors by id and name, and their slots.
    pub(super) directory: Arc<Directory>,
    /// The seeded choices of a deterministic run; `None` in the normal mode.
    pub(super) det: Option<Arc<crate::deterministic::Det>>,
}

/// The state a task that ends with `error` is in.
pub(super) fn final_state(error: &Error) -> TaskState {
    if matches!(error, Error::Cancelled { .. } | Error::RuntimeShutdown) {
        TaskState::Cancelled
    } else {
        TaskState::Failed
    }
}

impl Core {
    pub(crate) fn new(config: &Config, directory: Arc<Directory>) -> Self {
        let clock = Clock::new();
        Core {
            tasks: TaskTable::default(),
            waiting: FxHashMap::default(),
            resolved: Vec::new(),
            books: Books::new(
                Scheduler::new(config.num_cpus, &config.resources, &config.queue_limits, config.max_in_flight),
                Records::new(config.max_finished_records, clock, config.event_capacity),
            ),
            abandoned: FxHashMap::default(),
            clock,
            owner: 0,
            shut_down: false,
            idle_waiters: Vec::new(),
            shutdown_replies: Vec::new(),
            remains: Vec::new(),
            workers: Workers::default(),
            actors: Actors::new(config.max_finished_records),
            directory,
            det: config.det.clone(),
        }
    }

    /// Tells the core which runtime it belongs to.
    pub(crate) fn set_owner(&mut self, runtime: &Arc<dyn rustyray_core::Runner>) {
        self.owner = Arc::as_ptr(runtime) as *const () as usize;
    }

    /// The runtime's actor directory.
    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Reads the clock for the batch about to be applied.
    pub(super) fn tick(&mut self) {
        self.books.now = crate::timer::now();
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    pub(super) fn handle(&mut self, exec: &Exec, msg: Msg) {
        match msg {
            Msg::Submit(spec) => self.submit(exec, spec),
            Msg::Finished(finished) => self.finished(*finished),
            Msg::Reports(reports) => {
                for report in reports {
                    match report {
                        Report::Finished(finished) => self.finished(finished),
                        Report::Spawned { task, attempt, abort } => self.spawned(task, attempt, abort),
                        Report::Crashed(actor, finished, lost) => self.actor_crashed(exec, actor, finished, lost),
                        Report::Resumed { task, attempt, started } => self.resumed(task, attempt, started),
                        Report::Announce(mut call) => {
                            if let Some(entry) = call.take() {
                                self.announce_started(entry);
                            }
                        }
                        Report::Ran(mut call, finished) => match call.take() {
                            Some(entry) => self.ran_direct(entry, finished),
                            None => self.finished(finished),
                        },
                    }
                }
            }
            Msg::Cancel(task) => self.cancel(task),
            Msg::Blocked(task, attempt) => self.block(task, attempt),
            Msg::Unblocked(task, attempt) => self.unblock(task, attempt),
            Msg::Claim(claim) => {
                let Claim { task, waiter, reply } = *claim;
                self.claim(exec, task, waiter, reply);
            }
            Msg::ObjectReady(object) => self.resolved.push(object),
            Msg::CreateActor(new) => {
                let NewActor { entry, config, rejected } = *new;
                self.create_actor(exec, entry, config, rejected);
            }
            Msg::ReleaseActor(actor) => self.orphan_actor(actor),
            Msg::KillActor(actor) => self.kill_actor(actor),
            Msg::WhenIdle(reply) => self.idle_waiters.push(reply),
            Msg::Deadlock(seed, reply) => {
                let _ = reply.send(self.deadlocked(seed));
            }
            Msg::Shutdown(reply) => {
                self.shutdown();
                self.shutdown_replies.push(reply);
            }
        }
        self.drain_resolved();
    }
}

impl Drop for Core {
    /// A core that goes away without its manager having shut it down (the
    /// manager's own `Drop` does, however its loop ends) leaves no object
    /// waiting either.
    fn drop(&mut self) {
        for entry in self.tasks.values() {
            entry.spec.output.complete(Err(Error::RuntimeShutdown));
        }
    }
}
