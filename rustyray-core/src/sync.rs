//! The primitives an [`ObjectCell`](crate::object::ObjectCell) is built on,
//! routed through one place so a model checker can stand in for them.
//!
//! Normally these are `std`'s `OnceLock`, `once_cell`'s `OnceBox` and
//! `event-listener`'s `Event`. Under `--cfg rustyray_loom` they are small
//! equivalents built on loom's primitives (which none of those crates
//! uses), with the same contract: a value is written once and then read
//! without a lock (a box is set by whichever racing initializer gets there
//! first); a listener made before a notification sees it, one made after
//! waits for the next. The cell's own code is then unchanged, and the
//! loom model in `object.rs` explores every interleaving of a write and its
//! waiters. Run it with
//! `RUSTFLAGS="--cfg rustyray_loom" cargo test -p rustyray-core --lib loom`.

#[cfg(not(rustyray_loom))]
pub(crate) use std::sync::OnceLock;

#[cfg(not(rustyray_loom))]
pub(crate) use once_cell::race::OnceBox;

#[cfg(not(rustyray_loom))]
pub(crate) use event_listener::{Event, Listener};

/// Wakes every listener of the event `event` finds, after the write they
/// wait for. No event (no waiter ever made one), or one that no one has
/// listened to, is left alone: `event-listener` allocates its list on the
/// first `notify` as on the first `listen`, and almost every object is
/// written before anyone waits for it.
///
/// Sound with [`after_listen`] on the waiter's side: the writer's fence
/// comes after its write and before it looks for the event and its
/// listeners, the waiter's after it makes the event and listens and before
/// it looks at the value again, so at least one of the two sees the other
/// (and a list that exists is read under its lock, which orders the two on
/// its own).
#[cfg(not(rustyray_loom))]
pub(crate) fn notify_listeners<'a>(event: impl FnOnce() -> Option<&'a Event>) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if let Some(event) = event()
        && event.total_listeners() > 0
    {
        event.notify(usize::MAX);
    }
}

