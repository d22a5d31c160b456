//! The manager's view of its workers: blocking threads that run plain
//! attempts one after another, fed through their mailboxes.
//!
//! A worker is opened when a plain attempt of the usual shape (one CPU, no
//! queue) is released and no idle worker is waiting for one. While it runs, the manager leaves it the next such
//! attempts from the front of the line (its *lookahead*). The worker reports
//! each finished attempt together with the one it starts next, so the CPU
//! passes from one to the other without going back to the scheduler and
//! without a thread hand-off.
//!
//! How far a worker looks ahead depends on how long plain attempts take: it
//! holds about [`LOOKAHEAD_SPAN`] of work, and never less than two attempts,
//! enough to cover the manager's reaction time even when the workers keep
//! every CPU busy and the manager's thread waits for a time slice. Lookahead
//! never reorders work for long: a lookahead that waits while a CPU is idle,
//! or behind a task of higher priority that became ready, is taken back into
//! the line.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use rustyray_core::TaskId;

use crate::executor::Mailbox;
use crate::task::Start;
pub(super) use crate::task::WorkerId;

/// The work a worker should have queued: plain attempts are handed over
/// ahead of time to cover about this much of their running (a few of the OS
/// scheduler's time slices, which is how long the manager may wait for a CPU
/// while workers keep them all busy).
const LOOKAHEAD_SPAN: Duration = Duration::from_millis(4);

/// The fewest attempts a worker looks ahead.
const MIN_LOOKAHEAD: usize = 2;

/// The most attempts a worker looks ahead.
const MAX_LOOKAHEAD: usize = 1024;

struct Worker {
    mailbox: Arc<Mailbox>,
    /// Attempts waiting in the mailbox, oldest first, with their priorities.
    queued: VecDeque<(TaskId, i32)>,
    /// Whether the worker ran out of work and waits for a fresh attempt.
    idle: bool,
    /// Whether its attempt waits for objects: it gets no lookahead meanwhile.
    waiting: bool,
}

/// The open workers.
#[derive(Default)]
pub(super) struct Workers {
    open: FxHashMap<WorkerId, Worker>,
    next_id: WorkerId,
    /// Workers waiting for a fresh attempt, most recently idle last.
    idle: Vec<WorkerId>,
    /// A moving average of plain attempts' run times, in nanoseconds.
    run_time_ns: f64,
}

impl Workers {
    /// Opens a worker.
    pub(super) fn open(&mut self) -> (WorkerId, Arc<Mailbox>) {
        let id = self.next_id;
        self.next_id += 1;
        let mailbox = Arc::new(Mailbox::default());
        self.open.insert(id, Worker { mailbox: mailbox.clone(), queued: VecDeque::new(), idle: false, waiting: false });
        (id, mailbox)
    }

    /// The worker ran out of work: it holds no CPU and waits for a fresh attempt.
    pub(super) fn went_idle(&mut self, id: WorkerId) {
        if let Some(worker) = self.open.get_mut(&id) {
            worker.idle = true;
            self.idle.push(id);
        }
    }

    /// Hands a fresh attempt to an idle worker, if one is still waiting;
    /// returns which. Workers that gave up waiting are forgotten.
    pub(super) fn offer_to_idle(&mut self, mut start: Start) -> Result<WorkerId, Start> {
        while let Some(id) = self.idle.pop() {
            let Some(worker) = self.open.get_mut(&id).filter(|worker| worker.idle) else { continue };
            match worker.mailbox.offer(start) {
                Ok(()) => {
                    worker.idle = false;
                    return Ok(id);
                }
                Err(back) => {
                    start = back;
                    self.open.remove(&id);
                }
            }
        }
        Err(start)
    }

    /// The worker started the oldest attempt in its mailbox.
    pub(super) fn lookahead_started(&mut self, id: WorkerId, task: TaskId) {
        if let Some(worker) = self.open.get_mut(&id)
            && let Some(index) = worker.queued.iter().position(|(queued, _)| *queued == task)
        {
            worker.queued.remove(index);
        }
    }

    /// The worker, which had gone idle, started its lookahead `task`: it is
    /// busy again.
    pub(super) fn resumed(&mut self, id: WorkerId, task: TaskId) {
        self.lookahead_started(id, task);
        if let Some(worker) = self.open.get_mut(&id) {
            worker.idle = false;
        }
    }

