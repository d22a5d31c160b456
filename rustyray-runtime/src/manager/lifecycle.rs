//! The task lifecycle: `PENDING_ARGS -> QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED`.
//!
//! [`Core`] holds the task table, the table of objects that pending tasks wait
//! for, the scheduler and the timer wheel, and applies each message to them.
//! Every way an output gets written (success, failure, cancellation, timeout,
//! a failed input, shutdown) ends in [`Core::finalize`] or in the executor's
//! write followed by a `Finished` message, and every written output is then
//! looked up in the waiting table, so dependents are released (or failed)
//! exactly once, iteratively, however long the chain.

use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use rustyray_core::{Attempt, Error, ObjectCell, ObjectId, TaskError, TaskId, TaskKind};
use smallvec::{SmallVec, smallvec};
use tokio::sync::oneshot;

use super::actors::Actors;
use super::entry::{Abandoned, Entry, Maybe, Running};
use super::runners::{RunnerId, Runners};
use super::{Finished, Msg, Timer};
use crate::executor::{self, Handoff, Report, Start};

/// The most async attempts one poll batch takes.
const POLL_BATCH: usize = 32;
use crate::events::EventKind;
use crate::runtime::{Config, Shared};
use crate::scheduler::{Held, Scheduler};
use crate::state::{AttemptOutcome, AttemptRecord, Clock, Records, TaskFilter, TaskInfo, TaskState};
use crate::store::StoreUsage;
use crate::timer::Timers;

/// Tasks waiting for one object.
struct Waiters {
    cell: Arc<ObjectCell>,
    tasks: SmallVec<[TaskId; 2]>,
}

/// The manager's state.
pub(crate) struct Core {
    pub(super) tasks: FxHashMap<TaskId, Box<Entry>>,
    waiting: FxHashMap<ObjectId, Waiters>,
    /// Objects just written whose waiters have not been looked at yet.
    resolved: Vec<ObjectId>,
    pub(super) scheduler: Scheduler,
    pub(super) timers: Timers<Timer>,
    pub(super) abandoned: FxHashMap<TaskId, SmallVec<[Abandoned; 1]>>,
    pub(super) records: Records,
    pub(super) clock: Clock,
    /// The address of the runtime this core belongs to, to tell its objects from others'.
    owner: usize,
    pub(super) shut_down: bool,
    /// The time of the batch being applied: one clock read per batch.
    pub(super) now: Instant,
    /// Who waits for the runtime to have no unfinished task.
    idle_waiters: Vec<oneshot::Sender<()>>,
    runners: Runners,
    pub(super) actors: Actors,
}

fn final_state(error: &Error) -> TaskState {
    if matches!(error, Error::Cancelled { .. } | Error::RuntimeShutdown) {
        TaskState::Cancelled
    } else {
        TaskState::Failed
    }
}

impl Core {
    pub(crate) fn new(config: &Config) -> Self {
        let clock = Clock::new();
        Core {
            tasks: FxHashMap::default(),
            waiting: FxHashMap::default(),
            resolved: Vec::new(),
            scheduler: Scheduler::new(config.num_cpus, &config.resources, &config.queue_limits, config.max_in_flight),
            timers: Timers::default(),
            abandoned: FxHashMap::default(),
            records: Records::new(config.max_finished_records, clock, config.event_capacity),
            clock,
            owner: 0,
            shut_down: false,
            now: Instant::now(),
            idle_waiters: Vec::new(),
            runners: Runners::default(),
            actors: Actors::new(config.max_finished_records),
        }
    }

    /// Tells the core which runtime it belongs to.
    pub(crate) fn set_owner(&mut self, shared: &Arc<Shared>) {
        self.owner = Arc::as_ptr(shared) as *const () as usize;
    }

