//! The books the manager keeps on every task, updated the same way by every
//! stage: the scheduler's line, the records and gauges, the timer wheel, the
//! actors with calls to release, and the time of the batch being applied.

use std::time::Instant;

use rustyray_core::{ActorId, TaskKind};

use super::Timer;
use super::records::Records;
use crate::events::EventKind;
use crate::scheduler::{Held, Scheduler};
use crate::state::{AttemptOutcome, AttemptRecord, TaskState};
use crate::task::{Entry, Maybe, Running, WorkerId};
use crate::timer::Timers;

/// Where a running attempt runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum RunsOn {
    /// On a thread of its own: a tokio task, a blocking-pool thread, an actor's thread.
    Spawned,
    /// On a worker (a plain attempt of the usual shape).
    Worker(WorkerId),
    /// Inline, on the thread of a plain task that waits for it.
    Inline,
}

impl RunsOn {
    /// On `worker` if there is one, else on a thread of its own.
    pub(super) fn worker_or_spawned(worker: Option<WorkerId>) -> Self {
        worker.map_or(RunsOn::Spawned, RunsOn::Worker)
    }
}

/// The manager's books.
pub(super) struct Books {
    pub(super) scheduler: Scheduler,
    pub(super) records: Records,
    pub(super) timers: Timers<Timer>,
    /// Actors with calls that may be released (actor calls wait in their
    /// actor's line, not the scheduler's).
    pub(super) woken_actors: Vec<ActorId>,
    /// The time of the batch being applied: one clock read per batch.
    pub(super) now: Instant,
}

impl Books {
    pub(super) fn new(scheduler: Scheduler, records: Records) -> Self {
        Books { scheduler, records, timers: Timers::default(), woken_actors: Vec::new(), now: crate::timer::now() }
    }

    /// Moves `entry` to `state`, keeping the pending/running gauges right.
    pub(super) fn set_state(&mut self, entry: &mut Entry, state: TaskState) {
        let records = &mut self.records;
        match entry.state {
            TaskState::PendingArgs => records.pending_args -= 1,
            TaskState::Queued => records.queued -= 1,
            TaskState::Running => records.running -= 1,
            _ => {}
        }
        match state {
            TaskState::PendingArgs => records.pending_args += 1,
            TaskState::Queued => {
                records.queued += 1;
                entry.mark_queued(crate::task::Stamp::of(self.now));
            }
            TaskState::Running => records.running += 1,
            _ => {}
        }
        entry.state = state;
    }

    /// Hands a task whose inputs are ready to the scheduler (an actor call
    /// to its actor's line).
    pub(super) fn enqueue(&mut self, entry: &mut Entry) {
        self.set_state(entry, TaskState::Queued);
        if let TaskKind::ActorMethod { actor } = entry.kind() {
            entry.queued_seq = Maybe::NONE;
            self.woken_actors.push(actor);
            return;
        }
        let seq = self.scheduler.push(
            entry.spec.id,
            entry.spec.options.priority,
            entry.demand(),
            entry.spec.options.queue.clone(),
        );
        entry.queued_seq = Maybe::some(seq);
    }

    /// Marks `entry`'s latest prepared attempt as running, holding `held`.
    ///
    /// `at` is when the attempt started: for a lookahead a worker started on
    /// its own, that is before the manager hears of it, and its timeout
    /// counts from then.
    pub(super) fn mark_running(&mut self, entry: &mut Entry, held: Held, at: Instant, runs_on: RunsOn) {
        let number = entry.started_attempts();
        let timer = entry.spec.options.timeout.map(|timeout| {
            let deadline = crate::timer::deadline(at, timeout);
            self.timers.insert_at(Timer::Timeout { task: entry.spec.id, attempt: number }, deadline)
        });
        let abandon = entry.take_prepared_abandon();
        let worker = match runs_on {
            RunsOn::Worker(worker) => Some(worker),
            RunsOn::Spawned | RunsOn::Inline => None,
        };
        entry.set_running(Running { attempt: number, abort: None, timer, held, abandon, worker });
        if let Some(function) = self.records.functions.of(entry.spec.function) {
            function.queue_wait.observe(at.saturating_duration_since(entry.queued_at()));
        }
        self.set_state(entry, TaskState::Running);
        let (task, function) = (entry.spec.id, entry.spec.function);
        self.records.emit(at, || EventKind::TaskStarted { task, function, attempt: number });
        let inline = runs_on == RunsOn::Inline;
        entry.attempts_mut().push(AttemptRecord {
            number,
            started: at,
            ended: None,
            outcome: AttemptOutcome::Running,
            inline,
        });
    }
}
