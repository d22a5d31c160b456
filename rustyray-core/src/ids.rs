//! Identifiers for tasks, objects, actors and remote functions.
//!
//! Task, object and actor ids are drawn from one process-wide counter, so an id
//! is unique across every runtime living in the process. Each thread takes ids
//! in blocks to keep the shared counter off the submission hot path. A task's
//! output object carries the task's own number ([`TaskId::output`]), so the
//! two never need a lookup table to find each other.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How many ids a thread reserves from the shared counter at once.
const BLOCK: u64 = 1024;

static NEXT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The thread's reserved range: next id to hand out, end (exclusive).
    static RESERVED: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Where the ids of a thread under [`ThreadIds`] start: above every number
/// the process-wide counter will reach, below the bits of a result's element.
const SCOPED_BASE: u64 = 1 << 47;

/// While alive, this thread draws its ids from a range of its own, starting
/// afresh at the same number each time one is made, instead of from the
/// process-wide counter; dropping it gives the thread its former range back.
///
/// A deterministic run uses it so that a replay hands out the same ids as
/// the run it replays. Ids drawn under two such guards may be equal: objects
/// and tasks of two such runs must not meet (the run's runtime is shut down
/// when it ends, so they do not).
#[derive(Debug)]
#[must_use = "the thread's own range ends when the guard is dropped"]
pub struct ThreadIds {
    saved: (u64, u64),
}

impl ThreadIds {
    /// Starts this thread's own range of ids.
    pub fn start() -> Self {
        let saved = RESERVED.with(|reserved| reserved.replace((SCOPED_BASE + 1, (1 << PART_SHIFT) - 1)));
        ThreadIds { saved }
    }
}

impl Drop for ThreadIds {
    fn drop(&mut self) {
        RESERVED.with(|reserved| reserved.set(self.saved));
    }
}

/// Returns a fresh process-unique number.
fn next_raw() -> u64 {
    RESERVED.with(|reserved| {
        let (next, end) = reserved.get();
        if next < end {
            reserved.set((next + 1, end));
            next
        } else {
            let start = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
            reserved.set((start + 1, start + BLOCK));
            start
        }
    })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Draws a fresh, process-unique id.
            pub fn next() -> Self {
                Self(next_raw())
            }

            /// The id's number.
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// Rebuilds an id from its number (as read back from storage or the wire).
            pub const fn from_u64(raw: u64) -> Self {
                Self(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, " #{}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

id_type!(
    /// Identifies one task: a remote function call, an actor creation or an actor method call.
    TaskId,
    "task"
);
id_type!(
    /// Identifies one object in an object store: a task's output or a value given to `put`.
    ObjectId,
    "object"
);
id_type!(
    /// Identifies one actor.
    ActorId,
    "actor"
);

/// Where in an object id the element number of a task's multiple results
/// sits: above every number the counter will hand out, so an element's id
/// still carries its task's number in the bits below.
const PART_SHIFT: u32 = 48;

impl TaskId {
    /// The id of the object this task's result is stored under.
    pub const fn output(self) -> ObjectId {
        ObjectId(self.0)
    }

    /// The id of element `index` (0-based) of this task's multiple results
    /// (`#[remote(num_returns = n)]`): the task's number with the element's
    /// (1-based) in the high bits, so the producer is found without a table.
    pub const fn output_part(self, index: usize) -> ObjectId {
        ObjectId(self.0 | ((index as u64 + 1) << PART_SHIFT))
    }
}

impl ObjectId {
    /// The number of the task whose output (or element of it) this id names,
    /// when a task produces it.
    pub(crate) const fn task_number(self) -> u64 {
        self.0 & ((1 << PART_SHIFT) - 1)
    }
}

/// The stable name a remote function is registered under: `crate::module::function`.
///
/// Only the name crosses a process boundary; the code itself is found again by
/// name in the [registry](crate::registry).
///
/// One word: a reference to the name, which lives in a static (a constant
/// promoted by the compiler: `FunctionId::new(&"app::add")`), not the two
/// words of the `&str` itself. Every task, and every task's output object,
/// keeps one. Ids compare, order and hash by name.
///
/// ```
/// # use rustyray_core::FunctionId;
/// let add = FunctionId::new(&"app::add");
/// assert_eq!(add.name(), "app::add");
/// assert_eq!(add, FunctionId::new(&"app::add"));
/// assert_eq!(std::mem::size_of::<FunctionId>(), std::mem::size_of::<usize>());
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionId(&'static &'static str);

impl FunctionId {
    /// Wraps a registered name.
    pub const fn new(name: &'static &'static str) -> Self {
        Self(name)
    }

    /// The registered name.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FunctionId({})", self.0)
    }
}

#[cfg(test)]
mod scoped_tests {
    use super::*;

    #[test]
    fn a_thread_range_starts_afresh_and_gives_the_old_range_back() {
        let before = TaskId::next().as_u64();
        let first: Vec<u64> = {
            let _ids = ThreadIds::start();
            (0..3).map(|_| TaskId::next().as_u64()).collect()
        };
        let again: Vec<u64> = {
            let _ids = ThreadIds::start();
            (0..3).map(|_| TaskId::next().as_u64()).collect()
        };
        assert_eq!(first, again);
        assert_eq!(TaskId::next().as_u64(), before + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_across_threads() {
        let handles: Vec<_> =
            (0..4).map(|_| std::thread::spawn(|| (0..5000).map(|_| TaskId::next()).collect::<Vec<_>>())).collect();
        let mut seen = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(seen.insert(id), "{id} handed out twice");
            }
        }
        assert_eq!(seen.len(), 20_000);
    }

    #[test]
    fn task_output_shares_the_number() {
        let t = TaskId::next();
        assert_eq!(t.output().as_u64(), t.as_u64());
        assert_eq!(t.to_string(), format!("task #{}", t.as_u64()));
    }

    #[test]
    fn result_elements_keep_the_task_number() {
        let t = TaskId::next();
        let parts = [t.output_part(0), t.output_part(1), t.output_part(11)];
        for part in parts {
            assert_ne!(part, t.output());
            assert_eq!(part.task_number(), t.as_u64());
        }
        assert_ne!(parts[0], parts[1]);
        assert_eq!(t.output().task_number(), t.as_u64());
    }
}
