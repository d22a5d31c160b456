//! Actors, on the same task model as remote functions.
//!
//! `Type::remote(args..)` submits an *actor creation task* that runs the
//! constructor and keeps the state; each method call on the handle is an
//! *actor method task* that runs on that state. Both are [`TaskSpec`]s handed
//! to the runner like any task. An [`ActorHandle<A>`] is a cheap value
//! (`Clone`, serde) that dereferences to the generated method surface
//! ([`Actor::Remote`]), so `handle.method(args..)` reads like a call.
//!
//! An actor lives while a handle to it does (or, if it has a name, until it is
//! killed or its runtime shuts down); its pending calls still run when the
//! last handle goes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::arg::TaskArg;
use crate::call::{ArgTuple, ArgValue};
use crate::context;
use crate::error::{Error, Result, TaskOrigin};
use crate::ids::{ActorId, FunctionId, TaskId};
use crate::object::{ObjectCell, ObjectRef};
use crate::options::TaskOptions;
use crate::runner::Runner;
use crate::spec::{Deps, TaskBody, TaskKind, TaskSpec};
use crate::stream::{ObjectStream, StreamSource};

/// A type that can run as an actor. Implemented by `#[actor]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an actor",
    label = "`#[actor]` on the impl block needs `#[actor]` on the type too",
    note = "put `#[rustyray::actor]` on the struct (or enum) `{Self}` as well as on its impl block"
)]
pub trait Actor: Sized + Send + 'static {
    /// The generated surface of remote method calls, which
    /// [`ActorHandle<Self>`] dereferences to.
    type Remote: ActorRemote;
    /// The type's stable name, `crate::module::Type`.
    const TYPE_NAME: &'static str;
}

/// The generated method surface of an actor type: a typed wrapper of an [`ActorRef`].
pub trait ActorRemote: Clone + Send + Sync + 'static {
    /// Wraps a reference.
    fn from_actor_ref(actor: ActorRef) -> Self;
    /// The wrapped reference.
    fn actor_ref(&self) -> &ActorRef;
}

/// A constructor of actor type `Self` taking parameter types `Args`. Implemented by `#[actor]`.
pub trait ActorConstructor<Args: ArgTuple>: Actor {
    /// Builds the body that runs the constructor on `args`.
    fn construct(args: Args::TaskArgs) -> TaskBody;
    /// The constructor's arguments as text, for a creation that opted in
    /// with `record_args(true)`.
    fn describe(args: &Args::TaskArgs) -> String;
}

/// How an actor lives: set with `Type::options()`.
#[derive(Clone, Debug)]
pub struct ActorOptions {
    /// Options of the creation task (resources held while the actor lives).
    pub task: TaskOptions,
    /// A name to find the actor by with `get_actor`; a named actor lives until
    /// killed (or its runtime shuts down), not just while handles exist.
    pub name: Option<String>,
    /// How many times the actor is rebuilt from its constructor arguments
    /// after a panic in a method.
    pub max_restarts: u32,
    /// How many times a call is retried after the actor died under it and was
    /// restarted.
    pub max_task_retries: u32,
    /// How many `&self` async calls of the default concurrency group may
    /// interleave (default 1).
    pub max_concurrency: usize,
    /// The actor's named concurrency groups, each with its own limit
    /// (declared on its impl block with `#[actor(concurrency_groups(..))]`).
    pub concurrency_groups: Vec<ConcurrencyGroup>,
}

/// A named group of an actor's `async fn(&self)` methods with its own limit
/// on interleaved calls, as Ray's `concurrency_groups`: calls of one group
/// never wait for a full other group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencyGroup {
    /// The group's name, as the methods tag it.
    pub name: &'static str,
    /// How many of its calls may run at once (at least 1).
    pub max_concurrency: usize,
}

impl Default for ActorOptions {
    fn default() -> Self {
        ActorOptions {
            task: TaskOptions::default(),
            name: None,
            max_restarts: 0,
            max_task_retries: 0,
            max_concurrency: 1,
            concurrency_groups: Vec::new(),
        }
    }
}

/// What a runner needs to host a new actor, besides its creation task.
#[derive(Clone, Debug)]
pub struct ActorConfig {
    /// The actor.
    pub id: ActorId,
    /// Its type's name.
    pub class: &'static str,
    /// Its options.
    pub options: ActorOptions,
}

