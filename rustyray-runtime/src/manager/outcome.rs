//! Outcomes: an attempt ends (or is given up on), the task is retried,
//! times out or is cancelled, and a finished task is finalized: its output
//! written, its record kept, its dependents looked up.

use std::collections::hash_map::Entry as MapEntry;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustyray_core::{Error, TaskError, TaskId, TaskKind};

use super::Timer;
use super::books::RunsOn;
use super::core::Core;
use crate::events::EventKind;
use crate::executor::Exec;
use crate::protocol::{Finished, Handoff};
use crate::scheduler::Held;
use crate::state::{AttemptOutcome, TaskState};
use crate::task::{Abandoned, Entry, Running, WorkerId};

impl Core {
    pub(super) fn finished(&mut self, finished: Finished) {
        let Finished { task, attempt, outcome, started, ended, handoff } = finished;
        if let Some(actor) = self.rebuilding(task) {
            return self.rebuilt(actor, &outcome);
        }
        // What the attempt held, and the worker it ran on, whether it is still
        // the task's current attempt or one the manager gave up on.
        let (held, worker, current) = match self.take_abandoned(task, attempt) {
            Some(abandoned) => (Some(abandoned.held), abandoned.worker, false),
            None => match self.tasks.get_mut(&task).and_then(|e| e.take_running_if(|r| r.attempt == attempt)) {
                Some(running) => {
                    if let Some(timer) = &running.timer {
                        self.books.timers.try_remove(timer);
                    }
                    (Some(running.held), running.worker, true)
                }
                None => (None, None, false),
            },
        };
        self.hand_off(held, worker, handoff, ended);
        if !current {
            return;
        }
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let run_time = ended.saturating_duration_since(started);
        self.books.records.attempt_ran(run_time);
        if let Some(function) = self.books.records.functions.of(entry.spec.function) {
            function.run_time.observe(run_time);
        }
        if worker.is_some() {
            self.workers.observe(run_time);
        }
        // Cancelled from its ref while this attempt ran: the object already
        // holds the cancellation, whatever the attempt did.
        let cancelled = matches!(entry.spec.output.try_get(), Some(Err(error)) if error.is_cancelled());
        if let Some(record) = entry.attempts_mut().iter_mut().rev().find(|a| a.number == attempt) {
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
    pub(super) fn spawned(&mut self, task: TaskId, attempt: u32, abort: tokio::task::AbortHandle) {
        if let Some(running) = self.tasks.get_mut(&task).and_then(|e| e.running_mut()).filter(|r| r.attempt == attempt)
        {
            running.abort = Some(abort);
        } else if let Some(abandoned) = self.take_abandoned(task, attempt) {
            abort.abort();
            self.books.scheduler.release(abandoned.held);
        }
    }

    /// Passes what an ended attempt held on: to the worker's next attempt, or
    /// back to the scheduler.
    pub(super) fn hand_off(&mut self, held: Option<Held>, worker: Option<WorkerId>, handoff: Handoff, ended: Instant) {
        let (Some(worker), Handoff::Next(next, next_attempt)) = (worker, handoff) else {
            if let Some(held) = held {
                self.books.scheduler.release(held);
            }
            if let Some(worker) = worker
                && handoff == Handoff::Idle
            {
                self.workers.went_idle(worker);
            }
            return;
        };
        self.workers.lookahead_started(worker, next);
        let held = match held {
            Some(held) => held,
            None => self.books.scheduler.start_now(crate::scheduler::Demand::ONE_CPU),
        };
        match self.tasks.get_mut(&next).filter(|e| e.assigned() == Some(worker) && e.started_attempts() == next_attempt)
        {
            Some(entry) => {
                entry.take_assigned();
                // The worker started it as the previous attempt ended.
                self.books.mark_running(entry, held, ended, RunsOn::Worker(worker));
            }
            // It was cancelled after the worker took it: it runs, abandoned,
            // on the CPU it inherited until it returns.
            None => self.abandoned.entry(next).or_default().push(Abandoned {
                attempt: next_attempt,
                held,
                cancelled: true,
                worker: Some(worker),
            }),
        }
    }

    /// A worker that had gone idle started a lookahead left in its mailbox
    /// meanwhile: the attempt runs, on a CPU of its own.
    pub(super) fn resumed(&mut self, task: TaskId, attempt: u32, started: Instant) {
        let held = self.books.scheduler.start_now(crate::scheduler::Demand::ONE_CPU);
        match self.tasks.get_mut(&task).filter(|e| e.assigned().is_some() && e.started_attempts() == attempt) {
            Some(entry) => {
                let worker = entry.take_assigned();
                if let Some(worker) = worker {
                    self.workers.resumed(worker, task);
                }
                self.books.mark_running(entry, held, started, RunsOn::worker_or_spawned(worker));
            }
            // Cancelled after the worker took it: it runs, abandoned.
            None => {
                self.abandoned.entry(task).or_default().push(Abandoned { attempt, held, cancelled: true, worker: None })
            }
        }
    }

    /// Takes the record of an abandoned attempt whose body returned.
    pub(super) fn take_abandoned(&mut self, task: TaskId, attempt: u32) -> Option<Abandoned> {
        let MapEntry::Occupied(mut slot) = self.abandoned.entry(task) else { return None };
        let index = slot.get().iter().position(|a| a.attempt == attempt)?;
        let abandoned = slot.get_mut().swap_remove(index);
        if slot.get().is_empty() {
            slot.remove();
        }
        Some(abandoned)
    }

    /// An attempt failed: retry it if retries remain, else fail the task.
    pub(super) fn attempt_failed(&mut self, task: TaskId, error: TaskError) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        if entry.started_attempts() <= entry.spec.options.max_retries && error.retryable() {
            self.books.records.count_retry(entry.spec.function);
            tracing::debug!(task = %task, function = %entry.spec.function, attempt = entry.started_attempts(), error = %error, "retrying task");
            let delay = match entry.spec.options.backoff.as_deref().copied() {
                Some(backoff) => {
                    self.books.set_state(entry, TaskState::Queued);
                    let delay = jitter(backoff.delay(entry.started_attempts()), self.det.as_deref());
                    self.books.timers.insert(Timer::Retry { task }, delay);
                    delay
                }
                None => {
                    self.books.enqueue(entry);
                    Duration::ZERO
                }
            };
            let (function, attempt) = (entry.spec.function, entry.started_attempts());
            self.books.records.emit(self.books.now, || EventKind::TaskRetried {
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
            let error = error.into_error(entry.spec.origin(), entry.started_attempts());
            self.finalize(entry, TaskState::Failed, Some(error));
        }
    }

    pub(super) fn on_timer(&mut self, exec: &Exec, timer: Timer) {
        match timer {
            Timer::Release { task } => self.release(exec, task),
            Timer::Timeout { task, attempt } => self.timed_out(task, attempt),
            Timer::Retry { task } => {
                if let Some(entry) = self.tasks.get_mut(&task)
                    && entry.state == TaskState::Queued
                    && entry.queued_seq.is_none()
                    && entry.running().is_none()
                {
                    self.books.enqueue(entry);
                }
            }
        }
        self.drain_resolved();
    }

    pub(super) fn timed_out(&mut self, task: TaskId, attempt: u32) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let Some(running) = entry.running_mut().filter(|r| r.attempt == attempt) else { return };
        // The key has fired: it must not be removed again.
        running.timer = None;
        if entry.spec.output.is_ready() {
            // It succeeded just in time; its `Finished` message is on the way.
            return;
        }
        let Some(timeout) = entry.spec.options.timeout else { return };
        let Some(running) = entry.take_running() else { return };
        if let Some(record) = entry.attempts_mut().iter_mut().rev().find(|a| a.number == attempt) {
            record.ended = Some(self.books.now);
            record.outcome = AttemptOutcome::Failed(Box::new(TaskError::TimedOut { timeout }));
        }
        self.stop_attempt(task, running, false);
        self.attempt_failed(task, TaskError::TimedOut { timeout });
    }

    /// Stops a running attempt the manager gives up on: an async body is
    /// dropped; a plain body cannot be interrupted, so it is abandoned and keeps
    /// its resources until it returns.
    pub(super) fn stop_attempt(&mut self, task: TaskId, running: Running, cancelled: bool) {
        if let Some(timer) = &running.timer {
            self.books.timers.try_remove(timer);
        }
        if let Some(flag) = &running.abandon {
            flag.store(true, Ordering::Release);
        }
        match running.abort {
            Some(abort) => {
                abort.abort();
                self.books.scheduler.release(running.held);
            }
            None => self.abandoned.entry(task).or_default().push(Abandoned {
                attempt: running.attempt,
                held: running.held,
                cancelled,
                worker: running.worker,
            }),
        }
    }

    /// Cancels a task and everything it submitted.
    pub(super) fn cancel(&mut self, task: TaskId) {
        self.end_tree(task, TaskState::Cancelled, |entry| Error::Cancelled { origin: entry.spec.origin() });
    }

    /// A deterministic run can make no progress: every unfinished task fails
    /// with a deadlock report naming them all. Returns how many there were.
    pub(super) fn deadlocked(&mut self, seed: u64) -> usize {
        let mut waiting: Vec<(TaskId, String)> = self
            .tasks
            .values()
            .map(|entry| {
                let spec = &entry.spec;
                let name = spec.options.name.as_deref().map(|name| format!(" \"{name}\"")).unwrap_or_default();
                (spec.id, format!("{}{name} ({}, {})", spec.id, spec.function, entry.state))
            })
            .collect();
        waiting.sort_unstable_by_key(|(task, _)| *task);
        let names: Vec<String> = waiting.iter().map(|(_, name)| name.clone()).collect();
        let error = crate::deterministic::deadlock(seed, &names);
        if !names.is_empty() {
            tracing::error!("{error}");
        }
        for (task, _) in &waiting {
            self.end_tree(*task, TaskState::Failed, |_| error.clone());
        }
        waiting.len()
    }

    /// Ends `task` and everything it submitted, stopping attempts that run,
    /// in `state` with the error `error` gives for each.
    fn end_tree(&mut self, task: TaskId, state: TaskState, error: impl Fn(&Entry) -> Error) {
        let mut stack = vec![task];
        while let Some(task) = stack.pop() {
            let Some(mut entry) = self.tasks.remove(&task) else { continue };
            stack.extend(entry.take_children());
            if let Some(seq) = entry.queued_seq.take() {
                self.books.scheduler.forget(seq);
            }
            if let Some(worker) = entry.take_assigned()
                && self.workers.retract(worker, task).is_some()
            {
                // Taken back before it started: that attempt never ran.
                entry.unprepare_attempt();
            }
            if let TaskKind::ActorMethod { actor } = entry.kind()
                && entry.running().is_some()
                && self.actors.retract(actor, task)
            {
                // Still waiting in the actor's slot: it never started.
                entry.take_running();
                entry.unprepare_attempt();
                entry.attempts_mut().pop();
            }
            if let Some(running) = entry.take_running() {
                let outcome = match state {
                    TaskState::Cancelled => AttemptOutcome::Cancelled,
                    _ => AttemptOutcome::Failed(Box::new(TaskError::Error(error(&entry)))),
                };
                if let Some(record) = entry.attempts_mut().iter_mut().rev().find(|a| a.number == running.attempt) {
                    record.ended = Some(self.books.now);
                    record.outcome = outcome;
                }
                self.stop_attempt(task, running, true);
            }
            let error = error(&entry);
            self.finalize(entry, state, Some(error));
        }
    }

    /// Ends a task: writes `error` (if any) to its output, keeps its record,
    /// and queues its output for its dependents.
    pub(super) fn finalize(&mut self, mut entry: Box<Entry>, state: TaskState, error: Option<Error>) {
        let kind = entry.kind();
        if entry.routed {
            self.unroute(&mut entry);
        }
        let reason = error.as_ref().map(ToString::to_string);
        if let Some(error) = error {
            entry.spec.output.complete(Err(error));
        }
        self.books.set_state(&mut entry, state);
        self.resolved.push(entry.spec.output.id());
        let (task, function, attempts) = (entry.spec.id, entry.spec.function, entry.started_attempts());
        self.books.records.emit(self.books.now, || match state {
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
        if self.books.records.keeps_finished() {
            let record = entry.take_record(self.books.now);
            self.books.records.keep(record);
        } else {
            // Nothing would keep the record: only its counts are taken.
            self.books.records.count_finished(function, state);
        }
        self.remains.push(entry);
    }

    /// Fails everything unfinished with a shutdown error.
    pub(super) fn shutdown(&mut self) {
        self.shut_down = true;
        self.workers.close_all();
        // Every unfinished task, actor calls and creations included, fails
        // with the shutdown error; then the actors end.
        let entries: Vec<Box<Entry>> = self.tasks.drain().collect();
        for mut entry in entries {
            if let Some(running) = entry.take_running()
                && let Some(abort) = running.abort
            {
                abort.abort();
            }
            self.finalize(entry, TaskState::Cancelled, Some(Error::RuntimeShutdown));
        }
        self.end_all_actors();
        self.waiting.clear();
        self.resolved.clear();
        self.books.timers.clear();
        self.abandoned.clear();
        // Subscribers have seen everything: their streams end.
        self.books.records.events.close();
    }
}

/// A delay drawn uniformly between half of `delay` and all of it.
/// On a deterministic run, the draw comes from the run's seed.
fn jitter(delay: Duration, det: Option<&crate::deterministic::Det>) -> Duration {
    let draw = match det {
        Some(det) => det.fraction(),
        None => fastrand::f64(),
    };
    delay.mul_f64(0.5 + draw * 0.5)
}
