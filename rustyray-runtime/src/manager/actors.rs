//! Actors in the task manager: their lifecycle
//! (`PENDING -> ALIVE -> RESTARTING -> ALIVE | DEAD`) and the line of calls
//! each one keeps.
//!
//! An actor's creation task goes through the scheduler like any task (it may
//! hold resources for the actor's life); its method calls do not: each call
//! joins its actor's line when submitted, and calls are released to the
//! actor's slot strictly in that order, a call whose inputs are not ready
//! holding up the ones behind it. Calls from one caller therefore start in
//! the order they were made.
//!
//! A panic in a method is a crash. The calls that had not started wait; the
//! calls in flight are retried (up to `max_task_retries`) or failed; then the
//! actor is rebuilt from its constructor arguments if `max_restarts` allows,
//! or it is dead and every waiting and later call fails with
//! [`Error::ActorDied`].

use std::collections::VecDeque;

use rustc_hash::FxHashSet;
use rustyray_core::{ActorConfig, ActorId, ActorInstance, Attempt, DeathReason, Error, TaskError, TaskId, TaskKind};

use super::books::RunsOn;
use super::core::Core;
use crate::actor::{ActorEntry, ActorSlot};
use crate::events::EventKind;
use crate::executor::Exec;
use crate::protocol::Finished;
use crate::scheduler::Held;
use crate::state::{ActorState, AttemptOutcome, TaskState};
use crate::task::{Entry, Start};

impl Core {
    /// A new actor: record it and submit its creation task (already failed
    /// with `rejected` if it cannot exist, e.g. its name is taken).
    pub(super) fn create_actor(
        &mut self,
        exec: &Exec,
        mut entry: Box<Entry>,
        config: ActorConfig,
        rejected: Option<Error>,
    ) {
        let id = config.id;
        // Listed by the runtime handle unless the actor was rejected; a
        // rejected actor's slot never runs anything.
        let slot = self.directory.slot(id).unwrap_or_else(|| ActorSlot::new(id, &config.options, entry.holds_cpus()));
        let actor = ActorEntry {
            constructor: entry.spec.body.clone(),
            creation: entry.spec.id,
            created: entry.spec.output.clone(),
            config,
            state: ActorState::Pending,
            restarts: 0,
            slot,
            waiting: VecDeque::new(),
            released: FxHashSet::default(),
            held: None,
            orphaned: false,
            death: None,
        };
        self.actors.creations.insert(entry.spec.id, id);
        self.actors.live.insert(id, actor);
        if let Some(error) = rejected {
            entry.spec.options.set_invalid(error);
        }
        self.submit(exec, entry);
    }

    /// A method call was submitted: it joins its actor's line, or fails if
    /// the actor is gone. Returns the error to fail it with.
    pub(super) fn join_line(&mut self, actor: ActorId, task: TaskId) -> Option<Error> {
        let error = self.actor_gone(actor);
        if error.is_none()
            && let Some(entry) = self.actors.live.get_mut(&actor)
        {
            entry.waiting.push_back(task);
        }
        error
    }

    /// Why calls to `actor` fail, if it is dead or gone.
    fn actor_gone(&self, actor: ActorId) -> Option<Error> {
        match self.actors.live.get(&actor) {
            Some(entry) if entry.state != ActorState::Dead => None,
            Some(entry) => Some(entry.died()),
            None => Some(match self.actors.dead.iter().rev().find(|info| info.id == actor) {
                Some(info) => Error::ActorDied {
                    actor,
                    class: info.class,
                    reason: info.death.clone().unwrap_or(DeathReason::NotAlive),
                },
                None => Error::ActorDied { actor, class: "unknown", reason: DeathReason::Gone },
            }),
        }
    }