/// Keeps an actor alive; the last one dropped lets an unnamed actor exit.
struct ActorToken {
    id: ActorId,
    runner: Option<Arc<dyn Runner>>,
    created: Arc<ObjectCell>,
    named: bool,
}

impl Drop for ActorToken {
    fn drop(&mut self) {
        if let Some(runner) = &self.runner
            && !self.named
        {
            runner.release_actor(self.id);
        }
    }
}

/// An untyped reference to an actor: its id, its type and its runner.
#[derive(Clone)]
pub struct ActorRef {
    class: &'static str,
    token: Arc<ActorToken>,
}

impl ActorRef {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.token.id
    }

    /// The actor's type name.
    pub fn class(&self) -> &'static str {
        self.class
    }

    /// The runner hosting the actor.
    pub fn runner(&self) -> Option<&Arc<dyn Runner>> {
        self.token.runner.as_ref()
    }

    /// The output of the actor's creation task: `()` once it was constructed,
    /// or the error that kept it from being constructed.
    pub fn created(&self) -> ObjectRef<()> {
        ObjectRef::from_cell(self.token.created.clone())
    }

    /// A reference for a runner's directory, sharing this one's keep-alive.
    pub fn downgrade(&self) -> WeakActorRef {
        WeakActorRef { class: self.class, token: Arc::downgrade(&self.token) }
    }

    /// Submits a call of `method` with body `body` waiting for `deps`, and
    /// returns the reference to its result.
    #[track_caller]
    pub fn call<T>(&self, method: FunctionId, deps: Deps, body: TaskBody) -> ObjectRef<T> {
        let caller = Location::caller();
        let id = TaskId::next();
        let Some(runner) = &self.token.runner else {
            return ObjectRef::from_cell(ObjectCell::with_error(id.output(), Some(id), self.unreachable()));
        };
        ObjectRef::from_cell(self.submit_call(runner, id, method, deps, body, caller))
    }

    /// Submits a call of the streaming method `method`, whose body `body`
    /// builds around the stream's producing side, waiting for `deps`; returns
    /// the stream of its items, holding at most `buffer` unread ones.
    #[track_caller]
    pub fn call_stream<T: Send + Sync + 'static>(
        &self,
        method: FunctionId,
        deps: Deps,
        buffer: usize,
        body: impl FnOnce(StreamSource<T>) -> TaskBody,
    ) -> ObjectStream<T> {
        let caller = Location::caller();
        let id = TaskId::next();
        let Some(runner) = &self.token.runner else {
            return ObjectStream::failed(self.unreachable());
        };
        let origin = TaskOrigin { task: id, function: method, name: None };
        let (source, pending) = crate::stream::channel(runner.clone(), origin, buffer.max(1));
        let output = self.submit_call(runner, id, method, deps, body(source), caller);
        pending.stream(ObjectRef::from_cell(output))
    }

    /// Why a call cannot reach an actor that has no runner: the error its
    /// creation failed with, else that there is no runtime.
    fn unreachable(&self) -> Error {
        match self.token.created.try_get() {
            Some(Err(error)) => error.clone(),
            _ => Error::NoRuntime,
        }
    }

    /// Submits call `id` of `method` to `runner`; returns its output cell.
    fn submit_call(
        &self,
        runner: &Arc<dyn Runner>,
        id: TaskId,
        method: FunctionId,
        deps: Deps,
        body: TaskBody,
        caller: &'static Location<'static>,
    ) -> Arc<ObjectCell> {
        let output = ObjectCell::pending(id, method, None, runner.clone());
        runner.submit(TaskSpec {
            id,
            function: method,
            kind: TaskKind::ActorMethod { actor: self.token.id },
            options: TaskOptions::default(),
            deps,
            body,
            output: output.clone(),
            parent: context::current_task(),
            caller,
            args: None,
            trace_parent: crate::spec::current_trace_parent(),
        });
        output
    }
}

impl fmt::Debug for ActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.token.id, self.class)
    }
}

/// A reference that does not keep the actor alive; runners keep these in
/// their directory to turn ids back into handles.
#[derive(Clone)]
pub struct WeakActorRef {
    class: &'static str,
    token: std::sync::Weak<ActorToken>,
}

impl fmt::Debug for WeakActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakActorRef")
            .field("class", &self.class)
            .field("alive", &(self.token.strong_count() > 0))
            .finish()
    }
}

