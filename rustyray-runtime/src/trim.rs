//! Giving the allocator's free pages back after a burst of work.
//!
//! glibc's `malloc` keeps the pages of freed memory mapped: a heap can
//! only shrink from its top, and one small live chunk there pins every free
//! page beneath it. A runtime that held a million queued tasks (entries,
//! object cells, closures) therefore leaves hundreds of MiB resident after
//! every one of them is freed, although it holds a few MiB. When the last
//! object of a runtime is released, [`Trimmer`] asks glibc, on a thread of
//! its own and at most once a second, to return its free pages
//! (`malloc_trim`) if it keeps more than [`WORTH_TRIMMING`] bytes free.
//! With another allocator or on another platform it does nothing; it can be
//! turned off with [`Builder::trim_memory`](crate::Builder::trim_memory).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Free bytes the allocator must keep before a trim is worth its cost.
pub(crate) const WORTH_TRIMMING: usize = 16 << 20;

/// The least time between two trims, in milliseconds.
const INTERVAL_MS: u64 = 1000;

/// Decides when the allocator is asked for its free pages back.
#[derive(Debug)]
pub(crate) struct Trimmer {
    enabled: bool,
    origin: Instant,
    /// When the last trim was asked for, in milliseconds since `origin`
    /// plus [`INTERVAL_MS`] (so zero means never).
    last: AtomicU64,
}

impl Default for Trimmer {
    /// One that never trims (a store built without a runtime's settings).
    fn default() -> Self {
        Trimmer::new(false)
    }
}

impl Trimmer {
    pub(crate) fn new(enabled: bool) -> Self {
        Trimmer { enabled, origin: Instant::now(), last: AtomicU64::new(0) }
    }

    /// The runtime's objects are all gone: gives the free pages back, unless
    /// that was done less than a second ago.
    pub(crate) fn emptied(&self) {
        if !self.enabled || !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return;
        }
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(INTERVAL_MS);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last.saturating_add(INTERVAL_MS) {
            return;
        }
        if self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            // Another release is asking for it at this moment.
            return;
        }
        // A thread of its own: the release may happen on a tokio worker or
        // in a caller's `drop`, neither of which should wait for the walk of
        // the heap. If no thread can be started, the pages stay.
        let _ = std::thread::Builder::new().name("rustyray-trim".into()).spawn(trim);
    }
}

/// Returns glibc's free pages to the system if it keeps enough of them.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        if info.fordblks >= WORTH_TRIMMING {
            // SAFETY: malloc_trim only gives back free memory.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_emptying_within_the_interval_asks_for_nothing() {
        let trimmer = Trimmer::new(true);
        trimmer.emptied();
        let first = trimmer.last.load(Ordering::Relaxed);
        assert_eq!(first != 0, cfg!(all(target_os = "linux", target_env = "gnu")));
        trimmer.emptied();
        assert_eq!(trimmer.last.load(Ordering::Relaxed), first, "a second trim was asked for at once");
    }

    #[test]
    fn a_disabled_trimmer_never_asks() {
        let trimmer = Trimmer::new(false);
        trimmer.emptied();
        assert_eq!(trimmer.last.load(Ordering::Relaxed), 0);
    }
}
