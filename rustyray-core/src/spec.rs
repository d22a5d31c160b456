//! What a task is: [`TaskSpec`], one description for remote function calls,
//! actor creations and actor method calls alike.
//!
//! A spec names its function, carries its options, lists the objects it waits
//! for, holds the body to run once they are ready, and owns the cell its result
//! goes to. Bodies are type-erased closures built by generated code; they are
//! `Fn` (shared, called once per attempt) so a failed attempt can run again.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::error::{Error, TaskOrigin};
use crate::ids::{ActorId, FunctionId, TaskId};
use crate::object::{ObjectCell, Value};
use crate::options::TaskOptions;

/// What one attempt of a body returns.
pub type BodyResult = Result<Value, TaskError>;

/// The future an async body returns for one attempt.
pub type BodyFuture = Pin<Box<dyn Future<Output = BodyResult> + Send>>;

/// The future an async actor method returns: it borrows the actor's state and
/// runs on the actor's own thread, so it need not be `Send`.
pub type LocalBodyFuture<'a> = Pin<Box<dyn Future<Output = BodyResult> + 'a>>;

/// An actor's state (an instance of the actor type), type-erased.
pub type ActorInstance = Box<dyn Any + Send>;

/// The objects a task waits for before it can run.
pub type Deps = SmallVec<[Arc<ObjectCell>; 2]>;

/// Which attempt of a task is running.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first run, 2 for the first retry, ...
    pub number: u32,
    /// Whether no retry follows this attempt, so arguments may be moved into it.
    pub last: bool,
}

impl Attempt {
    /// The only attempt of a task that is never retried.
    pub const ONLY: Attempt = Attempt { number: 1, last: true };
}

/// How a failed attempt failed, before the runner names the task.
#[derive(Clone, Debug)]
pub enum TaskError {
    /// The body returned `Err`.
    Failed {
        /// The error's `Display` text.
        message: String,
        /// The Rust type of the error.
        error_type: &'static str,
        /// The error itself, when its type implements `std::error::Error`.
        source: Option<crate::error::ErrorSource>,
    },
    /// The body panicked.
    Panicked {
        /// The panic message.
        message: String,
        /// The backtrace, when one was captured.
        backtrace: Option<Arc<str>>,
    },
    /// The attempt ran longer than the task's timeout.
    TimedOut {
        /// The timeout that was exceeded.
        timeout: std::time::Duration,
    },
    /// The attempt could not run its body (e.g. an argument did not resolve).
    Error(Error),
    /// A failure that must not be retried whatever retries remain (a
    /// streaming task whose consumer already read an item).
    NotRetried(Box<TaskError>),
}

impl TaskError {
    /// The failure a body's `Err(e)` becomes.
    pub fn failed<E: fmt::Display + ?Sized>(error: &E) -> Self {
        TaskError::Failed { message: error.to_string(), error_type: std::any::type_name::<E>(), source: None }
    }

    /// The failure a body's `Err(e)` becomes, keeping `e` itself as the
    /// error's [`source`](std::error::Error::source).
    pub fn failed_with_source<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        TaskError::Failed {
            message: error.to_string(),
            error_type: std::any::type_name::<E>(),
            source: Some(crate::error::ErrorSource::new(error)),
        }
    }

    /// Turns the failure of a task's last attempt into the error its readers see.
    pub fn into_error(self, origin: TaskOrigin, attempts: u32) -> Error {
        match self {
            TaskError::Failed { message, error_type, source } => {
                Error::TaskFailed { origin, message, error_type, attempts, source }
            }
            TaskError::Panicked { message, backtrace } => Error::TaskPanicked { origin, message, backtrace, attempts },
            TaskError::TimedOut { timeout } => Error::TimedOut { origin, timeout, attempts },
            TaskError::Error(error) => error,
            TaskError::NotRetried(error) => error.into_error(origin, attempts),
        }
    }

    /// Whether a retry may follow this failure (if the task has retries left).
    pub fn retryable(&self) -> bool {
        !matches!(self, TaskError::NotRetried(_))
    }
}

/// A body's error on its way to a [`TaskError`]: generated code calls
/// `FailedWith(error).into_task_error()` with [`KeepSource`] and
/// [`DisplayOnly`] in scope. Method lookup takes [`KeepSource`] (by value)
/// when the error type implements `std::error::Error + Send + Sync`, so the
/// error stays reachable as a source; any other `Display` type falls back to
/// [`DisplayOnly`] (by reference), which keeps its text.
#[doc(hidden)]
#[derive(Debug)]
pub struct FailedWith<E>(pub E);

/// See [`FailedWith`].
#[doc(hidden)]
pub trait KeepSource {
    /// The failure, with the error kept as its source.
    fn into_task_error(self) -> TaskError;
}

impl<E: std::error::Error + Send + Sync + 'static> KeepSource for FailedWith<E> {
    fn into_task_error(self) -> TaskError {
        TaskError::failed_with_source(self.0)
    }
}

