//! Direct actor calls: the caller's side of the fast path to an actor.
//!
//! A method call normally reaches its actor through the manager's loop (one
//! hop to the manager's thread, one to the actor's). When the call's
//! arguments are ready and the actor's slot allows it (see
//! [`ActorSlot::push_direct`]), the calling thread prepares the attempt and
//! leaves it in the slot itself, and the call starts without waiting for the
//! manager's thread.
//!
//! A call with options (a timeout, a name, recorded arguments, ...) tells
//! the manager first (a [`Msg::Submit`] marked direct, sent before the call
//! can start), so that its timer runs from the start. A call without any
//! takes its entry along instead ([`Unannounced`]): the actor's thread hands
//! the entry to the manager when it takes the call, in its next report
//! batch, and a call that ends before that batch goes is reported once, its
//! start and end together. The manager then keeps the books as for any call
//! (state, records, retries after a crash); the difference is when it hears:
//! in a burst, once per batch rather than twice per call. Until then the
//! call is counted ([`OnTheirWay`]), so `wait_idle` waits for it;
//! a call cancelled from its ref before it starts does not run; and a body
//! that submits a task, waits or claims one sends its held reports first, so
//! the manager hears of the call before of anything the call did.

use std::sync::atomic::{AtomicUsize, Ordering};

use rustyray_core::Error;

use tokio::sync::mpsc;

use super::directory::Directory;
use super::slot::ActorSlot;
use crate::protocol::Msg;
use crate::task::{Entry, Unannounced};

/// Counts direct calls left at actors with their entries that the manager
/// has not heard of yet: per runtime (for `wait_idle`) and per actor (an
/// actor whose handles are gone ends only once none is out).
#[derive(Default)]
pub(crate) struct OnTheirWay(AtomicUsize);

impl OnTheirWay {
    /// A call left at its actor with its entry.
    pub(crate) fn sent(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The manager heard of such a call.
    pub(crate) fn heard(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many such calls the manager has not heard of yet.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Hands the method call `entry` straight to its actor's `slot` if it may go
/// there; gives it back (counted as sent through the manager) if it must
/// take the manager's path.
pub(crate) fn submit_call(
    tx: &mpsc::UnboundedSender<Msg>,
    directory: &Directory,
    slot: &ActorSlot,
    mut entry: Box<Entry>,
) -> Option<Box<Entry>> {
    if !may_go_direct(&entry) {
        route_call(slot, &mut entry);
        return Some(entry);
    }
    entry.routed = true;
    let mut entry = Some(entry);
    let direct = slot.push_direct(|| {
        let mut entry = entry.take()?;
        entry.routed = false;
        entry.direct = true;
        let mut start = entry.prepare_attempt();
        // Arguments are kept for the retries a crash may call for.
        start.attempt.last = entry.started_attempts() > slot.max_task_retries();
        if entry.spec.options.is_default() {
            // Counted before it is queued: `wait_idle` never misses it.
            directory.unannounced.sent();
            slot.unannounced.sent();
            start.unannounced = Unannounced::new(entry);
            return Some(start);
        }
        match tx.send(Msg::Submit(entry)) {
            Ok(()) => Some(start),
            Err(_) => {
                start.output.complete(Err(Error::RuntimeShutdown));
                None
            }
        }
    });
    if direct { None } else { entry }
}

/// Counts the method call `entry` as sent through the manager: direct calls
/// wait until the manager has released it.
pub(crate) fn route_call(slot: &ActorSlot, entry: &mut Entry) {
    entry.routed = true;
    slot.route();
}

/// Whether nothing about the call needs the manager before it starts: valid
/// options, no resources or queue, and every argument ready and not failed.
fn may_go_direct(entry: &Entry) -> bool {
    let spec = &entry.spec;
    spec.options.invalid.is_none()
        && spec.options.queue.is_none()
        && entry.demand().is_zero()
        && spec.deps.as_slice().iter().all(|cell| matches!(cell.try_get(), Some(Ok(_))))
}