    /// The creation task of an actor was released by the scheduler: it runs
    /// on the actor's slot, holding `held` for the actor's life.
    pub(super) fn start_creation(&mut self, exec: &Exec, actor: ActorId, task: TaskId, held: Held) {
        let Some(entry) = self.tasks.get_mut(&task) else { return };
        let mut start = entry.prepare_attempt();
        if self.actors.live.get(&actor).is_some_and(|a| a.config.options.max_restarts > 0) {
            // The constructor arguments are kept to rebuild the actor after a crash.
            start.attempt.last = false;
        }
        self.books.mark_running(entry, Held::default(), self.books.now, RunsOn::Spawned);
        let mut held = held;
        // An actor holds its resources while it lives; it does not count as a
        // task in flight.
        self.books.scheduler.uncount(&mut held);
        match self.actors.live.get_mut(&actor) {
            Some(entry) => {
                entry.held = Some(held);
                entry.slot.push(exec, start);
                // Calls that waited for the constructor go in after it.
                self.books.woken_actors.push(actor);
            }
            None => self.books.scheduler.release(held),
        }
    }

    /// Releases, for every woken actor, the calls at the front of its line
    /// whose inputs are ready, in order.
    pub(super) fn pump_actors(&mut self, exec: &Exec) {
        let mut woken = std::mem::take(&mut self.books.woken_actors);
        woken.sort_unstable();
        woken.dedup();
        for actor in woken {
            self.pump(exec, actor);
        }
        for (actor, name) in std::mem::take(&mut self.actors.buried) {
            self.directory.forget(actor, name.as_deref());
        }
    }

    fn pump(&mut self, exec: &Exec, actor: ActorId) {
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        if entry.state == ActorState::Dead {
            return;
        }
        // A constructor still waiting (for its arguments, or for resources)
        // is not in the slot yet: calls released now would run before it,
        // on no state. They wait in the line; its start wakes the line.
        let unbuilt = entry.state == ActorState::Pending
            && self.tasks.get(&entry.creation).is_some_and(|c| c.running().is_none());
        let mut starts = Vec::new();
        let mut unrouted = 0;
        while let Some(&task) = entry.waiting.front().filter(|_| !unbuilt) {
            let Some(call) = self.tasks.get_mut(&task) else {
                entry.waiting.pop_front();
                continue;
            };
            if call.state != TaskState::Queued || call.running().is_some() {
                break;
            }
            entry.waiting.pop_front();
            let mut start = call.prepare_attempt();
            // Arguments are kept for the retries a crash may call for.
            start.attempt.last = call.started_attempts() > entry.config.options.max_task_retries;
            starts.push(start);
            if std::mem::take(&mut call.routed) {
                unrouted += 1;
            }
            self.books.mark_running(call, Held::default(), self.books.now, RunsOn::Spawned);
            entry.released.insert(task);
        }
        // Callers may leave calls in the slot themselves while the line is empty.
        let direct = entry.state == ActorState::Alive && entry.waiting.is_empty();
        entry.slot.release(exec, starts, unrouted, Some(direct));
        if entry.orphaned
            && entry.waiting.is_empty()
            && entry.released.is_empty()
            && entry.slot.unannounced.count() == 0
        {
            self.end_actor(actor, DeathReason::HandlesDropped);
        }
    }

    /// A method call its caller left in the actor's slot: it runs already
    /// (or waits there behind earlier calls), so it skips the line.
    pub(super) fn submit_direct(&mut self, entry: Box<Entry>) {
        let TaskKind::ActorMethod { actor } = entry.kind() else { return };
        // The actor was ended meanwhile: the slot was emptied, and the call
        // failed then, or fails now.
        if let Some(error) = self.actor_gone(actor) {
            return self.finalize(entry, TaskState::Failed, Some(error));
        }
        self.run_direct(entry);
    }

    /// A direct call that came with its entry (see `actor::direct`), which
    /// the actor's thread took to run: it runs, whatever became of the
    /// actor since (as a call that started before a kill does).
    pub(super) fn announce_started(&mut self, mut entry: Box<Entry>) {
        self.heard_of(&entry);
        self.take_in(&mut entry, self.books.now);
        if self.shut_down {
            // As for every call that ran when the runtime shut down.
            return self.finalize(entry, TaskState::Cancelled, Some(Error::RuntimeShutdown));
        }
        self.run_direct(entry);
    }