impl WeakActorRef {
    /// The actor's type.
    pub fn class(&self) -> &'static str {
        self.class
    }

    /// A reference of type `class` that never upgrades: one whose every
    /// handle is gone. For tests of runners' directories.
    #[doc(hidden)]
    pub fn dangling(class: &'static str) -> Self {
        WeakActorRef { class, token: std::sync::Weak::new() }
    }

    /// The full reference, if a handle to the actor still exists.
    pub fn upgrade(&self) -> Option<ActorRef> {
        self.token.upgrade().map(|token| ActorRef { class: self.class, token })
    }
}

/// A handle to an actor of type `A`. Method calls go through it
/// (`handle.method(args..)`, via `Deref` to the generated surface); it is
/// cheap to clone, and it serializes as the actor's id, so it can be an
/// argument or a result of a remote function.
pub struct ActorHandle<A: Actor> {
    remote: A::Remote,
    _type: PhantomData<fn() -> A>,
}

impl<A: Actor> ActorHandle<A> {
    /// Wraps a reference (of an actor of type `A`).
    pub fn from_actor_ref(actor: ActorRef) -> Self {
        ActorHandle { remote: A::Remote::from_actor_ref(actor), _type: PhantomData }
    }

    /// The untyped reference.
    pub fn actor_ref(&self) -> &ActorRef {
        self.remote.actor_ref()
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.actor_ref().id()
    }

    /// Waits until the actor was constructed, or returns why it was not.
    pub async fn ready(&self) -> Result<()> {
        self.actor_ref().created().get().await
    }

    /// Ends the actor; see [`kill`].
    pub fn kill(&self) {
        kill(self);
    }
}

impl<A: Actor> Deref for ActorHandle<A> {
    type Target = A::Remote;

    fn deref(&self) -> &A::Remote {
        &self.remote
    }
}

impl<A: Actor> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle { remote: self.remote.clone(), _type: PhantomData }
    }
}

impl<A: Actor> fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorHandle({:?})", self.actor_ref())
    }
}

impl<A: Actor> PartialEq for ActorHandle<A> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<A: Actor> Eq for ActorHandle<A> {}

/// A handle held inside a stored value counts as its own bytes: the actor's
/// state is not an object.
impl<A: Actor> crate::size::GetSize for ActorHandle<A> {}

/// A handle serializes as its actor's id.
impl<A: Actor> Serialize for ActorHandle<A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.id().serialize(serializer)
    }
}

/// Decoding a handle looks its id up in the current runtime.
impl<'de, A: Actor> Deserialize<'de> for ActorHandle<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let id = ActorId::deserialize(deserializer)?;
        let runner = context::current_runner().ok_or_else(|| serde::de::Error::custom(Error::NoRuntime))?;
        let actor = runner.lookup_actor(id).map_err(serde::de::Error::custom)?;
        typed::<A>(actor, &id.to_string()).map_err(serde::de::Error::custom)
    }
}

fn typed<A: Actor>(actor: ActorRef, name: &str) -> Result<ActorHandle<A>> {
    if actor.class != A::TYPE_NAME {
        return Err(Error::ActorTypeMismatch { name: name.to_string(), expected: A::TYPE_NAME, actual: actor.class });
    }
    Ok(ActorHandle::from_actor_ref(actor))
}

/// The actor named `name` in the current runtime, as an `A`.
///
/// Fails with [`Error::ActorNotFound`] for an unknown name and with
/// [`Error::ActorTypeMismatch`] if the actor is of another type.
pub fn get_actor<A: Actor>(name: &str) -> Result<ActorHandle<A>> {
    let runner = context::current_runner().ok_or(Error::NoRuntime)?;
    typed::<A>(runner.named_actor(name)?, name)
}

/// Ends an actor: calls not yet started fail with [`Error::ActorDied`] at
/// once, calls made after `kill` returns fail the same way (none of them
/// runs), and the actor is not restarted. A call already running finishes
/// first (a plain body cannot be interrupted).
pub fn kill<A: Actor>(handle: &ActorHandle<A>) {
    if let Some(runner) = handle.actor_ref().runner() {
        runner.kill_actor(handle.id());
    }
}

/// Options for creating one actor, ended by `.remote(args..)`.
///
/// Returned by the generated `Type::options()`.
#[must_use = "an actor builder does nothing until `.remote(..)` is called"]
pub struct ActorBuilder<A, Args> {
    options: ActorOptions,
    _marker: PhantomData<fn() -> (A, Args)>,
}