    /// Counts a plain attempt's run time into the lookahead depth.
    pub(super) fn observe(&mut self, run_time: Duration) {
        let ns = run_time.as_nanos() as f64;
        self.run_time_ns = if self.run_time_ns == 0.0 { ns } else { 0.9 * self.run_time_ns + 0.1 * ns };
    }

    /// How many attempts each worker should have waiting.
    fn depth(&self) -> usize {
        if self.run_time_ns <= 0.0 {
            return MIN_LOOKAHEAD;
        }
        let depth = (LOOKAHEAD_SPAN.as_nanos() as f64 / self.run_time_ns).ceil() as usize;
        depth.clamp(MIN_LOOKAHEAD, MAX_LOOKAHEAD)
    }

    /// The workers with room in their mailbox, and how much, when `ready`
    /// more attempts of their shape wait in line: each looks ahead as deep as
    /// run times call for, but no deeper than its fair share of what there is,
    /// so a burst ends with the workers evenly loaded.
    pub(super) fn room(&self, ready: usize) -> Vec<(WorkerId, usize)> {
        let busy: Vec<(&WorkerId, &Worker)> =
            self.open.iter().filter(|(_, worker)| !worker.idle && !worker.waiting).collect();
        if busy.is_empty() {
            return Vec::new();
        }
        let queued: usize = busy.iter().map(|(_, worker)| worker.queued.len()).sum();
        let fair = (ready + queued).div_ceil(busy.len());
        let depth = self.depth().min(fair.max(1));
        busy.into_iter()
            .filter(|(_, worker)| worker.queued.len() < depth)
            .map(|(id, worker)| (*id, depth - worker.queued.len()))
            .collect()
    }

    /// Leaves `start` (of priority `priority`) in worker `id`'s mailbox; gives
    /// it back if the worker is closing (or gone).
    pub(super) fn assign(&mut self, id: WorkerId, start: Start, priority: i32) -> Result<(), Start> {
        let Some(worker) = self.open.get_mut(&id) else { return Err(start) };
        let task = start.task;
        worker.mailbox.offer(start)?;
        worker.queued.push_back((task, priority));
        Ok(())
    }

    /// Takes `task` back from worker `id`'s mailbox, if the worker has not started it.
    pub(super) fn retract(&mut self, id: WorkerId, task: TaskId) -> Option<Start> {
        let worker = self.open.get_mut(&id)?;
        let start = worker.mailbox.retract(task)?;
        if let Some(index) = worker.queued.iter().rposition(|(queued, _)| *queued == task) {
            worker.queued.remove(index);
        }
        Some(start)
    }

    /// The newer half of the waiting attempts of the worker with the most
    /// waiting (at least one), newest first (so each is taken back from the
    /// end of the mailbox): what an idle CPU may take over.
    pub(super) fn newest_half(&self) -> Vec<(WorkerId, TaskId)> {
        let Some((id, worker)) =
            self.open.iter().filter(|(_, worker)| !worker.queued.is_empty()).max_by_key(|(_, s)| s.queued.len())
        else {
            return Vec::new();
        };
        let take = worker.queued.len().div_ceil(2);
        worker.queued.iter().rev().take(take).map(|(task, _)| (*id, *task)).collect()
    }

    /// Marks worker `id`'s attempt as waiting for objects (or not).
    pub(super) fn set_waiting(&mut self, id: WorkerId, waiting: bool) {
        if let Some(worker) = self.open.get_mut(&id) {
            worker.waiting = waiting;
        }
    }

    /// The attempts waiting in worker `id`'s mailbox, newest first (so each
    /// is taken back from the end of the mailbox).
    pub(super) fn queued(&self, id: WorkerId) -> Vec<TaskId> {
        self.open.get(&id).map(|worker| worker.queued.iter().rev().map(|(task, _)| *task).collect()).unwrap_or_default()
    }

    /// Waiting attempts whose priority is below `priority`.
    pub(super) fn outranked_by(&self, priority: i32) -> Vec<(WorkerId, TaskId)> {
        self.open
            .iter()
            .flat_map(|(id, worker)| {
                worker.queued.iter().filter(move |(_, p)| *p < priority).map(move |(task, _)| (*id, *task))
            })
            .collect()
    }

    /// Closes every mailbox (shutdown); waiting attempts are dropped.
    pub(super) fn close_all(&mut self) {
        for worker in self.open.values() {
            drop(worker.mailbox.close());
        }
        self.open.clear();
        self.idle.clear();
    }
}