    /// Reads the clock for the batch about to be applied.
    pub(super) fn tick(&mut self) {
        self.now = Instant::now();
        self.records.now = self.now;
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    fn owns(&self, cell: &ObjectCell) -> bool {
        cell.owner().is_some_and(|owner| Arc::as_ptr(owner) as *const () as usize == self.owner)
    }

    pub(super) fn handle(&mut self, shared: &Arc<Shared>, msg: Msg) {
        match msg {
            Msg::Submit(spec) => self.submit(shared, spec),
            Msg::Finished(finished) => self.finished(*finished),
            Msg::Reports(reports) => {
                for report in reports {
                    match report {
                        Report::Finished(finished) => self.finished(finished),
                        Report::Spawned { task, attempt, abort } => self.spawned(task, attempt, abort),
                        Report::Crashed(finished, lost) => self.actor_crashed(shared, finished, lost),
                        Report::Resumed { task, attempt, started } => self.resumed(task, attempt, started),
                    }
                }
            }
            Msg::Cancel(task) => self.cancel(task),
            Msg::Blocked(task) => self.block(task),
            Msg::Unblocked(task) => self.unblock(task),
            Msg::Claim(claim) => {
                let super::Claim { task, waiter, reply } = *claim;
                self.claim(shared, task, waiter, reply);
            }
            Msg::ObjectReady(object) => self.resolved.push(object),
            Msg::CreateActor(new) => {
                let super::NewActor { entry, slot, config, rejected } = *new;
                self.create_actor(shared, entry, slot, config, rejected);
            }
            Msg::ReleaseActor(actor) => self.orphan_actor(actor),
            Msg::KillActor(actor) => self.kill_actor(actor),
            Msg::WhenIdle(reply) => self.idle_waiters.push(reply),
            Msg::Shutdown(reply) => {
                self.shutdown();
                let _ = reply.send(());
            }
        }
        self.drain_resolved();
    }

    /// Why a new task cannot even wait: bad options, impossible demands, an
    /// unknown queue, a cancelled parent, a stopped runtime.
    fn rejection(&self, entry: &mut Entry) -> Option<Error> {
        let spec = &mut entry.spec;
        if let Some(invalid) = spec.options.invalid.take() {
            return Some(*invalid);
        }
        if self.shut_down {
            return Some(Error::RuntimeShutdown);
        }
        if let Err(short) = self.scheduler.feasible(&entry.demand) {
            return Some(Error::Unschedulable {
                origin: spec.origin(),
                resource: short.resource,
                demand: short.demand,
                capacity: short.capacity,
            });
        }
        if let Some(queue) = &spec.options.queue
            && !self.scheduler.has_queue(queue)
        {
            return Some(Error::UnknownQueue {
                origin: spec.origin(),
                queue: queue.clone(),
                known: self.scheduler.queue_names(),
            });
        }
        if self.parent_cancelled(spec) {
            return Some(Error::Cancelled { origin: spec.origin() });
        }
        None
    }

    /// Whether the task that submitted `spec` was cancelled while its body ran on.
    pub(super) fn parent_cancelled(&self, spec: &rustyray_core::TaskSpec) -> bool {
        spec.parent.is_some_and(|parent| {
            self.abandoned.get(&parent).is_some_and(|attempts| attempts.iter().any(|a| a.cancelled))
        })
    }

    pub(super) fn submit(&mut self, shared: &Arc<Shared>, mut entry: Box<Entry>) {
        let id = entry.spec.id;
        self.records.pending_args += 1;
        entry.submitted = self.now;
        entry.metrics = self.records.functions.slot(entry.spec.function);
        if let Some(function) = self.records.functions.get_mut(entry.metrics) {
            function.submitted += 1;
        }
        let spec = &entry.spec;
        self.records.emit(self.now, || EventKind::TaskSubmitted {
            task: id,
            function: spec.function,
            name: spec.options.name.clone(),
            parent: spec.parent,
            args: spec.args.clone(),
        });
        if entry.direct {
            return self.submit_direct(entry);
        }
        if let Some(error) = self.rejection(&mut entry) {
            if let Some(function) = self.records.functions.get_mut(entry.metrics) {
                function.rejected(error.kind());
            }
            tracing::debug!(task = %id, function = %entry.spec.function, error = %error, "task refused");
            let state = final_state(&error);
            return self.finalize(entry, state, Some(error));
        }
        if let TaskKind::ActorMethod { actor } = entry.spec.kind
            && let Some(error) = self.join_line(actor, id)
        {
            return self.finalize(entry, TaskState::Failed, Some(error));
        }
        if let Some(parent) = entry.spec.parent
            && let Some(parent) = self.tasks.get_mut(&parent)
        {
            parent.children.push(id);
        }
        if let Some(delay) = super::delayed::start_delay(&mut entry.spec.options) {
            return self.hold(entry, delay);
        }
        self.await_inputs(shared, entry);
    }

    /// A submitted task waits for its inputs, or is queued if it has none left to wait for.
    pub(super) fn await_inputs(&mut self, shared: &Arc<Shared>, mut entry: Box<Entry>) {
        let id = entry.spec.id;
        let mut failed = None;
        for cell in &entry.spec.deps {
            match cell.try_get() {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    failed = Some(error.clone());
                    break;
                }
                None => {
                    entry.unresolved += 1;
                    // An element of a multiple result is written just before
                    // its task's output: the output's write releases it.
                    match self.waiting.entry(cell.written_with()) {
                        MapEntry::Occupied(mut waiters) => waiters.get_mut().tasks.push(id),
                        MapEntry::Vacant(slot) => {
                            slot.insert(Waiters { cell: cell.clone(), tasks: smallvec![id] });
                            if !cell.is_ready() && !self.owns(cell) {
                                watch(shared, cell.clone());
                            }
                        }
                    }
                }
            }
        }
        if let Some(error) = failed {
            let state = final_state(&error);
            return self.finalize(entry, state, Some(error));
        }
        if !entry.spec.deps.is_empty() {
            entry.inputs = entry.spec.deps.iter().filter_map(|cell| cell.producer()).collect();
        }
        if entry.unresolved == 0 {
            enqueue(&mut self.scheduler, &mut self.records, &mut self.actors, &mut entry);
        }
        self.tasks.insert(id, entry);
    }

