//! Delayed tasks: `f::options().run_after(d)` / `.run_at(t)` in process.
//!
//! A task given a start time in the future is held in the manager's timer
//! queue ([`Timer::Release`]) in state [`TaskState::Delayed`]: no tokio
//! task and no thread sleeps for it. When its time comes it goes on as any
//! new task does, waiting for its arguments and then for its turn. Held, it
//! is an ordinary entry of the task table: `tasks()` shows it, `cancel`
//! removes it (its timer then finds nothing and does nothing), shutdown
//! fails it. The delay counts from submission; a start time already past
//! means at once.

use std::time::{Duration, SystemTime};

use rustyray_core::{RunAt, TaskId};

use super::Timer;
use super::core::Core;
use crate::executor::Exec;
use crate::state::TaskState;
use crate::task::Entry;

/// How long a new task with start time `run_at` is held before it may
/// start, `now` being the wall-clock time; `None` to go on at once.
pub(super) fn start_delay(run_at: Option<RunAt>, now: impl FnOnce() -> SystemTime) -> Option<Duration> {
    let delay = match run_at? {
        RunAt::After(delay) => delay,
        RunAt::At(at) => at.duration_since(now()).unwrap_or(Duration::ZERO),
    };
    (!delay.is_zero()).then_some(delay)
}

impl Core {
    /// The wall-clock time now: the system's, or on a deterministic run the
    /// virtual clock's, so start times given with `run_at` replay alike.
    pub(super) fn wall_now(&self) -> SystemTime {
        if self.det.is_some() { self.clock.wall(self.books.now) } else { SystemTime::now() }
    }

    /// Holds a new task until `delay` has passed.
    pub(super) fn hold(&mut self, mut entry: Box<Entry>, delay: Duration) {
        let task = entry.spec.id;
        self.books.set_state(&mut entry, TaskState::Delayed);
        self.books.timers.insert(Timer::Release { task }, delay);
        self.tasks.insert(entry);
    }

    /// A held task's start time came: it waits for its inputs now (unless
    /// it was cancelled meanwhile).
    pub(super) fn release(&mut self, exec: &Exec, task: TaskId) {
        if self.tasks.get(&task).is_none_or(|entry| entry.state != TaskState::Delayed) {
            return;
        }
        let Some(mut entry) = self.tasks.remove(&task) else { return };
        self.books.set_state(&mut entry, TaskState::PendingArgs);
        self.await_inputs(exec, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_time_becomes_a_delay() {
        assert_eq!(
            start_delay(Some(RunAt::After(Duration::from_secs(3))), SystemTime::now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(start_delay(Some(RunAt::After(Duration::ZERO)), SystemTime::now), None, "no delay means at once");
        assert_eq!(start_delay(None, SystemTime::now), None);

        let past = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(start_delay(Some(RunAt::At(past)), SystemTime::now), None, "a past start time means at once");

        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(start_delay(Some(RunAt::At(later)), SystemTime::now).is_some_and(|d| d > Duration::from_secs(3000)));
    }
}