    /// A direct call that came with its entry and ended before the manager
    /// heard of it (see `actor::direct`). The usual case, a call that
    /// succeeded, goes straight to its record: the same books, events and
    /// record as a call through the table, without a place in it. The rest
    /// (a failure, which may be retried; a cancellation; a call some task
    /// made, whose parent may have been cancelled) take the usual path.
    pub(super) fn ran_direct(&mut self, mut entry: Box<Entry>, finished: Finished) {
        let cancelled = matches!(entry.spec.output.try_get(), Some(Err(error)) if error.is_cancelled());
        if finished.outcome.is_err()
            || cancelled
            || finished.attempt != entry.started_attempts()
            || entry.spec.parent().is_some()
            || self.shut_down
        {
            self.announce_started(entry);
            return self.finished(finished);
        }
        self.heard_of(&entry);
        let Finished { started, ended, .. } = finished;
        // Its caller left it before it started: that is the best time known
        // for its submission.
        self.take_in(&mut entry, started.min(self.books.now));
        self.books.set_state(&mut entry, TaskState::Queued);
        entry.mark_queued(entry.submitted);
        self.books.mark_running(&mut entry, Held::default(), started, RunsOn::Spawned);
        entry.take_running();
        let run_time = ended.saturating_duration_since(started);
        self.books.records.attempt_ran(run_time);
        if let Some(function) = self.books.records.functions.of(entry.spec.function) {
            function.run_time.observe(run_time);
        }
        if let Some(record) = entry.attempts_mut().last_mut() {
            record.ended = Some(ended);
            record.outcome = AttemptOutcome::Succeeded;
        }
        self.finalize(entry, TaskState::Succeeded, None);
    }

    /// A direct call that came with its entry, taken back from the actor's
    /// slot before it started (a crash, a kill): from here on it is a call
    /// the manager knows, as if its caller had told it.
    ///
    /// It waits in the table, not running: a crash puts it back in the
    /// line, a kill fails it.
    fn announce_waiting(&mut self, mut entry: Box<Entry>) {
        self.heard_of(&entry);
        self.take_in(&mut entry, self.books.now);
        let id = entry.spec.id;
        let TaskKind::ActorMethod { actor } = entry.kind() else { return };
        if let Some(error) = self.actor_gone(actor) {
            return self.finalize(entry, TaskState::Failed, Some(error));
        }
        if let Some(parent) = entry.spec.parent()
            && let Some(parent) = self.tasks.get_mut(&parent)
        {
            parent.history().children.push(id);
        }
        self.books.set_state(&mut entry, TaskState::Queued);
        let parent_cancelled = self.parent_cancelled(&entry.spec);
        self.tasks.insert(entry);
        if parent_cancelled {
            self.cancel(id);
        }
    }

    /// The manager hears of a direct call that came with its entry: it no
    /// longer counts as on its way (for `wait_idle`, and for its actor,
    /// which does not end for dropped handles while such a call is out).
    fn heard_of(&mut self, entry: &Entry) {
        self.directory.unannounced.heard();
        if let TaskKind::ActorMethod { actor } = entry.kind()
            && let Some(live) = self.actors.live.get(&actor)
        {
            live.slot.unannounced.heard();
        }
    }

    /// A direct call runs: its state, its actor's books and its parent's.
    fn run_direct(&mut self, mut entry: Box<Entry>) {
        let id = entry.spec.id;
        let TaskKind::ActorMethod { actor } = entry.kind() else { return };
        if let Some(parent) = entry.spec.parent()
            && let Some(parent) = self.tasks.get_mut(&parent)
        {
            parent.history().children.push(id);
        }
        self.books.set_state(&mut entry, TaskState::Queued);
        self.books.mark_running(&mut entry, Held::default(), self.books.now, RunsOn::Spawned);
        if let Some(live) = self.actors.live.get_mut(&actor) {
            live.released.insert(id);
        }
        let parent_cancelled = self.parent_cancelled(&entry.spec);
        self.tasks.insert(entry);
        if parent_cancelled {
            self.cancel(id);
        }
    }