/// The waiter's half of [`notify_listeners`]: called between `listen` and
/// the second look at the value.
#[cfg(not(rustyray_loom))]
pub(crate) fn after_listen() {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

#[cfg(rustyray_loom)]
pub(crate) use self::model::{after_listen, notify_listeners};

#[cfg(rustyray_loom)]
pub(crate) use self::model::{Event, Listener, OnceBox, OnceLock};

#[cfg(rustyray_loom)]
mod model {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Instant;

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
    use loom::sync::{Condvar, Mutex};

    /// A write-once value: writers are serialized by a lock, readers only
    /// load the flag (acquire) that the winning writer sets (release).
    pub(crate) struct OnceLock<T> {
        written: AtomicBool,
        writing: Mutex<()>,
        value: UnsafeCell<Option<T>>,
    }

    // SAFETY: the value is written once, under `writing`, before `written`
    // is set with release ordering, and read only after `written` is seen
    // with acquire ordering; `take` needs `&mut self`.
    unsafe impl<T: Send + Sync> Sync for OnceLock<T> {}

    impl<T> OnceLock<T> {
        pub(crate) fn new() -> Self {
            OnceLock { written: AtomicBool::new(false), writing: Mutex::new(()), value: UnsafeCell::new(None) }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            if !self.written.load(Ordering::Acquire) {
                return None;
            }
            // SAFETY: written, so never written again while `&self` lives.
            self.value.with(|value| unsafe { (*value).as_ref() })
        }

        pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
            if self.get().is_none() {
                let _writing = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !self.written.load(Ordering::Acquire) {
                    let value = init();
                    // SAFETY: the only writer (under `writing`), and no reader
                    // looks before `written` is set.
                    self.value.with_mut(|slot| unsafe { *slot = Some(value) });
                    self.written.store(true, Ordering::Release);
                }
            }
            match self.get() {
                Some(value) => value,
                None => unreachable!("a once-cell read as empty after its write"),
            }
        }

        pub(crate) fn take(&mut self) -> Option<T> {
            self.written.store(false, Ordering::Relaxed);
            // SAFETY: `&mut self` excludes every reader.
            self.value.with_mut(|slot| unsafe { (*slot).take() })
        }
    }

    impl<T> From<T> for OnceLock<T> {
        fn from(value: T) -> Self {
            OnceLock { written: AtomicBool::new(true), writing: Mutex::new(()), value: UnsafeCell::new(Some(value)) }
        }
    }

    /// A box set once, by whichever racing initializer gets there first
    /// (the others drop theirs), then read without a lock.
    pub(crate) struct OnceBox<T> {
        value: AtomicPtr<T>,
    }

    // SAFETY: the box is published with release ordering and read with
    // acquire ordering, and is only dropped with `&mut self`.
    unsafe impl<T: Send + Sync> Sync for OnceBox<T> {}
    unsafe impl<T: Send> Send for OnceBox<T> {}

    impl<T> OnceBox<T> {
        pub(crate) fn new() -> Self {
            OnceBox { value: AtomicPtr::new(std::ptr::null_mut()) }
        }

        pub(crate) fn with_value(value: Box<T>) -> Self {
            OnceBox { value: AtomicPtr::new(Box::into_raw(value)) }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            // SAFETY: a non-null pointer is a published box, never freed
            // while `&self` lives.
            unsafe { self.value.load(Ordering::Acquire).as_ref() }
        }

        pub(crate) fn get_or_init(&self, init: impl FnOnce() -> Box<T>) -> &T {
            if let Some(value) = self.get() {
                return value;
            }
            let mine = Box::into_raw(init());
            let won = self.value.compare_exchange(std::ptr::null_mut(), mine, Ordering::AcqRel, Ordering::Acquire);
            let published = match won {
                Ok(_) => mine,
                Err(theirs) => {
                    // SAFETY: `mine` was never published.
                    drop(unsafe { Box::from_raw(mine) });
                    theirs
                }
            };
            // SAFETY: published, and freed only with `&mut self`.
            unsafe { &*published }
        }
    }

    impl<T> Drop for OnceBox<T> {
        fn drop(&mut self) {
            let value = self.value.with_mut(|value| *value);
            if !value.is_null() {
                // SAFETY: the published box, owned by `self`.
                drop(unsafe { Box::from_raw(value) });
            }
        }
    }

    /// Notifications counted by generation: a listener remembers the
    /// generation it was made in and is done once it has moved on.
    pub(crate) struct Event {
        state: Mutex<State>,
        changed: Condvar,
    }

    struct State {
        generation: u64,
        wakers: Vec<Waker>,
        /// Listeners made and not dropped yet, as `event-listener`'s
        /// `total_listeners` counts them.
        listening: usize,
    }

    /// The model of the real `notify_listeners`: the count is read under
    /// the event's lock (the real one reads it under the list's lock, and
    /// finds no list when no one ever listened).
    pub(crate) fn notify_listeners<'a>(event: impl FnOnce() -> Option<&'a Event>) {
        loom::sync::atomic::fence(Ordering::SeqCst);
        if let Some(event) = event()
            && event.state().listening > 0
        {
            event.notify(usize::MAX);
        }
    }

    pub(crate) fn after_listen() {
        loom::sync::atomic::fence(Ordering::SeqCst);
    }

    impl Default for Event {
        fn default() -> Self {
            Event::new()
        }
    }

    impl Event {
        pub(crate) fn new() -> Self {
            Event {
                state: Mutex::new(State { generation: 0, wakers: Vec::new(), listening: 0 }),
                changed: Condvar::new(),
            }
        }

        fn state(&self) -> loom::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        pub(crate) fn listen(&self) -> EventListener<'_> {
            let mut state = self.state();
            state.listening += 1;
            EventListener { event: self, generation: state.generation }
        }

        /// Wakes every listener (the cell always notifies all of them).
        pub(crate) fn notify(&self, _count: usize) {
            let wakers = {
                let mut state = self.state();
                state.generation += 1;
                std::mem::take(&mut state.wakers)
            };
            self.changed.notify_all();
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// One wait for the next notification.
    pub(crate) struct EventListener<'a> {
        event: &'a Event,
        generation: u64,
    }

    impl Drop for EventListener<'_> {
        fn drop(&mut self) {
            self.event.state().listening -= 1;
        }
    }

    /// The blocking side of a listener, as `event-listener` names it.
    pub(crate) trait Listener {
        fn wait(self);
        /// Loom has no clock: waits as [`wait`](Listener::wait) does.
        fn wait_deadline(self, deadline: Instant) -> Option<()>;
    }

    impl Listener for EventListener<'_> {
        fn wait(self) {
            let mut state = self.event.state();
            while state.generation == self.generation {
                state = self.event.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }

        fn wait_deadline(self, _deadline: Instant) -> Option<()> {
            self.wait();
            Some(())
        }
    }

    impl Future for EventListener<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = self.event.state();
            if state.generation != self.generation {
                return Poll::Ready(());
            }
            state.wakers.push(cx.waker().clone());
            Poll::Pending
        }
    }
}
