//! [`Shared`]: the runtime's shared state, and the [`Runner`] every task,
//! object ref and actor handle of the runtime calls.
//!
//! It is what the runtime's handles hold (a [`Runtime`](crate::Runtime) is
//! an `Arc` of it) and what task contexts name as their runner. It turns each
//! call into a message to the manager, except where a caller may act at once:
//! object accounting, actor lookups, and the direct path to an actor's slot.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;
use rustyray_core::context;
use rustyray_core::{
    ActorConfig, ActorId, ActorRef, Error, ObjectCell, ObjectId, ObjectSize, Result, Runner, TaskId, TaskSpec,
    WeakActorRef,
};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::mpsc;

use crate::accounting::Store;
use crate::actor::{ActorSlot, Directory, route_call, submit_call};
use crate::config::Config;
use crate::executor::{self, Exec};
use crate::manager::Core;
use crate::protocol::{Claim, Msg, NewActor};
use crate::task::Entry;

/// The runtime's shared state: what handles, tasks and object refs point to.
pub(crate) struct Shared {
    pub(super) this: Weak<Shared>,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) core: Arc<Mutex<Core>>,
    pub(super) store: Store,
    /// The actors by id and name, and their slots (the manager holds it too).
    pub(super) directory: Arc<Directory>,
    pub(super) handle: Handle,
    pub(super) config: Config,
    pub(super) shut_down: AtomicBool,
}

impl Shared {
    pub(crate) fn send(&self, msg: Msg) -> std::result::Result<(), Msg> {
        self.tx.send(msg).map_err(|error| error.0)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.shut_down.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// Sends the reports this thread holds, if it runs a task of this
    /// runtime (they are this runtime's; another runtime's task flushes
    /// them to its own), outside a deterministic run (whose one thread
    /// sends its batches where the seed's schedule has them).
    fn flush_own_reports(&self) {
        if self.config.det.is_none() && self.is_current_runner() {
            executor::flush_held_reports(&self.tx);
        }
    }

    pub(super) fn is_current_runner(&self) -> bool {
        context::with_current(|ctx| {
            ctx.is_some_and(|ctx| std::ptr::addr_eq(Arc::as_ptr(&ctx.runner), self as *const Shared))
        })
    }
}

impl crate::metrics::Source for Shared {
    /// What a metrics scrape reports, copied out under the manager's lock.
    fn snapshot(&self) -> crate::metrics::Snapshot {
        let usage = self.store.usage();
        self.core.lock().metrics_snapshot(usage)
    }
}

impl Runner for Shared {
    fn submit(&self, spec: TaskSpec) {
        // A direct call that submits: the manager hears of the call (in the
        // reports its actor's thread holds) before of its child.
        self.flush_own_reports();
        if self.shut_down.load(Ordering::Acquire) {
            spec.output.complete(Err(Error::RuntimeShutdown));
            return;
        }
        let mut entry = Entry::new(spec);
        if let Some(actor) = entry.called_actor()
            && let Some(slot) = self.directory.slot(actor)
        {
            if self.config.det.is_some() {
                // A deterministic run sends every call through the manager.
                route_call(&slot, &mut entry);
            } else {
                match submit_call(&self.tx, &self.directory, &slot, entry) {
                    Some(routed) => entry = routed,
                    None => return,
                }
            }
        }
        if let Err(Msg::Submit(entry)) = self.send(Msg::Submit(entry)) {
            entry.output().complete(Err(Error::RuntimeShutdown));
        }
    }

    fn cancel(&self, task: TaskId) {
        let _ = self.send(Msg::Cancel(task));
    }