    /// A call counted as on its way through the manager's line ended before
    /// it was released: direct calls need not wait for it any more.
    pub(super) fn unroute(&mut self, call: &mut Entry) {
        call.routed = false;
        if let TaskKind::ActorMethod { actor } = call.kind()
            && let Some(live) = self.actors.live.get(&actor)
        {
            live.slot.unroute();
        }
    }

    /// A call of `actor` ended (however), so it no longer counts as pending.
    pub(super) fn call_ended(&mut self, actor: ActorId, task: TaskId) {
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        let was_waiting = !entry.released.remove(&task)
            && match entry.waiting.iter().position(|t| *t == task) {
                Some(index) => entry.waiting.remove(index).is_some(),
                None => false,
            };
        // The line moves if its front went, and an orphan may now be done.
        if was_waiting || entry.orphaned {
            self.books.woken_actors.push(actor);
        }
        if entry.state == ActorState::Dead {
            self.retire(actor);
        }
    }

    /// The creation task ended: the actor is alive, or dead with its error.
    pub(super) fn creation_ended(&mut self, actor: ActorId, state: TaskState, error: Option<String>) {
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        if state == TaskState::Succeeded {
            entry.state = ActorState::Alive;
            self.books.woken_actors.push(actor);
            tracing::debug!(actor = %actor, class = entry.config.class, "actor alive");
            let (class, name) = (entry.config.class, &entry.config.options.name);
            self.books.records.emit(self.books.now, || EventKind::ActorStarted { actor, class, name: name.clone() });
        } else {
            self.end_actor(actor, DeathReason::NeverBuilt { error });
        }
    }

    /// A construction that rebuilds a crashed actor ended.
    pub(super) fn rebuilt(&mut self, actor: ActorId, outcome: &Result<(), Box<TaskError>>) {
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        if entry.state != ActorState::Restarting {
            return;
        }
        match outcome {
            Ok(()) => {
                entry.state = ActorState::Alive;
                // The line may now allow direct calls again.
                self.books.woken_actors.push(actor);
                let (class, restarts) = (entry.config.class, entry.restarts);
                tracing::info!(actor = %actor, class, restarts, "actor restarted");
                match self.actors.restarts.iter_mut().find(|(c, _)| *c == class) {
                    Some((_, count)) => *count += 1,
                    None => self.actors.restarts.push((class, 1)),
                }
                self.books.records.emit(self.books.now, || EventKind::ActorRestarted { actor, class, restarts });
            }
            Err(error) => self.end_actor(actor, DeathReason::RebuildFailed { error: error.to_string() }),
        }
    }

    /// The actor a creation task built, if `task` is one whose entry is gone
    /// (a restart's construction reports under the original creation task).
    pub(super) fn rebuilding(&self, task: TaskId) -> Option<ActorId> {
        if self.tasks.contains_key(&task) {
            return None;
        }
        self.actors.creations.get(&task).copied()
    }

