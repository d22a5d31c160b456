//! Dependencies: which tasks wait for which objects, and releasing (or
//! failing) them once an object is written.

use std::sync::Arc;

use rustyray_core::{ObjectCell, TaskId};
use smallvec::SmallVec;

use super::core::Core;
use super::core::final_state;
use crate::state::TaskState;

/// Tasks waiting for one object.
pub(super) struct Waiters {
    pub(super) cell: Arc<ObjectCell>,
    pub(super) tasks: SmallVec<[TaskId; 2]>,
}

impl Core {
    pub(super) fn owns(&self, cell: &ObjectCell) -> bool {
        cell.owner().is_some_and(|owner| Arc::as_ptr(owner) as *const () as usize == self.owner)
    }

    /// Releases or fails the tasks waiting for objects that were just written.
    pub(super) fn drain_resolved(&mut self) {
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
                        if entry.resolve_one() {
                            self.books.enqueue(entry);
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
}
