//! Dispatch: ready tasks are released to the executor (async bodies in poll
//! batches, plain ones to workers), workers' mailboxes are kept fed, and a
//! task that waits gives its resources back (or lends them to a task it
//! runs inline). A deterministic run has no workers: what one dispatch
//! releases starts in an order its seed picks.

use rustc_hash::FxHashMap;
use rustyray_core::{TaskId, TaskKind};
use smallvec::SmallVec;

use super::books::RunsOn;
use super::core::Core;
use super::table::TaskTable;
use crate::executor::{self, Exec};
use crate::scheduler::Held;
use crate::state::TaskState;
use crate::task::{Abandoned, Maybe, Start, WorkerId};

/// The most async attempts one poll batch takes. Its vector of attempts
/// (104 bytes each) and the executor's of reports (96) stay below 1 KiB:
/// glibc serves a request of 1 KiB or more only after merging every small
/// free chunk of the arena (`malloc_consolidate`), which cost a trivial
/// task about 4% of its instructions when batches took up to 32.
const POLL_BATCH: usize = 8;

// What the batch size is chosen for, kept true as the two records change.
const _: () = assert!(POLL_BATCH * std::mem::size_of::<Start>() < 1024);
const _: () = assert!(POLL_BATCH * std::mem::size_of::<crate::protocol::Report>() < 1024);

impl Core {
    /// Releases every task that may run now, and keeps workers fed.
    pub(super) fn dispatch(&mut self, exec: &Exec) {
        if self.det.is_some() {
            return self.dispatch_seeded(exec);
        }
        let mut async_starts = Vec::new();
        loop {
            while let Some((ready, held)) = self.books.scheduler.next() {
                let entry = match self.tasks.get_mut(&ready.task) {
                    Some(entry) if entry.queued_seq == Some(ready.seq) => entry,
                    // Cancelled (or claimed inline) while queued: a stale place in line.
                    _ => {
                        self.books.scheduler.release(held);
                        continue;
                    }
                };
                if let TaskKind::ActorCreation { actor } = entry.kind() {
                    self.start_creation(exec, actor, ready.task, held);
                    continue;
                }
                let start = entry.prepare_attempt();
                if entry.runs_on_worker() {
                    match self.workers.offer_to_idle(start) {
                        Ok(worker) => {
                            self.books.mark_running(entry, held, self.books.now, RunsOn::Worker(worker));
                        }
                        Err(start) => {
                            let (worker, mailbox) = self.workers.open();
                            self.books.mark_running(entry, held, self.books.now, RunsOn::Worker(worker));
                            executor::start_plain(exec, start, Some(mailbox));
                        }
                    }
                } else if entry.spec.body.is_plain() {
                    self.books.mark_running(entry, held, self.books.now, RunsOn::Spawned);
                    executor::start_plain(exec, start, None);
                } else {
                    self.books.mark_running(entry, held, self.books.now, RunsOn::Spawned);
                    async_starts.push(start);
                    if async_starts.len() == POLL_BATCH {
                        executor::start_async(exec, std::mem::take(&mut async_starts));
                    }
                }
            }
            if !async_starts.is_empty() {
                executor::start_async(exec, std::mem::take(&mut async_starts));
            }
            self.feed_workers();
            if !self.reclaim_lookahead() {
                break;
            }
        }
        self.pump_actors(exec);
    }

    /// [`dispatch`](Self::dispatch) on a deterministic run: no workers (each
    /// attempt is a local task of the run's one thread), and the attempts
    /// released together start in an order the run's seed picks.
    fn dispatch_seeded(&mut self, exec: &Exec) {
        let mut starts = Vec::new();
        while let Some((ready, held)) = self.books.scheduler.next() {
            let entry = match self.tasks.get_mut(&ready.task) {
                Some(entry) if entry.queued_seq == Some(ready.seq) => entry,
                _ => {
                    self.books.scheduler.release(held);
                    continue;
                }
            };
            if let TaskKind::ActorCreation { actor } = entry.kind() {
                self.start_creation(exec, actor, ready.task, held);
                continue;
            }
            let start = entry.prepare_attempt();
            self.books.mark_running(entry, held, self.books.now, RunsOn::Spawned);
            starts.push(start);
        }
        if let Some(det) = &self.det {
            det.shuffle(&mut starts);
        }
        for start in starts {
            if start.body.is_plain() {
                executor::start_plain(exec, start, None);
            } else {
                executor::start_async(exec, vec![start]);
            }
        }
        self.pump_actors(exec);
    }

    /// Fills workers' mailboxes from the front of the line, as far as the
    /// front has the workers' shape.
    pub(super) fn feed_workers(&mut self) {
        if let Some(top) = self.books.scheduler.bound_top_priority() {
            for (worker, task) in self.workers.outranked_by(top) {
                self.unassign(worker, task);
            }
        }
        for (worker, room) in self.workers.room(self.books.scheduler.bound_len()) {
            for _ in 0..room {
                let Some(ready) = self.books.scheduler.take_lookahead() else { return };
                let Some(entry) = self.tasks.get_mut(&ready.task).filter(|e| e.queued_seq == Some(ready.seq)) else {
                    continue;
                };
                let priority = entry.spec.options.priority;
                let mut start = entry.prepare_attempt();
                start.lookahead = true;
                let history = entry.history();
                history.assigned = Maybe::some(worker);
                history.lookahead_seq = Maybe::some(ready.seq);
                if self.workers.assign(worker, start, priority).is_err() {
                    // The worker is closing: the task keeps its place in line.
                    let history = entry.history();
                    history.assigned = Maybe::NONE;
                    history.lookahead_seq = Maybe::NONE;
                    entry.unprepare_attempt();
                    entry.take_prepared_abandon();
                    entry.queued_seq = Maybe::some(ready.seq);
                    self.books.scheduler.unget(ready);
                    break;
                }
            }
        }
    }