    /// Releases every task that may run now, and keeps runners fed.
    pub(super) fn dispatch(&mut self, shared: &Arc<Shared>) {
        let mut async_starts = Vec::new();
        loop {
            while let Some((ready, held)) = self.scheduler.next() {
                let entry = match self.tasks.get_mut(&ready.task) {
                    Some(entry) if entry.queued_seq == Some(ready.seq) => entry,
                    // Cancelled (or claimed inline) while queued: a stale place in line.
                    _ => {
                        self.scheduler.release(held);
                        continue;
                    }
                };
                if let TaskKind::ActorCreation { actor } = entry.spec.kind {
                    self.start_creation(shared, actor, ready.task, held);
                    continue;
                }
                let start = prepare_attempt(entry);
                if entry.runs_on_runner() {
                    match self.runners.offer_to_idle(start) {
                        Ok(runner) => {
                            mark_running(
                                &mut self.timers,
                                &mut self.records,
                                self.now,
                                entry,
                                held,
                                false,
                                Some(runner),
                            );
                        }
                        Err(start) => {
                            let (runner, mailbox) = self.runners.open();
                            mark_running(
                                &mut self.timers,
                                &mut self.records,
                                self.now,
                                entry,
                                held,
                                false,
                                Some(runner),
                            );
                            executor::start_plain(shared, start, Some(mailbox));
                        }
                    }
                } else if entry.spec.body.is_blocking() {
                    mark_running(&mut self.timers, &mut self.records, self.now, entry, held, false, None);
                    executor::start_plain(shared, start, None);
                } else {
                    mark_running(&mut self.timers, &mut self.records, self.now, entry, held, false, None);
                    async_starts.push(start);
                    if async_starts.len() == POLL_BATCH {
                        executor::start_async(shared, std::mem::take(&mut async_starts));
                    }
                }
            }
            if !async_starts.is_empty() {
                executor::start_async(shared, std::mem::take(&mut async_starts));
            }
            self.feed_runners();
            if !self.reclaim_lookahead() {
                break;
            }
        }
        self.pump_actors(shared);
    }

    /// Fills runners' mailboxes from the front of the line, as far as the
    /// front has the runners' shape.
    fn feed_runners(&mut self) {
        if let Some(top) = self.scheduler.bound_top_priority() {
            for (runner, task) in self.runners.outranked_by(top) {
                self.unassign(runner, task);
            }
        }
        for (runner, room) in self.runners.room(self.scheduler.bound_len()) {
            for _ in 0..room {
                let Some(ready) = self.scheduler.take_lookahead() else { return };
                let Some(entry) = self.tasks.get_mut(&ready.task).filter(|e| e.queued_seq == Some(ready.seq)) else {
                    continue;
                };
                let priority = entry.spec.options.priority;
                let mut start = prepare_attempt(entry);
                start.lookahead = true;
                entry.assigned = Maybe::some(runner);
                entry.lookahead_seq = Maybe::some(ready.seq);
                if self.runners.assign(runner, start, priority).is_err() {
                    // The runner is closing: the task keeps its place in line.
                    entry.assigned = Maybe::NONE;
                    entry.lookahead_seq = Maybe::NONE;
                    entry.started_attempts -= 1;
                    entry.prepared_abandon = None;
                    entry.queued_seq = Maybe::some(ready.seq);
                    self.scheduler.unget(ready);
                    break;
                }
            }
        }
    }

    /// Takes a waiting lookahead back into the line (before it started), at
    /// the place it had: tasks of one priority start in submission order.
    fn unassign(&mut self, runner: RunnerId, task: TaskId) -> bool {
        if self.runners.retract(runner, task).is_none() {
            return false;
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return false };
        entry.assigned = Maybe::NONE;
        entry.started_attempts -= 1;
        entry.prepared_abandon = None;
        match entry.lookahead_seq.take() {
            Some(seq) => {
                let spec = &entry.spec;
                let demand = entry.demand.clone();
                self.scheduler.push_at(spec.id, seq, spec.options.priority, demand, spec.options.queue.clone());
                entry.queued_seq = Maybe::some(seq);
            }
            None => enqueue(&mut self.scheduler, &mut self.records, &mut self.actors, entry),
        }
        true
    }

    /// If a CPU is idle while lookaheads wait behind a runner's attempt, takes
    /// the newer half of the longest such line back, so the idle CPU starts on
    /// it now.
    fn reclaim_lookahead(&mut self) -> bool {
        if !self.scheduler.cpu_idle() {
            return false;
        }
        let mut moved = false;
        for (runner, task) in self.runners.newest_half() {
            moved |= self.unassign(runner, task);
        }
        moved
    }