/// See [`FailedWith`].
#[doc(hidden)]
pub trait DisplayOnly {
    /// The failure, with the error's text only.
    fn into_task_error(self) -> TaskError;
}

impl<E: fmt::Display> DisplayOnly for &FailedWith<E> {
    fn into_task_error(self) -> TaskError {
        TaskError::failed(&self.0)
    }
}

impl From<Error> for TaskError {
    fn from(error: Error) -> Self {
        TaskError::Error(error)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed { message, .. } => write!(f, "failed: {message}"),
            TaskError::Panicked { message, .. } => write!(f, "panicked: {message}"),
            TaskError::TimedOut { timeout } => write!(f, "timed out after {timeout:?}"),
            TaskError::Error(error) => error.fmt(f),
            TaskError::NotRetried(error) => error.fmt(f),
        }
    }
}

/// The code a task runs, with its arguments captured.
///
/// A body is shared (`Fn`, behind an `Arc`) rather than consumed: an attempt
/// that timed out may still be running when its retry starts.
#[derive(Clone)]
pub enum TaskBody {
    /// A plain body (a synchronous `fn`): CPU work, run on a blocking thread.
    Plain(Arc<dyn Fn(Attempt) -> BodyResult + Send + Sync>),
    /// An async body: run as a tokio task.
    Async(Arc<dyn Fn(Attempt) -> BodyFuture + Send + Sync>),
    /// An actor's constructor: builds its state.
    Construct(Arc<dyn Fn(Attempt) -> Result<ActorInstance, TaskError> + Send + Sync>),
    /// An actor method, run on the actor with its state.
    Method(ActorMethod),
}

/// An actor's state as a method sees it.
pub type StateMut<'a> = &'a mut (dyn Any + Send);

/// An actor's state as a shared method sees it.
pub type StateRef<'a> = &'a (dyn Any + Send);

/// A plain `&mut self` method body.
pub type MutBody = Arc<dyn Fn(Attempt, StateMut<'_>) -> BodyResult + Send + Sync>;

/// A plain `&self` method body.
pub type RefBody = Arc<dyn Fn(Attempt, StateRef<'_>) -> BodyResult + Send + Sync>;

/// An async `&mut self` method body.
pub type AsyncMutBody = Arc<dyn for<'a> Fn(Attempt, StateMut<'a>) -> LocalBodyFuture<'a> + Send + Sync>;

/// An async `&self` method body, with the concurrency group of its calls.
pub type AsyncRefBody = Arc<InGroup<dyn for<'a> Fn(Attempt, StateRef<'a>) -> LocalBodyFuture<'a> + Send + Sync>>;

/// A method body and the actor's concurrency group its calls belong to,
/// behind the body's one pointer, so a task's body stays as small as it was.
pub struct InGroup<F: ?Sized> {
    /// The group (`None`: the actor's default group, limited by `max_concurrency`).
    pub group: Option<&'static str>,
    /// The body.
    pub body: F,
}

impl<F: ?Sized> fmt::Debug for InGroup<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InGroup").field("group", &self.group).finish_non_exhaustive()
    }
}

/// An actor method body, by the access to the actor's state it needs.
#[derive(Clone)]
pub enum ActorMethod {
    /// `fn m(&mut self, ..)`: exclusive, plain.
    Mut(MutBody),
    /// `fn m(&self, ..)`: shared, plain.
    Ref(RefBody),
    /// `async fn m(&mut self, ..)`: exclusive, async.
    AsyncMut(AsyncMutBody),
    /// `async fn m(&self, ..)`: shared, async; several may interleave, up to
    /// the limit of its concurrency group.
    AsyncRef(AsyncRefBody),
}

impl fmt::Debug for ActorMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActorMethod::Mut(_) => "ActorMethod::Mut",
            ActorMethod::Ref(_) => "ActorMethod::Ref",
            ActorMethod::AsyncMut(_) => "ActorMethod::AsyncMut",
            ActorMethod::AsyncRef(_) => "ActorMethod::AsyncRef",
        })
    }
}

impl ActorMethod {
    /// A `&mut self` plain method.
    pub fn exclusive(f: impl Fn(Attempt, &mut (dyn Any + Send)) -> BodyResult + Send + Sync + 'static) -> TaskBody {
        TaskBody::Method(ActorMethod::Mut(Arc::new(f)))
    }

    /// A `&self` plain method.
    pub fn shared(f: impl Fn(Attempt, &(dyn Any + Send)) -> BodyResult + Send + Sync + 'static) -> TaskBody {
        TaskBody::Method(ActorMethod::Ref(Arc::new(f)))
    }