    fn create_actor(&self, spec: TaskSpec, config: ActorConfig, actor: WeakActorRef) {
        self.flush_own_reports();
        let rejected = if self.is_closed() {
            Some(Error::RuntimeShutdown)
        } else {
            self.directory.register(config.id, config.options.name.as_deref(), &actor).err()
        };
        let entry = Entry::new(spec);
        let slot = ActorSlot::new(config.id, &config.options, entry.holds_cpus());
        if rejected.is_none() {
            self.directory.insert_slot(config.id, slot);
        }
        let msg = Msg::CreateActor(Box::new(NewActor { entry, config, rejected }));
        if let Err(Msg::CreateActor(new)) = self.send(msg) {
            new.entry.output().complete(Err(Error::RuntimeShutdown));
        }
    }

    fn release_actor(&self, actor: ActorId) {
        let _ = self.send(Msg::ReleaseActor(actor));
    }

    fn kill_actor(&self, actor: ActorId) {
        // Before `kill` returns: a call made after it must not reach the actor
        // by the direct path while the manager has yet to hear of the kill
        // (calls through the manager are sent after the kill, so it fails them).
        self.directory.mark_killed(actor);
        let _ = self.send(Msg::KillActor(actor));
    }

    fn lookup_actor(&self, actor: ActorId) -> Result<ActorRef> {
        self.directory.lookup(actor)
    }

    fn named_actor(&self, name: &str) -> Result<ActorRef> {
        self.directory.named(name)
    }

    fn object_created(&self, _id: ObjectId, size: ObjectSize) {
        self.store.created(size);
    }

    fn object_stored(&self, _id: ObjectId, size: ObjectSize) {
        self.store.stored(size);
    }

    fn object_released(&self, id: ObjectId, size: ObjectSize) {
        self.store.released(id, size);
    }

    fn export_object(&self, cell: &Arc<ObjectCell>) {
        self.store.export(cell);
    }

    fn lookup_object(&self, id: ObjectId) -> Result<Arc<ObjectCell>> {
        self.store.lookup(id)
    }

    fn task_blocked(&self, task: TaskId, attempt: u32) {
        executor::flush_held_reports(&self.tx);
        let _ = self.send(Msg::Blocked(task, attempt));
    }

    fn task_unblocked(&self, task: TaskId, attempt: u32) {
        let _ = self.send(Msg::Unblocked(task, attempt));
    }

    fn run_inline(&self, task: TaskId) -> bool {
        // Only a plain task of this runtime lends its thread (and its CPU); on
        // a deterministic run the manager needs this very thread to answer.
        if self.config.det.is_some() || !context::on_blocking_thread() || !self.is_current_runner() {
            return false;
        }
        let Some(this) = self.this.upgrade() else { return false };
        let waiter = context::current_attempt();
        // A plain channel, not tokio's: this thread may be inside the tokio
        // runtime's context (an async actor method that blocks), where
        // tokio's blocking receive refuses to wait.
        let (reply, claimed) = std::sync::mpsc::channel();
        executor::flush_held_reports(&self.tx);
        if self.send(Msg::Claim(Box::new(Claim { task, waiter, reply }))).is_err() {
            return false;
        }
        let Ok(Some(start)) = claimed.recv() else { return false };
        executor::run_inline(&Exec::new(this, self.tx.clone(), self.handle.clone(), None), start);
        if let Some((waiter, attempt)) = waiter {
            let _ = self.send(Msg::Unblocked(waiter, attempt));
        }
        true
    }

    fn block_on_object(&self, cell: &ObjectCell, deadline: Option<Instant>) -> Result<bool> {
        if self.config.det.is_some() && !cell.is_ready() {
            // The one thread that would write the object is the one that would wait.
            return Err(Error::BlockingInDeterministic { object: cell.id() });
        }
        let wait = || cell.ready_blocking(deadline).is_some();
        if context::on_blocking_thread() {
            return Ok(wait());
        }
        match Handle::try_current() {
            Err(_) => Ok(wait()),
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(wait))
            }
            Ok(_) => Err(Error::WouldBlock),
        }
    }

    fn is_shut_down(&self) -> bool {
        self.is_closed()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
