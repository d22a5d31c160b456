//! The free functions applications call: `get`, `get_all`, `wait`, `put`,
//! `get_blocking`, `cancel`, `call_by_name`.
//!
//! Each acts on the objects it is given, or on the current runtime (the
//! current task's, else the scope's, else the process default).

use std::any::Any;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rustyray_core::context::{self, Waiting};
use rustyray_core::{Error, ObjectRef, Result};

use crate::Runtime;

/// Waits for an object and returns a copy of its value. Same as `r.get().await`.
pub async fn get<T: Any + Clone + Send + Sync>(r: &ObjectRef<T>) -> Result<T> {
    r.get().await
}

/// Waits for every object and returns their values in order; the first
/// failure (in list order) is returned as the error.
pub async fn get_all<'a, T: Any + Clone + Send + Sync>(
    refs: impl IntoIterator<Item = &'a ObjectRef<T>>,
) -> Result<Vec<T>> {
    let refs: Vec<&ObjectRef<T>> = refs.into_iter().collect();
    // Work submitted together tends to finish in order: waiting for the last
    // first usually finds the others done, so the caller wakes once, not once
    // per object.
    for r in refs.iter().rev() {
        r.ready().await;
    }
    refs.into_iter().map(|r| r.try_get().unwrap_or(Err(rustyray_core::Error::NotReady { object: r.id() }))).collect()
}

/// Waits until `num_returns` of `refs` are ready (holding a value or an
/// error) or `timeout` passes, and returns `(ready, pending)`, each in the
/// order of `refs`. At most `num_returns` refs are returned as ready (fewer on
/// timeout); `num_returns` larger than the list means all of it.
/// A task waiting here gives its CPU slot back while it waits.
///
/// The timeout runs on RustyRay's own timer: `wait` may be polled by any
/// executor, on any thread, inside a tokio runtime (with or without tokio's
/// timer) or outside one.
pub async fn wait<'a, T: 'a>(
    refs: impl IntoIterator<Item = &'a ObjectRef<T>>,
    num_returns: usize,
    timeout: Option<Duration>,
) -> (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>) {
    let refs: Vec<ObjectRef<T>> = refs.into_iter().cloned().collect();
    let wanted = num_returns.min(refs.len());
    // One pass decides what is pending; everything else counts as ready, so a
    // ref that becomes ready meanwhile is counted exactly once.
    let mut pending: FuturesUnordered<_> = refs.iter().filter(|r| !r.is_ready()).map(|r| r.cell().ready()).collect();
    let mut ready = refs.len() - pending.len();
    if ready < wanted {
        let _waiting = Waiting::begin();
        // RustyRay's own timer: it works in any executor, inside a tokio
        // runtime (with or without tokio's timer) or not.
        let deadline = timeout.map(crate::timer::sleep);
        let mut deadline = std::pin::pin!(async move {
            match deadline {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        });
        while ready < wanted {
            tokio::select! {
                next = pending.next() => match next {
                    Some(_) => ready += 1,
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
    }
    drop(pending);
    let mut taken = 0;
    refs.into_iter().partition(|r| {
        let take = taken < wanted && r.is_ready();
        taken += usize::from(take);
        take
    })
}

/// Stores `value` in the current runtime's object store and returns a
/// reference to it; without a runtime the reference is already failed with
/// [`Error::NoRuntime`], after its shutdown with [`Error::RuntimeShutdown`].
pub fn put<T: Any + Send + Sync>(value: T) -> ObjectRef<T> {
    rustyray_core::object::put(value)
}

/// Blocks until the object is ready and returns a copy of its value. For
/// plain task bodies and non-async threads; see [`ObjectRef::get_blocking`].
pub fn get_blocking<T: Any + Clone + Send + Sync>(r: &ObjectRef<T>) -> Result<T> {
    r.get_blocking()
}

/// Cancels the task that produces `r`, and every task it submitted; see
/// [`ObjectRef::cancel`].
pub fn cancel<T>(r: &ObjectRef<T>) {
    r.cancel();
}

/// Calls a registered function by name on the current runtime; see
/// [`Runtime::call_by_name`].
#[track_caller]
pub fn call_by_name(name: &str, args: &[u8]) -> ObjectRef<Vec<u8>> {
    match Runtime::current() {
        Some(runtime) => runtime.call_by_name(name, args),
        None => ObjectRef::failed(Error::NoRuntime),
    }
}

/// The task whose body is running here, if any.
pub fn current_task() -> Option<rustyray_core::TaskId> {
    context::current_task()
}