    /// A method of `actor` panicked: the actor lost its state (and the calls
    /// in flight, `lost`). Restart it if allowed, else it is dead. The
    /// culprit may be a call cancelled while it ran (its entry gone): the
    /// actor is named by its thread, not looked up through the call.
    pub(super) fn actor_crashed(&mut self, exec: &Exec, actor: ActorId, culprit: Finished, lost: Vec<(TaskId, u32)>) {
        let reason = DeathReason::Crashed { error: culprit.outcome.as_ref().err().map(|error| error.to_string()) };
        self.finished(culprit);
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        if entry.state == ActorState::Dead {
            return;
        }
        tracing::warn!(actor = %actor, class = entry.config.class, "actor crashed: {reason}");
        let max_task_retries = entry.config.options.max_task_retries;
        let can_restart = entry.restarts < entry.config.options.max_restarts;
        // Calls that had not started go back to the front of the line
        // (direct calls the manager had not heard of are counted in first).
        let mut back: Vec<TaskId> = Vec::new();
        let mut waiting = entry.slot.take_waiting();
        for start in &mut waiting {
            if let Some(call) = start.unannounced.take() {
                self.announce_waiting(call);
            }
        }
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        for start in waiting {
            entry.released.remove(&start.task);
            if let Some(call) = self.tasks.get_mut(&start.task) {
                call.take_running();
                call.unprepare_attempt();
                call.attempts_mut().pop();
                self.books.set_state(call, TaskState::Queued);
                back.push(start.task);
            }
        }
        // Calls in flight died with the state: retried if allowed, else failed.
        let mut retried = Vec::new();
        let died = Error::ActorDied { actor, class: entry.config.class, reason: reason.clone() };
        for (task, _) in &lost {
            entry.released.remove(task);
        }
        for (task, attempt) in lost {
            let Some(call) = self.tasks.get_mut(&task) else {
                // Cancelled while it ran: its attempt was given up on, and
                // ends here, giving back what it held.
                if let Some(abandoned) = self.take_abandoned(task, attempt) {
                    self.books.scheduler.release(abandoned.held);
                }
                continue;
            };
            if call.running().is_none_or(|r| r.attempt != attempt) {
                continue;
            }
            call.take_running();
            if let Some(record) = call.attempts_mut().iter_mut().rev().find(|a| a.number == attempt) {
                record.ended = Some(self.books.now);
                record.outcome = AttemptOutcome::Failed(Box::new(TaskError::Error(died.clone())));
            }
            if can_restart && call.started_attempts() <= max_task_retries {
                self.books.set_state(call, TaskState::Queued);
                self.books.records.count_retry(call.spec.function);
                retried.push(task);
            } else if let Some(call) = self.tasks.remove(&task) {
                self.finalize(call, TaskState::Failed, Some(died.clone()));
            }
        }
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        if !can_restart {
            entry.death = Some(reason.clone());
            for task in retried.into_iter().chain(back) {
                entry.waiting.push_front(task);
            }
            self.end_actor(actor, reason);
            return;
        }
        entry.restarts += 1;
        entry.state = ActorState::Restarting;
        for task in retried.into_iter().chain(back).rev() {
            entry.waiting.push_front(task);
        }
        let rebuild = Start {
            task: entry.creation,
            attempt: Attempt { number: entry.restarts + 1, last: entry.restarts == entry.config.options.max_restarts },
            body: entry.constructor.clone(),
            output: entry.created.clone(),
            releases_on_wait: false,
            abandon: None,
            lookahead: false,
            timed: false,
            unannounced: crate::task::Unannounced::NONE,
            span: tracing::info_span!(target: "rustyray::task", parent: None, "actor_restart", actor = %actor, attempt = entry.restarts + 1),
        };
        entry.slot.push(exec, rebuild);
        entry.slot.resume(exec);
        self.books.woken_actors.push(actor);
    }

    /// The last handle to an unnamed actor was dropped: it ends once its line is empty.
    pub(super) fn orphan_actor(&mut self, actor: ActorId) {
        if let Some(entry) = self.actors.live.get_mut(&actor) {
            entry.orphaned = true;
            self.books.woken_actors.push(actor);
        }
    }

    /// A call of `actor` opened a wait for objects: the CPUs the actor holds
    /// are given back while any of its calls waits, as a plain task's are.
    pub(super) fn actor_call_blocked(&mut self, actor: ActorId, task: TaskId) {
        let waits = self.actors.waiting_calls.entry(task).or_insert((actor, 0));
        waits.1 += 1;
        if waits.1 == 1
            && let Some(held) = self.actors.live.get_mut(&actor).and_then(|entry| entry.held.as_mut())
        {
            self.books.scheduler.block(held);
        }
    }

    /// A wait of an actor call ended; returns whether `task` is such a call.
    /// The actor takes its CPUs back once none of its calls waits.
    pub(super) fn actor_call_unblocked(&mut self, task: TaskId) -> bool {
        let Some((actor, waits)) = self.actors.waiting_calls.get_mut(&task) else { return false };
        *waits -= 1;
        if *waits > 0 {
            return true;
        }
        let actor = *actor;
        self.actors.waiting_calls.remove(&task);
        // An actor that ended meanwhile gave back all it held then.
        if let Some(held) = self.actors.live.get_mut(&actor).and_then(|entry| entry.held.as_mut()) {
            self.books.scheduler.unblock(held);
        }
        true
    }