    /// A `&mut self` async method.
    pub fn exclusive_async<F>(f: F) -> TaskBody
    where
        F: for<'a> Fn(Attempt, &'a mut (dyn Any + Send)) -> LocalBodyFuture<'a> + Send + Sync + 'static,
    {
        TaskBody::Method(ActorMethod::AsyncMut(Arc::new(f)))
    }

    /// A `&self` async method, in the actor's default concurrency group.
    pub fn shared_async<F>(f: F) -> TaskBody
    where
        F: for<'a> Fn(Attempt, &'a (dyn Any + Send)) -> LocalBodyFuture<'a> + Send + Sync + 'static,
    {
        TaskBody::Method(ActorMethod::AsyncRef(Arc::new(InGroup { group: None, body: f })))
    }

    /// A `&self` async method in the named concurrency group, which the
    /// actor declares with its limit (`ActorOptions::concurrency_groups`).
    pub fn shared_async_in<F>(group: &'static str, f: F) -> TaskBody
    where
        F: for<'a> Fn(Attempt, &'a (dyn Any + Send)) -> LocalBodyFuture<'a> + Send + Sync + 'static,
    {
        TaskBody::Method(ActorMethod::AsyncRef(Arc::new(InGroup { group: Some(group), body: f })))
    }

    /// Whether the method needs the state to itself.
    pub fn is_exclusive(&self) -> bool {
        matches!(self, ActorMethod::Mut(_) | ActorMethod::AsyncMut(_))
    }
}

impl TaskBody {
    /// A plain body.
    pub fn plain(f: impl Fn(Attempt) -> BodyResult + Send + Sync + 'static) -> Self {
        TaskBody::Plain(Arc::new(f))
    }

    /// An async body.
    pub fn future<Fut>(f: impl Fn(Attempt) -> Fut + Send + Sync + 'static) -> Self
    where
        Fut: Future<Output = BodyResult> + Send + 'static,
    {
        TaskBody::Async(Arc::new(move |attempt| Box::pin(f(attempt))))
    }

    /// Whether this is a plain body of a remote function.
    pub fn is_plain(&self) -> bool {
        matches!(self, TaskBody::Plain(_))
    }

    /// An actor constructor.
    pub fn construct(f: impl Fn(Attempt) -> Result<ActorInstance, TaskError> + Send + Sync + 'static) -> Self {
        TaskBody::Construct(Arc::new(f))
    }

    /// The same body with `map` applied to each successful result (remote
    /// function bodies only; actor bodies are returned as they are).
    pub fn map_output(self, map: fn(Value) -> BodyResult) -> Self {
        match self {
            TaskBody::Plain(f) => TaskBody::plain(move |attempt| f(attempt).and_then(map)),
            TaskBody::Async(f) => TaskBody::future(move |attempt| {
                let fut = f(attempt);
                async move { fut.await.and_then(map) }
            }),
            actor @ (TaskBody::Construct(_) | TaskBody::Method(_)) => actor,
        }
    }
}

impl fmt::Debug for TaskBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskBody::Plain(_) => "TaskBody::Plain",
            TaskBody::Async(_) => "TaskBody::Async",
            TaskBody::Construct(_) => "TaskBody::Construct",
            TaskBody::Method(_) => "TaskBody::Method",
        })
    }
}

/// The three kinds of task in the unified model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// A call of a remote function.
    Normal,
    /// The task that builds an actor from its constructor arguments.
    ActorCreation {
        /// The actor being created.
        actor: ActorId,
    },
    /// A call of an actor method.
    ActorMethod {
        /// The actor called.
        actor: ActorId,
    },
}

/// One task: function, options, inputs, body and output.
pub struct TaskSpec {
    /// The task's id.
    pub id: TaskId,
    /// The function (or `Actor::method`) it runs.
    pub function: FunctionId,
    /// What kind of task it is.
    pub kind: TaskKind,
    /// How it is to be run.
    pub options: TaskOptions,
    /// The objects it waits for.
    pub deps: Deps,
    /// The code to run.
    pub body: TaskBody,
    /// Where its result goes.
    pub output: Arc<ObjectCell>,
    /// The task that submitted it, if it was submitted from a task.
    pub parent: Option<TaskId>,
    /// Where in the user's code it was submitted.
    pub caller: &'static Location<'static>,
    /// Its arguments as text, only when the call opted in with
    /// `record_args(true)`; arguments are redacted everywhere otherwise.
    pub args: Option<Arc<str>>,
    /// The `tracing` span current where it was submitted: the parent of its
    /// attempts' spans, so nested tasks form one trace tree. `None` when no
    /// span was current (or no subscriber listens).
    pub trace_parent: Option<Box<tracing::Span>>,
}

/// The span current on this thread, to become the parent of a task's spans;
/// `None` without asking for it when no subscriber wants task spans.
pub fn current_trace_parent() -> Option<Box<tracing::Span>> {
    if !tracing::span_enabled!(target: "rustyray::task", tracing::Level::INFO) {
        return None;
    }
    let span = tracing::Span::current();
    (!span.is_none()).then(|| Box::new(span))
}

impl TaskSpec {
    /// Names this task, for errors.
    pub fn origin(&self) -> TaskOrigin {
        TaskOrigin { task: self.id, function: self.function, name: self.options.name.clone() }
    }
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpec")
            .field("id", &self.id)
            .field("function", &self.function)
            .field("kind", &self.kind)
            .field("deps", &self.deps.len())
            .field("body", &self.body)
            .field("parent", &self.parent)
            .finish()
    }
}
