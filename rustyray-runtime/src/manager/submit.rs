//! Submission: a new task is checked, counted, and either waits for its
//! inputs or joins the line (an actor call joins its actor's line).

use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;

use rustyray_core::{Error, ObjectCell, TaskKind};
use smallvec::smallvec;

use super::core::Core;
use super::core::final_state;
use super::dependencies::Waiters;
use crate::events::EventKind;
use crate::executor::Exec;
use crate::protocol::Msg;
use crate::state::TaskState;
use crate::task::Entry;

impl Core {
    /// Why a new task cannot even wait: bad options, impossible demands, an
    /// unknown queue, a cancelled parent, a stopped runtime.
    pub(super) fn rejection(&self, entry: &mut Entry) -> Option<Error> {
        if let Some(invalid) = entry.spec.options.take_invalid() {
            return Some(*invalid);
        }
        if self.shut_down {
            return Some(Error::RuntimeShutdown);
        }
        let spec = &entry.spec;
        if let Err(short) = self.books.scheduler.feasible(&entry.demand()) {
            return Some(Error::Unschedulable {
                origin: spec.origin(),
                resource: short.resource,
                demand: short.demand,
                capacity: short.capacity,
            });
        }
        if let Some(queue) = &spec.options.queue
            && !self.books.scheduler.has_queue(queue)
        {
            return Some(Error::UnknownQueue {
                origin: spec.origin(),
                queue: queue.clone(),
                known: self.books.scheduler.queue_names(),
            });
        }
        if self.parent_cancelled(spec) {
            return Some(Error::Cancelled { origin: spec.origin() });
        }
        None
    }

    /// Whether the task that submitted `spec` was cancelled while its body ran on.
    pub(super) fn parent_cancelled(&self, spec: &crate::task::Spec) -> bool {
        spec.parent().is_some_and(|parent| {
            self.abandoned.get(&parent).is_some_and(|attempts| attempts.iter().any(|a| a.cancelled))
        })
    }

    /// Counts a new task in, submitted `at`: its submission time, its
    /// function's count, the event.
    pub(super) fn take_in(&mut self, entry: &mut Entry, at: std::time::Instant) {
        self.books.records.pending_args += 1;
        entry.submitted = crate::task::Stamp::of(at);
        if let Some(function) = self.books.records.functions.of(entry.spec.function) {
            function.submitted += 1;
        }
        let spec = &entry.spec;
        self.books.records.emit(at, || EventKind::TaskSubmitted {
            task: spec.id,
            function: spec.function,
            name: spec.options.name.clone(),
            parent: spec.parent(),
            args: spec.options.args().cloned(),
        });
    }

    pub(super) fn submit(&mut self, exec: &Exec, mut entry: Box<Entry>) {
        let id = entry.spec.id;
        self.take_in(&mut entry, self.books.now);
        if entry.direct {
            return self.submit_direct(entry);
        }
        if let Some(error) = self.rejection(&mut entry) {
            if let Some(function) = self.books.records.functions.of(entry.spec.function) {
                function.rejected(error.kind());
            }
            tracing::debug!(task = %id, function = %entry.spec.function, error = %error, "task refused");
            let state = final_state(&error);
            return self.finalize(entry, state, Some(error));
        }
        if let TaskKind::ActorMethod { actor } = entry.kind()
            && let Some(error) = self.join_line(actor, id)
        {
            return self.finalize(entry, TaskState::Failed, Some(error));
        }
        if let Some(parent) = entry.spec.parent()
            && let Some(parent) = self.tasks.get_mut(&parent)
        {
            parent.history().children.push(id);
        }
        if let Some(delay) = super::delayed::start_delay(entry.spec.options.take_run_at(), || self.wall_now()) {
            return self.hold(entry, delay);
        }
        self.await_inputs(exec, entry);
    }

    /// A submitted task waits for its inputs, or joins the line if it has none left to wait for.
    pub(super) fn await_inputs(&mut self, exec: &Exec, mut entry: Box<Entry>) {
        let id = entry.spec.id;
        let mut failed = None;
        let mut unresolved = 0;
        for cell in entry.spec.deps.as_slice() {
            match cell.try_get() {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    failed = Some(error.clone());
                    break;
                }
                None => {
                    unresolved += 1;
                    // An element of a multiple result is written just before
                    // its task's output: the output's write releases it.
                    match self.waiting.entry(cell.written_with()) {
                        MapEntry::Occupied(mut waiters) => waiters.get_mut().tasks.push(id),
                        MapEntry::Vacant(slot) => {
                            slot.insert(Waiters { cell: cell.clone(), tasks: smallvec![id] });
                            // Another runtime's object may be written since it
                            // was looked at: the watch then reports at once.
                            if !self.owns(cell) {
                                watch(exec, cell.clone());
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
        if unresolved == 0 {
            self.books.enqueue(&mut entry);
        } else {
            entry.set_unresolved(unresolved);
        }
        self.tasks.insert(entry);
    }
}

/// Forwards the readiness of another runtime's object to this manager.
fn watch(exec: &Exec, cell: Arc<ObjectCell>) {
    let sender = exec.sender().clone();
    exec.handle().spawn(async move {
        let _ = cell.ready().await;
        let _ = sender.send(Msg::ObjectReady(cell.written_with()));
    });
}