    /// Ends an actor now: calls that have not started fail.
    pub(super) fn kill_actor(&mut self, actor: ActorId) {
        self.end_actor(actor, DeathReason::Killed);
    }

    /// The actor is dead: calls still waiting fail, its state goes, it lets go
    /// of its resources and its name.
    fn end_actor(&mut self, actor: ActorId, reason: DeathReason) {
        let Some(entry) = self.actors.live.get_mut(&actor) else { return };
        if entry.state == ActorState::Dead {
            return;
        }
        entry.state = ActorState::Dead;
        entry.death.get_or_insert(reason);
        let died = entry.died();
        let mut doomed: Vec<TaskId> = entry.waiting.drain(..).collect();
        // A constructor not yet started (its arguments pending, or waiting
        // for CPUs) never will be: `ready()` fails now, not never.
        if self.tasks.get(&entry.creation).is_some_and(|creation| creation.running().is_none()) {
            doomed.push(entry.creation);
        }
        let (waiting, state) = entry.slot.kill();
        self.actors.dead_states.extend(state);
        let mut unannounced = Vec::new();
        for mut start in waiting {
            entry.released.remove(&start.task);
            // A direct call the manager has not heard of yet fails here; its
            // late submission finds the actor dead.
            start.output.complete(Err(died.clone()));
            doomed.push(start.task);
            unannounced.extend(start.unannounced.take());
        }
        if let Some(held) = entry.held.take() {
            self.books.scheduler.release(held);
        }
        let name = entry.config.options.name.clone();
        tracing::info!(actor = %actor, class = entry.config.class, reason = entry.death.as_ref().map(tracing::field::display), "actor dead");
        let (class, reason) = (entry.config.class, entry.death.clone().unwrap_or(DeathReason::NotAlive));
        self.actors.died += 1;
        self.books.records.emit(self.books.now, || EventKind::ActorDied { actor, class, reason });
        // Calls that came with their entries: counted in, and failed as the
        // actor is dead.
        for call in unannounced {
            self.announce_waiting(call);
        }
        for task in doomed {
            if let Some(mut call) = self.tasks.remove(&task) {
                call.take_running();
                self.finalize(call, TaskState::Failed, Some(died.clone()));
            }
        }
        self.actors.buried.push((actor, name));
        self.retire(actor);
    }

    /// Moves a dead actor to the records once nothing of it runs.
    fn retire(&mut self, actor: ActorId) {
        let Some(entry) = self.actors.live.get(&actor) else { return };
        if entry.state != ActorState::Dead || !entry.released.is_empty() {
            return;
        }
        if let Some(entry) = self.actors.live.remove(&actor) {
            self.actors.creations.remove(&entry.creation);
            if self.actors.keep_dead > 0 {
                if self.actors.dead.len() >= self.actors.keep_dead {
                    self.actors.dead.pop_front();
                }
                self.actors.dead.push_back(entry.info());
            }
            // The constructor may hold its arguments (kept for restarts):
            // their `Drop` is the user's, so they go with the dead states,
            // dropped outside the lock.
            self.actors.dead_states.push(Box::new(entry.constructor));
        }
    }

    /// The states of the actors that ended while idle since the last call,
    /// for the manager to drop once it has released its lock: a state's
    /// `Drop` is the user's code, and may call back into the runtime.
    pub(super) fn take_dead_states(&mut self) -> Vec<ActorInstance> {
        std::mem::take(&mut self.actors.dead_states)
    }

    /// Kills every actor (shutdown).
    pub(super) fn end_all_actors(&mut self) {
        let ids: Vec<ActorId> = self.actors.live.keys().copied().collect();
        for actor in ids {
            self.end_actor(actor, DeathReason::RuntimeShutDown);
        }
    }
}