impl<A, Args> fmt::Debug for ActorBuilder<A, Args> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorBuilder")
            .field("actor", &std::any::type_name::<A>())
            .field("options", &self.options)
            .finish()
    }
}

impl<A, Args> Default for ActorBuilder<A, Args> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A, Args> ActorBuilder<A, Args> {
    /// Default options.
    pub fn new() -> Self {
        ActorBuilder { options: ActorOptions::default(), _marker: PhantomData }
    }

    /// The options collected so far.
    pub fn actor_options(&self) -> &ActorOptions {
        &self.options
    }

    /// Names the actor, so `get_actor(name)` finds it. A name already taken
    /// makes the creation fail with [`Error::ActorNameTaken`]. A named actor
    /// lives until killed, not just while handles to it exist.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if name.is_empty() {
            self.options.task.invalid.get_or_insert_with(|| {
                Box::new(Error::InvalidOption { option: "name", reason: "an actor name must not be empty".into() })
            });
        } else {
            self.options.name = Some(name);
        }
        self
    }

    /// Rebuilds the actor from its constructor arguments after a panic in a
    /// method, up to `restarts` times (default 0: a panic kills it).
    pub fn max_restarts(mut self, restarts: u32) -> Self {
        self.options.max_restarts = restarts;
        self
    }

    /// Retries a call up to `retries` times when the actor died under it and
    /// was restarted (default 0: such calls fail).
    pub fn max_task_retries(mut self, retries: u32) -> Self {
        self.options.max_task_retries = retries;
        self
    }

    /// Lets up to `calls` `&self` async calls interleave (default 1: one call
    /// at a time). `&mut self` calls always run alone.
    pub fn max_concurrency(mut self, calls: usize) -> Self {
        if calls == 0 {
            self.options.task.invalid.get_or_insert_with(|| {
                Box::new(Error::InvalidOption { option: "max_concurrency", reason: "must be at least 1".into() })
            });
        } else {
            self.options.max_concurrency = calls;
        }
        self
    }

    /// Sets the limit of the concurrency group `group`, which the actor's
    /// impl block declares (`#[actor(concurrency_groups(group = N))]`), to
    /// `calls` for this actor. An undeclared group or a limit of 0 makes the
    /// creation fail with [`Error::InvalidOption`].
    pub fn concurrency_group(mut self, group: &str, calls: usize) -> Self {
        let declared: Vec<&str> = self.options.concurrency_groups.iter().map(|g| g.name).collect();
        match self.options.concurrency_groups.iter_mut().find(|g| g.name == group) {
            None => {
                let reason = if declared.is_empty() {
                    format!("the actor declares no concurrency groups, so there is no group `{group}`")
                } else {
                    format!("no concurrency group `{group}` is declared; declared: {}", declared.join(", "))
                };
                self.options
                    .task
                    .invalid
                    .get_or_insert_with(|| Box::new(Error::InvalidOption { option: "concurrency_group", reason }));
            }
            Some(_) if calls == 0 => {
                self.options.task.invalid.get_or_insert_with(|| {
                    Box::new(Error::InvalidOption {
                        option: "concurrency_group",
                        reason: format!("group `{group}` must allow at least 1 call"),
                    })
                });
            }
            Some(declared) => declared.max_concurrency = calls,
        }
        self
    }

    /// The concurrency groups the actor's impl block declares, with their
    /// default limits; called by the code `#[actor]` generates.
    #[doc(hidden)]
    pub fn declare_concurrency_groups(mut self, groups: &[(&'static str, usize)]) -> Self {
        self.options.concurrency_groups =
            groups.iter().map(|&(name, max_concurrency)| ConcurrencyGroup { name, max_concurrency }).collect();
        self
    }

    /// CPU units the actor holds while it lives (default 0).
    pub fn num_cpus(mut self, cpus: f64) -> Self {
        self.options.task.set_num_cpus(cpus);
        self
    }

    /// A custom resource the actor holds while it lives.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.options.task.add_resource(name, amount);
        self
    }
}