    /// The running `task` waits for objects (or runs one inline): its
    /// resources go back to the scheduler, and lookaheads left behind it on
    /// its runner go back into the line, since they would wait with it (and
    /// may be what it waits for). Its runner gets no more until it resumes.
    fn block(&mut self, task: TaskId) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        if let TaskKind::ActorMethod { actor } = entry.spec.kind {
            // A call holds nothing of its own: its actor's CPUs are given back.
            return self.actor_call_blocked(actor, task);
        }
        let Some(running) = entry.running.as_mut() else { return };
        if !self.scheduler.block(&mut running.held) {
            // It was waiting already (another wait of the same task is open).
            return;
        }
        if let Some(runner) = running.runner {
            self.runners.set_waiting(runner, true);
            for task in self.runners.queued(runner) {
                self.unassign(runner, task);
            }
        }
    }

    /// One wait of the running `task` ended: once none is open, it takes its
    /// resources back and its runner may be given lookaheads again.
    fn unblock(&mut self, task: TaskId) {
        if self.actor_call_unblocked(task) {
            return;
        }
        let Some(running) = self.tasks.get_mut(&task).and_then(|e| e.running.as_mut()) else { return };
        if self.scheduler.unblock(&mut running.held)
            && let Some(runner) = running.runner
        {
            self.runners.set_waiting(runner, false);
        }
    }

    /// A plain task waits for `task`: if `task` is queued and runs on one CPU
    /// (and no queue), hand it over to run on the waiter's thread, moving the
    /// waiter's CPU to it.
    fn claim(
        &mut self,
        shared: &Arc<Shared>,
        task: TaskId,
        waiter: Option<TaskId>,
        reply: std::sync::mpsc::Sender<Option<Start>>,
    ) {
        // A lookahead that has not started may be taken back and run here.
        if let Some(runner) = self.tasks.get(&task).and_then(|e| e.assigned.get()) {
            self.unassign(runner, task);
        }
        let claimable = self
            .tasks
            .get(&task)
            .is_some_and(|e| e.state == TaskState::Queued && e.queued_seq.is_some() && e.runs_on_runner());
        if !claimable {
            let _ = reply.send(None);
            return;
        }
        // The waiter lends its CPU and its thread; like any waiting attempt,
        // it gives back the lookaheads that would wait behind it.
        if let Some(waiter) = waiter {
            self.block(waiter);
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        if let Some(seq) = entry.queued_seq.get() {
            self.scheduler.forget(seq);
        }
        let held = self.scheduler.start_now(entry.demand.clone());
        let start = prepare_attempt(entry);
        mark_running(&mut self.timers, &mut self.records, self.now, entry, held, true, None);
        if let Err(std::sync::mpsc::SendError(Some(start))) = reply.send(Some(start)) {
            // The waiter is gone: run the attempt on the blocking pool instead.
            executor::start_plain(shared, start, None);
        }
    }

    pub(super) fn finished(&mut self, finished: Finished) {
        let Finished { task, attempt, outcome, started, ended, handoff } = finished;
        if let Some(actor) = self.rebuilding(task) {
            return self.rebuilt(actor, &outcome);
        }
        // What the attempt held, and the runner it ran on, whether it is still
        // the task's current attempt or one the manager gave up on.
        let (held, runner, current) = match self.take_abandoned(task, attempt) {
            Some(abandoned) => (Some(abandoned.held), abandoned.runner, false),
            None => match self.tasks.get_mut(&task).and_then(|e| e.running.take_if(|r| r.attempt == attempt)) {
                Some(running) => {
                    if let Some(timer) = &running.timer {
                        self.timers.try_remove(timer);
                    }
                    (Some(running.held), running.runner, true)
                }
                None => (None, None, false),
            },
        };
        self.hand_off(held, runner, handoff, ended);
        if !current {
            return;
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let run_time = ended.saturating_duration_since(started);
        self.records.attempt_ran(run_time);
        if let Some(function) = self.records.functions.get_mut(entry.metrics) {
            function.run_time.observe(run_time);
        }
        if runner.is_some() {
            self.runners.observe(run_time);
        }
        // Cancelled from its ref while this attempt ran: the object already
        // holds the cancellation, whatever the attempt did.
        let cancelled = matches!(entry.spec.output.try_get(), Some(Err(error)) if error.is_cancelled());
        if let Some(record) = entry.attempts.iter_mut().rev().find(|a| a.number == attempt) {
            record.started = started;
            record.ended = Some(ended);
            record.outcome = match &outcome {
                _ if cancelled => AttemptOutcome::Cancelled,
                Ok(()) => AttemptOutcome::Succeeded,
                Err(error) => AttemptOutcome::Failed(error.clone()),
            };
        }
        if cancelled {
            return self.cancel(task);
        }
        match outcome {
            Ok(()) => {
                if let Some(entry) = self.tasks.remove(&task) {
                    self.finalize(entry, TaskState::Succeeded, None);
                }
            }
            Err(error) => self.attempt_failed(task, *error),
        }
    }

    /// An async attempt continues as a tokio task of its own: keep the handle
    /// that stops it, or stop it now if the attempt was given up meanwhile.
    fn spawned(&mut self, task: TaskId, attempt: u32, abort: tokio::task::AbortHandle) {
        if let Some(running) =
            self.tasks.get_mut(&task).and_then(|e| e.running.as_mut()).filter(|r| r.attempt == attempt)
        {
            running.abort = Some(abort);
        } else if let Some(abandoned) = self.take_abandoned(task, attempt) {
            abort.abort();
            self.scheduler.release(abandoned.held);
        }
    }

    /// Passes what an ended attempt held on: to the runner's next attempt, or
    /// back to the scheduler.
    fn hand_off(&mut self, held: Option<Held>, runner: Option<RunnerId>, handoff: Handoff, ended: Instant) {
        let (Some(runner), Handoff::Next(next, next_attempt)) = (runner, handoff) else {
            if let Some(held) = held {
                self.scheduler.release(held);
            }
            if let Some(runner) = runner
                && handoff == Handoff::Idle
            {
                self.runners.went_idle(runner);
            }
            return;
        };
        self.runners.lookahead_started(runner, next);
        let held = match held {
            Some(held) => held,
            None => self.scheduler.start_now(crate::scheduler::Demand::one_cpu()),
        };
        match self.tasks.get_mut(&next).filter(|e| e.assigned == Some(runner) && e.started_attempts == next_attempt) {
            Some(entry) => {
                entry.assigned = Maybe::NONE;
                // The runner started it as the previous attempt ended.
                mark_running(&mut self.timers, &mut self.records, ended, entry, held, false, Some(runner));
            }
            // It was cancelled after the runner took it: it runs, abandoned,
            // on the CPU it inherited until it returns.
            None => self.abandoned.entry(next).or_default().push(Abandoned {
                attempt: next_attempt,
                held,
                cancelled: true,
                runner: Some(runner),
            }),
        }
    }

    /// A runner that had gone idle started a lookahead left in its mailbox
    /// meanwhile: the attempt runs, on a CPU of its own.
    fn resumed(&mut self, task: TaskId, attempt: u32, started: Instant) {
        let held = self.scheduler.start_now(crate::scheduler::Demand::one_cpu());
        match self.tasks.get_mut(&task).filter(|e| e.assigned.is_some() && e.started_attempts == attempt) {
            Some(entry) => {
                let runner = entry.assigned.take();
                if let Some(runner) = runner {
                    self.runners.resumed(runner, task);
                }
                mark_running(&mut self.timers, &mut self.records, started, entry, held, false, runner);
            }
            // Cancelled after the runner took it: it runs, abandoned.
            None => {
                self.abandoned.entry(task).or_default().push(Abandoned { attempt, held, cancelled: true, runner: None })
            }
        }
    }

    /// Takes the record of an abandoned attempt whose body returned.
    fn take_abandoned(&mut self, task: TaskId, attempt: u32) -> Option<Abandoned> {
        let MapEntry::Occupied(mut slot) = self.abandoned.entry(task) else { return None };
        let index = slot.get().iter().position(|a| a.attempt == attempt)?;
        let abandoned = slot.get_mut().swap_remove(index);
        if slot.get().is_empty() {
            slot.remove();
        }
        Some(abandoned)
    }

    /// An attempt failed: retry it if retries remain, else fail the task.
    fn attempt_failed(&mut self, task: TaskId, error: TaskError) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        if entry.started_attempts <= entry.spec.options.max_retries && error.retryable() {
            self.records.count_retry(entry.metrics);
            tracing::debug!(task = %task, function = %entry.spec.function, attempt = entry.started_attempts, error = %error, "retrying task");
            let delay = match entry.spec.options.backoff.as_deref().copied() {
                Some(backoff) => {
                    set_state(&mut self.records, entry, TaskState::Queued);
                    let delay = jitter(backoff.delay(entry.started_attempts));
                    self.timers.insert(Timer::Retry { task }, delay);
                    delay
                }
                None => {
                    enqueue(&mut self.scheduler, &mut self.records, &mut self.actors, entry);
                    Duration::ZERO
                }
            };
            let (function, attempt) = (entry.spec.function, entry.started_attempts);
            self.records.emit(self.now, || EventKind::TaskRetried {
                task,
                function,
                attempt,
                error: error.to_string(),
                delay,
            });
        } else if let Some(entry) = self.tasks.remove(&task) {
            if let TaskError::Panicked { message, .. } = &error {
                tracing::warn!(task = %task, function = %entry.spec.function, "task panicked: {message}");
            }
            let error = error.into_error(entry.spec.origin(), entry.started_attempts);
            self.finalize(entry, TaskState::Failed, Some(error));
        }
    }

    pub(super) fn on_timer(&mut self, shared: &Arc<Shared>, timer: Timer) {
        match timer {
            Timer::Release { task } => self.release(shared, task),
            Timer::Timeout { task, attempt } => self.timed_out(task, attempt),
            Timer::Retry { task } => {
                if let Some(entry) = self.tasks.get_mut(&task)
                    && entry.state == TaskState::Queued
                    && entry.queued_seq.is_none()
                    && entry.running.is_none()
                {
                    enqueue(&mut self.scheduler, &mut self.records, &mut self.actors, entry);
                }
            }
        }
        self.drain_resolved();
    }

    fn timed_out(&mut self, task: TaskId, attempt: u32) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let Some(running) = entry.running.as_mut().filter(|r| r.attempt == attempt) else { return };
        // The key has fired: it must not be removed again.
        running.timer = None;
        if entry.spec.output.is_ready() {
            // It succeeded just in time; its `Finished` message is on the way.
            return;
        }
        let Some(timeout) = entry.spec.options.timeout else { return };
        let Some(running) = entry.running.take() else { return };
        if let Some(record) = entry.attempts.iter_mut().rev().find(|a| a.number == attempt) {
            record.ended = Some(self.now);
            record.outcome = AttemptOutcome::Failed(Box::new(TaskError::TimedOut { timeout }));
        }
        self.stop_attempt(task, *running, false);
        self.attempt_failed(task, TaskError::TimedOut { timeout });
    }

    /// Stops a running attempt the manager gives up on: an async body is
    /// dropped; a plain body cannot be interrupted, so it is abandoned and keeps
    /// its resources until it returns.
    fn stop_attempt(&mut self, task: TaskId, running: Running, cancelled: bool) {
        if let Some(timer) = &running.timer {
            self.timers.try_remove(timer);
        }
        if let Some(flag) = &running.abandon {
            flag.store(true, Ordering::Release);
        }
        match running.abort {
            Some(abort) => {
                abort.abort();
                self.scheduler.release(running.held);
            }
            None => self.abandoned.entry(task).or_default().push(Abandoned {
                attempt: running.attempt,
                held: running.held,
                cancelled,
                runner: running.runner,
            }),
        }
    }

    /// Cancels a task and everything it submitted.
    pub(super) fn cancel(&mut self, task: TaskId) {
        let mut stack = vec![task];
        while let Some(task) = stack.pop() {
            let Some(mut entry) = self.tasks.remove(&task) else { continue };
            stack.append(&mut entry.children);
            if let Some(seq) = entry.queued_seq.take() {
                self.scheduler.forget(seq);
            }
            if let Some(runner) = entry.assigned.take()
                && self.runners.retract(runner, task).is_some()
            {
                // Taken back before it started: that attempt never ran.
                entry.started_attempts -= 1;
            }
            if let TaskKind::ActorMethod { actor } = entry.spec.kind
                && entry.running.is_some()
                && self.actors.retract(actor, task)
            {
                // Still waiting in the actor's slot: it never started.
                entry.running = None;
                entry.started_attempts -= 1;
                entry.attempts.pop();
            }
            if let Some(running) = entry.running.take() {
                if let Some(record) = entry.attempts.iter_mut().rev().find(|a| a.number == running.attempt) {
                    record.ended = Some(self.now);
                    record.outcome = AttemptOutcome::Cancelled;
                }
                self.stop_attempt(task, *running, true);
            }
            let error = Error::Cancelled { origin: entry.spec.origin() };
            self.finalize(entry, TaskState::Cancelled, Some(error));
        }
    }

    /// Ends a task: writes `error` (if any) to its output, keeps its record,
    /// and queues its output for its dependents.
    pub(super) fn finalize(&mut self, mut entry: Box<Entry>, state: TaskState, error: Option<Error>) {
        let kind = entry.spec.kind.clone();
        if entry.routed {
            self.unroute(&mut entry);
        }
        let reason = error.as_ref().map(ToString::to_string);
        if let Some(error) = error {
            entry.spec.output.complete(Err(error));
        }
        set_state(&mut self.records, &mut entry, state);
        self.resolved.push(entry.spec.output.id());
        let (task, function, attempts) = (entry.spec.id, entry.spec.function, entry.started_attempts);
        self.records.emit(self.now, || match state {
            TaskState::Succeeded => EventKind::TaskSucceeded { task, function, attempts },
            TaskState::Failed => EventKind::TaskFailed { task, function, error: reason.clone().unwrap_or_default() },
            _ => EventKind::TaskCancelled { task, function },
        });
        match kind {
            TaskKind::ActorCreation { actor } => self.creation_ended(actor, state, reason),
            TaskKind::ActorMethod { actor } => self.call_ended(actor, entry.spec.id),
            TaskKind::Normal => {}
        }
        tracing::trace!(task = %task, function = %function, state = %state, "task finished");
        let metrics = entry.metrics;
        self.records.keep(entry.into_record(self.now), metrics);
    }

    /// Releases or fails the tasks waiting for objects that were just written.
    fn drain_resolved(&mut self) {
        while let Some(object) = self.resolved.pop() {
            let Some(waiters) = self.waiting.remove(&object) else { continue };
            let error = match waiters.cell.try_get() {
                Some(Ok(_)) => None,
                Some(Err(error)) => Some(error.clone()),
                None => {
                    self.waiting.insert(object, waiters);
                    continue;
                }
            };
            for task in waiters.tasks {
                let Some(entry) = self.tasks.get_mut(&task) else { continue };
                if entry.state != TaskState::PendingArgs {
                    continue;
                }
                match &error {
                    None => {
                        entry.unresolved -= 1;
                        if entry.unresolved == 0 {
                            enqueue(&mut self.scheduler, &mut self.records, &mut self.actors, entry);
                        }
                    }
                    Some(error) => {
                        if let Some(entry) = self.tasks.remove(&task) {
                            self.finalize(entry, final_state(error), Some(error.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Fails everything unfinished with a shutdown error.
    pub(super) fn shutdown(&mut self) {
        self.shut_down = true;
        self.runners.close_all();
        // Every unfinished task, actor calls and creations included, fails
        // with the shutdown error; then the actors end.
        let entries: Vec<Box<Entry>> = self.tasks.drain().map(|(_, entry)| entry).collect();
        for mut entry in entries {
            if let Some(running) = entry.running.take()
                && let Some(abort) = running.abort
            {
                abort.abort();
            }
            self.finalize(entry, TaskState::Cancelled, Some(Error::RuntimeShutdown));
        }
        self.end_all_actors();
        self.waiting.clear();
        self.resolved.clear();
        self.timers.clear();
        self.abandoned.clear();
        // Subscribers have seen everything: their streams end.
        self.records.events.close();
    }

    pub(crate) fn subscribe(&mut self) -> crate::events::EventStream {
        self.records.events.subscribe()
    }

    pub(crate) fn close_events(&mut self) {
        self.records.events.close();
    }

    /// What a metrics scrape reports.
    pub(crate) fn metrics_snapshot(&self, usage: StoreUsage) -> crate::metrics::Snapshot {
        let stats = self.stats(usage);
        crate::metrics::Snapshot {
            functions: self.records.functions.all().to_vec(),
            pending_args: self.records.pending_args,
            queued: self.records.queued,
            running: stats.running,
            actors: self.actors.counts(),
            store: usage,
            events_dropped: self.records.events.dropped.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The Chrome trace of the tasks kept and live.
    /// What the timeline shows, copied out under the manager's lock; the
    /// JSON is built from it after the lock is released
    /// ([`Snapshot::render`](crate::timeline::Snapshot::render)).
    pub(crate) fn timeline(&self) -> crate::timeline::Snapshot {
        let mut records: Vec<crate::state::Record> = self.records.finished().cloned().collect();
        records.extend(self.tasks.values().map(|entry| entry.record(None)));
        let classes: FxHashMap<rustyray_core::ActorId, &'static str> =
            self.actors.infos().into_iter().map(|info| (info.id, info.class)).collect();
        crate::timeline::Snapshot { records, classes, origin: self.clock.origin(), now: Instant::now() }
    }

    /// Wakes those waiting for idleness, if no task is unfinished.
    /// Also gives back the memory a burst of work grew the tables to.
    pub(super) fn notify_idle(&mut self) {
        if !self.tasks.is_empty() || !self.abandoned.is_empty() {
            return;
        }
        for waiter in self.idle_waiters.drain(..) {
            let _ = waiter.send(());
        }
        const KEEP: usize = 1024;
        if self.tasks.capacity() > KEEP {
            self.tasks.shrink_to(KEEP);
            self.waiting.shrink_to(KEEP);
            self.scheduler.shrink_to(KEEP);
            self.resolved.shrink_to(KEEP);
        }
    }

    /// Snapshots the tasks `filter` selects: live ones, then kept finished ones.
    pub(crate) fn tasks(&self, filter: &TaskFilter) -> Vec<TaskInfo> {
        let mut live: Vec<TaskInfo> =
            self.tasks.values().map(|e| e.record(None).info(&self.clock)).filter(|i| filter.matches(i)).collect();
        live.sort_by_key(|info| info.id);
        let mut all: Vec<TaskInfo> =
            self.records.finished().map(|r| r.info(&self.clock)).filter(|i| filter.matches(i)).collect();
        all.append(&mut live);
        all
    }

    /// Every actor: live ones, then recently dead ones.
    pub(crate) fn actors(&self) -> Vec<crate::state::ActorInfo> {
        self.actors.infos()
    }

    /// One task, if it is live or still kept.
    pub(crate) fn task(&self, id: TaskId) -> Option<TaskInfo> {
        match self.tasks.get(&id) {
            Some(entry) => Some(entry.record(None).info(&self.clock)),
            None => self.records.find(id).map(|r| r.info(&self.clock)),
        }
    }

    pub(crate) fn stats(&self, usage: StoreUsage) -> crate::state::Stats {
        let mut stats = self.records.stats(usage);
        // Count tasks whose value is out but whose report is still on its way
        // as succeeded, so the totals agree with what `get` has returned.
        if stats.running > 0 {
            let unreported = self.tasks.values().filter(|e| e.succeeded_unreported()).count() as u64;
            stats.running -= unreported;
            stats.succeeded += unreported;
        }
        stats
    }

    /// CPU units free now and in total, and attempts in flight.
    pub(crate) fn load(&self) -> ((f64, f64), usize) {
        (self.scheduler.cpus(), self.scheduler.in_flight())
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

/// Moves `entry` to `state`, keeping the pending/running gauges right.
pub(super) fn set_state(records: &mut Records, entry: &mut Entry, state: TaskState) {
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
            entry.queued_at = records.now;
        }
        TaskState::Running => records.running += 1,
        _ => {}
    }
    entry.state = state;
}

/// Hands a task whose inputs are ready to the scheduler.
pub(super) fn enqueue(scheduler: &mut Scheduler, records: &mut Records, actors: &mut Actors, entry: &mut Entry) {
    set_state(records, entry, TaskState::Queued);
    if let TaskKind::ActorMethod { actor } = entry.spec.kind {
        // Actor calls wait in their actor's line, not the scheduler's.
        entry.queued_seq = Maybe::NONE;
        actors.wake(actor);
        return;
    }
    let seq = scheduler.push(
        entry.spec.id,
        entry.spec.options.priority,
        entry.demand.clone(),
        entry.spec.options.queue.clone(),
    );
    entry.queued_seq = Maybe::some(seq);
}

/// Describes the next attempt of `entry` for the executor (the attempt is
/// counted from here; it runs once [`mark_running`] says so).
pub(super) fn prepare_attempt(entry: &mut Entry) -> Start {
    entry.queued_seq = Maybe::NONE;
    entry.started_attempts += 1;
    let number = entry.started_attempts;
    let last = number > entry.spec.options.max_retries;
    // Inputs are resolved; dropping our hold on them lets the last attempt
    // move a value out of the store instead of copying it.
    entry.spec.deps.clear();
    let abandon = (entry.spec.options.timeout.is_some() && !last).then(|| Arc::new(AtomicBool::new(false)));
    entry.prepared_abandon = abandon.clone();
    let spec = &entry.spec;
    let span = tracing::info_span!(
        target: "rustyray::task",
        parent: spec.trace_parent.as_deref().and_then(tracing::Span::id),
        "task",
        task = %spec.id,
        function = spec.function.name(),
        name = spec.options.name.as_deref(),
        attempt = number,
        parent_task = spec.parent.map(|parent| parent.as_u64()),
        args = spec.args.as_deref(),
    );
    Start {
        span,
        task: entry.spec.id,
        attempt: Attempt { number, last },
        body: entry.spec.body.clone(),
        output: entry.spec.output.clone(),
        releases_on_wait: !entry.demand.is_zero(),
        abandon,
        lookahead: false,
        timed: entry.spec.options.timeout.is_some(),
    }
}

/// Marks `entry`'s latest prepared attempt as running, holding `held`.
///
/// `now` is when the attempt started: for a lookahead a runner started on
/// its own, that is before the manager hears of it, and its timeout counts
/// from then.
pub(super) fn mark_running(
    timers: &mut Timers<Timer>,
    records: &mut Records,
    now: Instant,
    entry: &mut Entry,
    held: Held,
    inline: bool,
    runner: Option<RunnerId>,
) {
    let number = entry.started_attempts;
    let timer = entry.spec.options.timeout.map(|timeout| {
        let deadline = crate::timer::deadline(now, timeout);
        timers.insert_at(Timer::Timeout { task: entry.spec.id, attempt: number }, deadline)
    });
    let abandon = entry.prepared_abandon.take();
    entry.running = Some(Box::new(Running { attempt: number, abort: None, timer, held, abandon, runner }));
    if let Some(function) = records.functions.get_mut(entry.metrics) {
        function.queue_wait.observe(now.saturating_duration_since(entry.queued_at));
    }
    set_state(records, entry, TaskState::Running);
    let (task, function) = (entry.spec.id, entry.spec.function);
    records.emit(now, || EventKind::TaskStarted { task, function, attempt: number });
    entry.attempts.push(AttemptRecord { number, started: now, ended: None, outcome: AttemptOutcome::Running, inline });
}

/// Forwards the readiness of another runtime's object to this manager.
fn watch(shared: &Arc<Shared>, cell: Arc<ObjectCell>) {
    let sender = shared.sender();
    shared.handle().spawn(async move {
        let _ = cell.ready().await;
        let _ = sender.send(Msg::ObjectReady(cell.written_with()));
    });
}

/// A delay drawn uniformly between half of `delay` and all of it.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + fastrand::f64() * 0.5)
}
