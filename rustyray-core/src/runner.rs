//! The interface between RustyRay's vocabulary and whatever executes tasks.
//!
//! `rustyray-core` describes tasks ([`TaskSpec`]) and the objects they produce
//! ([`ObjectCell`], [`ObjectRef`](crate::ObjectRef)) without knowing how tasks
//! run. A [`Runner`] is the thing that runs them: today the in-process tokio
//! runtime of `rustyray-runtime`; later a durable, database-backed queue or a
//! Ray cluster. Object refs and generated code reach their runner only through
//! this trait, so each runner is a drop-in for the others.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::actor::{ActorConfig, ActorRef, WeakActorRef};
use crate::error::Result;
use crate::ids::{ActorId, ObjectId, TaskId};
use crate::object::ObjectCell;
use crate::size::ObjectSize;
use crate::spec::TaskSpec;

/// What a task runner provides to the rest of RustyRay.
///
/// No method may panic. Every method returns quickly except the two that
/// block by design, on behalf of a caller that asked to wait:
/// [`run_inline`](Self::run_inline) runs a task on the calling thread, and
/// [`block_on_object`](Self::block_on_object) waits for an object.
/// Submission and cancellation are fire-and-forget, and their failures are
/// written into the affected objects.
pub trait Runner: Send + Sync + 'static {
    /// Accepts a task. The outcome, success or failure, is written to `spec.output`.
    fn submit(&self, spec: TaskSpec);

    /// Hosts a new actor: `spec` is its creation task, `actor` the reference
    /// handles hold (kept in the runner's directory without keeping the actor
    /// alive). A name already taken fails the creation with
    /// [`Error::ActorNameTaken`](crate::Error::ActorNameTaken).
    fn create_actor(&self, spec: TaskSpec, config: ActorConfig, actor: WeakActorRef);

    /// The last handle to an unnamed actor was dropped: it may exit once its
    /// pending calls are done.
    fn release_actor(&self, actor: ActorId);

    /// Ends an actor now; see [`kill`](crate::actor::kill).
    fn kill_actor(&self, actor: ActorId);

    /// The actor with this id, while a handle to it exists.
    fn lookup_actor(&self, actor: ActorId) -> Result<ActorRef>;

    /// The actor with this name.
    fn named_actor(&self, name: &str) -> Result<ActorRef>;

    /// Cancels a task and, recursively, the tasks it submitted. Final for its
    /// output (readers see a cancelled error at once); best effort for a body
    /// that is already running. Cancelling a finished task does nothing.
    fn cancel(&self, task: TaskId);

    /// An object owned by this runner came into existence.
    /// `size` is what its value counts for in the store's byte total: an
    /// object created with its value (by `put`) is not also reported to
    /// [`Runner::object_stored`].
    fn object_created(&self, id: ObjectId, size: ObjectSize);

    /// A value was written to an object owned by this runner; `size` is what
    /// it counts for in the store's byte total (never [`ObjectSize::Empty`]).
    fn object_stored(&self, id: ObjectId, size: ObjectSize);

    /// The last reference to an object owned by this runner was dropped;
    /// `size` is what [`Runner::object_created`] or [`Runner::object_stored`]
    /// reported for it, or [`ObjectSize::Empty`] if it never held a value.
    fn object_released(&self, id: ObjectId, size: ObjectSize);

    /// Makes an object findable by id, because a reference to it is being serialized.
    fn export_object(&self, cell: &Arc<ObjectCell>);

    /// Finds an exported object by id.
    fn lookup_object(&self, id: ObjectId) -> Result<Arc<ObjectCell>>;

    /// Attempt `attempt` of the running task `task` is about to wait for an
    /// object: it gives back the resources it holds, so the tasks it waits on
    /// can run. (An attempt given up on may still run beside its retry: the
    /// number says whose resources these are.)
    fn task_blocked(&self, task: TaskId, attempt: u32);

    /// The attempt that called [`Runner::task_blocked`] stopped waiting.
    fn task_unblocked(&self, task: TaskId, attempt: u32);

    /// If `task` is queued and may run on the calling thread, runs it there now
    /// and returns `true`. Called by a plain task body that is about to block
    /// on `task`'s output; this is what keeps nested blocking gets from needing
    /// a thread per waiting task.
    fn run_inline(&self, task: TaskId) -> bool;

    /// Blocks the calling thread until `cell` is ready or `deadline` passes
    /// (returns `Ok(false)` then), in a way that is safe for the thread it is
    /// called on, or fails with [`Error::WouldBlock`](crate::Error::WouldBlock)
    /// where blocking would stall async tasks.
    fn block_on_object(&self, cell: &ObjectCell, deadline: Option<Instant>) -> Result<bool>;

    /// Whether the runner has stopped (submissions to it fail with
    /// [`Error::RuntimeShutdown`](crate::Error::RuntimeShutdown)).
    fn is_shut_down(&self) -> bool {
        false
    }

    /// The concrete runner, for downcasting.
    fn as_any(&self) -> &dyn Any;

    /// The concrete runner, shared, for downcasting.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}