impl<A: ActorConstructor<Args>, Args: ArgTuple> ActorBuilder<A, Args> {
    /// Creates the actor with arguments already wrapped.
    #[track_caller]
    pub fn create(self, args: Args::TaskArgs) -> ActorHandle<A> {
        let caller = Location::caller();
        let deps = Args::dependencies(&args);
        let described = self.options.task.record_args.then(|| Arc::from(A::describe(&args)));
        let body = A::construct(args);
        let config = ActorConfig { id: ActorId::next(), class: A::TYPE_NAME, options: self.options };
        let task = TaskId::next();
        let named = config.options.name.is_some();
        let current = context::with_current(|ctx| ctx.map(|ctx| (ctx.runner.clone(), ctx.task)));
        let (runner, parent) = match current {
            Some((runner, parent)) => (Some(runner), parent),
            None => (context::default_runner(), None),
        };
        let Some(runner) = runner else {
            let created = ObjectCell::with_error(task.output(), Some(task), Error::NoRuntime);
            let token = ActorToken { id: config.id, runner: None, created, named };
            return ActorHandle::from_actor_ref(ActorRef { class: A::TYPE_NAME, token: Arc::new(token) });
        };
        let function = FunctionId::new(&A::TYPE_NAME);
        let created = ObjectCell::pending(task, function, config.options.task.name.clone(), runner.clone());
        let spec = TaskSpec {
            id: task,
            function: FunctionId::new(&A::TYPE_NAME),
            kind: TaskKind::ActorCreation { actor: config.id },
            options: config.options.task.clone(),
            deps,
            body,
            output: created.clone(),
            parent,
            caller,
            args: described,
            trace_parent: crate::spec::current_trace_parent(),
        };
        let token = ActorToken { id: config.id, runner: Some(runner.clone()), created, named };
        let actor = ActorRef { class: A::TYPE_NAME, token: Arc::new(token) };
        runner.create_actor(spec, config, actor.downgrade());
        ActorHandle::from_actor_ref(actor)
    }
}

macro_rules! arities {
    ($( ($($T:ident $v:ident),*) )*) => {$(
        impl<A, $($T: ArgValue),*> ActorBuilder<A, ($($T,)*)>
        where
            A: ActorConstructor<($($T,)*)>,
        {
            /// Creates the actor. Each constructor argument may be a value, an
            /// `ObjectRef` or an `&ObjectRef` of the parameter's type.
            #[track_caller]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, $($v: impl Into<TaskArg<$T>>),*) -> ActorHandle<A> {
                self.create(($($v.into(),)*))
            }
        }
    )*};
}

arities! {
    ()
    (B b)
    (B b, C c)
    (B b, C c, D d)
    (B b, C c, D d, E e)
    (B b, C c, D d, E e, G g)
    (B b, C c, D d, E e, G g, H h)
    (B b, C c, D d, E e, G g, H h, I i)
    (B b, C c, D d, E e, G g, H h, I i, J j)
}

/// Compile-time check used by generated code: `A` is an actor.
pub const fn assert_actor<A: Actor>() {}

/// A method given another type's state: the runtime mixed up its actors
/// (there is no object to name, so not a `TypeMismatch`).
const WRONG_STATE: Error = Error::Internal { reason: "an actor method was given the state of another type" };

/// Reads an actor's state as an `A` (generated method bodies use it).
pub fn state_ref<A: 'static>(state: &(dyn std::any::Any + Send)) -> std::result::Result<&A, crate::spec::TaskError> {
    state.downcast_ref::<A>().ok_or(crate::spec::TaskError::Error(WRONG_STATE))
}

/// Reads an actor's state as a mutable `A` (generated method bodies use it).
pub fn state_mut<A: 'static>(
    state: &mut (dyn std::any::Any + Send),
) -> std::result::Result<&mut A, crate::spec::TaskError> {
    state.downcast_mut::<A>().ok_or(crate::spec::TaskError::Error(WRONG_STATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_given_another_types_state_is_an_internal_fault_not_an_object_mismatch() {
        let mut state: Box<dyn std::any::Any + Send> = Box::new(5_i64);
        let wrong = state_ref::<String>(&*state).map(|_| ());
        assert!(matches!(wrong, Err(crate::spec::TaskError::Error(Error::Internal { .. }))), "{wrong:?}");
        let wrong = state_mut::<String>(&mut *state).map(|_| ());
        assert!(matches!(wrong, Err(crate::spec::TaskError::Error(Error::Internal { .. }))), "{wrong:?}");
        assert_eq!(state_ref::<i64>(&*state).ok(), Some(&5));
    }
}