    /// Takes a waiting lookahead back into the line (before it started), at
    /// the place it had: tasks of one priority start in submission order.
    pub(super) fn unassign(&mut self, worker: WorkerId, task: TaskId) -> bool {
        if self.workers.retract(worker, task).is_none() {
            return false;
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return false };
        entry.take_assigned();
        entry.unprepare_attempt();
        entry.take_prepared_abandon();
        match entry.history().lookahead_seq.take() {
            Some(seq) => {
                let spec = &entry.spec;
                let demand = entry.demand();
                self.books.scheduler.push_at(spec.id, seq, spec.options.priority, demand, spec.options.queue.clone());
                entry.queued_seq = Maybe::some(seq);
            }
            None => self.books.enqueue(entry),
        }
        true
    }

    /// If a CPU is idle while lookaheads wait behind a worker's attempt, takes
    /// the newer half of the longest such line back, so the idle CPU starts on
    /// it now.
    pub(super) fn reclaim_lookahead(&mut self) -> bool {
        if !self.books.scheduler.cpu_idle() {
            return false;
        }
        let mut moved = false;
        for (worker, task) in self.workers.newest_half() {
            moved |= self.unassign(worker, task);
        }
        moved
    }

    /// Attempt `attempt` of the running `task` waits for objects (or runs
    /// one inline): its resources go back to the scheduler, and lookaheads
    /// left behind it on its worker go back into the line, since they would
    /// wait with it (and may be what it waits for). Its worker gets no more
    /// until it resumes. The attempt may be one given up on whose plain body
    /// still runs beside its retry: it gives back what it holds, not what
    /// the retry holds.
    pub(super) fn block(&mut self, task: TaskId, attempt: u32) {
        if let Some(TaskKind::ActorMethod { actor }) = self.tasks.get(&task).map(|e| e.kind()) {
            // A call holds nothing of its own: its actor's CPUs are given back.
            return self.actor_call_blocked(actor, task);
        }
        let Some((held, worker)) = holdings(&mut self.tasks, &mut self.abandoned, task, attempt) else { return };
        if !self.books.scheduler.block(held) {
            // It was waiting already (another wait of the same attempt is open).
            return;
        }
        if let Some(worker) = worker {
            self.workers.set_waiting(worker, true);
            for task in self.workers.queued(worker) {
                self.unassign(worker, task);
            }
        }
    }

    /// One wait of attempt `attempt` of `task` ended: once none is open, it
    /// takes its resources back and its worker may be given lookaheads again.
    pub(super) fn unblock(&mut self, task: TaskId, attempt: u32) {
        if self.actor_call_unblocked(task) {
            return;
        }
        let Some((held, worker)) = holdings(&mut self.tasks, &mut self.abandoned, task, attempt) else { return };
        if self.books.scheduler.unblock(held)
            && let Some(worker) = worker
        {
            self.workers.set_waiting(worker, false);
        }
    }

    /// A plain task waits for `task`: if `task` is queued and runs on one CPU
    /// (and no queue), hand it over to run on the waiter's thread, moving the
    /// waiter's CPU to it.
    pub(super) fn claim(
        &mut self,
        exec: &Exec,
        task: TaskId,
        waiter: Option<(TaskId, u32)>,
        reply: std::sync::mpsc::Sender<Option<Start>>,
    ) {
        // A lookahead that has not started may be taken back and run here.
        if let Some(worker) = self.tasks.get(&task).and_then(|e| e.assigned()) {
            self.unassign(worker, task);
        }
        let claimable = self
            .tasks
            .get(&task)
            .is_some_and(|e| e.state == TaskState::Queued && e.queued_seq.is_some() && e.runs_on_worker());
        if !claimable {
            let _ = reply.send(None);
            return;
        }
        // The waiter lends its CPU and its thread; like any waiting attempt,
        // it gives back the lookaheads that would wait behind it.
        if let Some((waiter, attempt)) = waiter {
            self.block(waiter, attempt);
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        if let Some(seq) = entry.queued_seq.get() {
            self.books.scheduler.forget(seq);
        }
        let held = self.books.scheduler.start_now(entry.demand());
        let start = entry.prepare_attempt();
        self.books.mark_running(entry, held, self.books.now, RunsOn::Inline);
        if let Err(std::sync::mpsc::SendError(Some(start))) = reply.send(Some(start)) {
            // The waiter is gone: run the attempt on the blocking pool instead.
            executor::start_plain(exec, start, None);
        }
    }
}

/// What attempt `attempt` of the plain task `task` holds, and the worker it
/// runs on: it is the task's running attempt, or one given up on whose body
/// has not returned (`None` once it has).
fn holdings<'a>(
    tasks: &'a mut TaskTable,
    abandoned: &'a mut FxHashMap<TaskId, SmallVec<[Abandoned; 1]>>,
    task: TaskId,
    attempt: u32,
) -> Option<(&'a mut Held, Option<WorkerId>)> {
    if let Some(running) =
        tasks.get_mut(&task).and_then(|e| e.running_mut()).filter(|running| running.attempt == attempt)
    {
        return Some((&mut running.held, running.worker));
    }
    let abandoned = abandoned.get_mut(&task)?.iter_mut().find(|a| a.attempt == attempt)?;
    Some((&mut abandoned.held, abandoned.worker))
}
