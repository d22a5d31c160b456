//! The one error type of RustyRay.
//!
//! Every failure a user can see is a variant of [`Error`]: a task that returned
//! `Err`, panicked, was cancelled or timed out; an actor that died; a name that
//! is not registered; bytes that do not decode; a runtime that has shut down.
//! A runtime that cannot be built fails with a [`BuildError`] of its own,
//! which converts into [`Error::Build`].
//! Errors that belong to a task carry a [`TaskOrigin`] naming the task and
//! function where the failure began, and that origin travels unchanged to every
//! dependent task and every `get`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ids::{ActorId, FunctionId, ObjectId, TaskId};

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the task (and its function) where a failure began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskOrigin {
    /// The task that failed.
    pub task: TaskId,
    /// The function (or `Actor::method`) the task ran.
    pub function: FunctionId,
    /// The name given with `.name(..)`, if any.
    pub name: Option<Arc<str>>,
}

impl fmt::Display for TaskOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} `{}` ({})", self.task, name, self.function),
            None => write!(f, "{} ({})", self.task, self.function),
        }
    }
}

/// A task body's own error value, shared by every reader of the failure.
///
/// It dereferences to the error, so [`Error::TaskFailed`]'s `source()` is
/// the body's error itself and `downcast_ref` finds its type.
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    /// Keeps `error`.
    pub fn new<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        ErrorSource(Arc::new(error))
    }
}

impl std::ops::Deref for ErrorSource {
    type Target = dyn std::error::Error + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Why an actor died, carried by [`Error::ActorDied`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeathReason {
    /// `kill` ended it.
    Killed,
    /// Every handle to it was dropped, so nothing could call it again.
    HandlesDropped,
    /// Its constructor failed (or was cancelled) the first time.
    NeverBuilt {
        /// The constructor's error, when there was one.
        error: Option<String>,
    },
    /// A method panicked and no restart was left.
    Crashed {
        /// The panic, when it was known.
        error: Option<String>,
    },
    /// A method panicked, and the constructor failed while rebuilding it.
    RebuildFailed {
        /// The constructor's error.
        error: String,
    },
    /// The runtime it lived on shut down.
    RuntimeShutDown,
    /// It is not alive, for no recorded reason.
    NotAlive,
    /// The runtime no longer remembers it.
    Gone,
}

impl fmt::Display for DeathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeathReason::Killed => f.write_str("it was killed"),
            DeathReason::HandlesDropped => f.write_str("every handle to it was dropped"),
            DeathReason::NeverBuilt { error: Some(error) } => write!(f, "it was never built: {error}"),
            DeathReason::NeverBuilt { error: None } => f.write_str("it was never built"),
            DeathReason::Crashed { error: Some(error) } => write!(f, "a method panicked: {error}"),
            DeathReason::Crashed { error: None } => f.write_str("a method panicked"),
            DeathReason::RebuildFailed { error } => write!(f, "its constructor failed when restarting: {error}"),
            DeathReason::RuntimeShutDown => f.write_str("the runtime shut down"),
            DeathReason::NotAlive => f.write_str("it is not alive"),
            DeathReason::Gone => f.write_str("it no longer exists"),
        }
    }
}

/// Everything that can go wrong in RustyRay, one variant per kind of failure.
///
/// `Error` is `Clone`: a failed object may be read by many getters and
/// dependents, and each receives the same error.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task's body returned `Err`; `message` is that error's `Display`.
    ///
    /// When the error's type implements `std::error::Error` (and is `Send +
    /// Sync`), the error itself is kept too, as this error's
    /// [`source`](std::error::Error::source); downcast it to get it back.
    #[error("{origin} failed after {attempts} attempt(s): {message}")]
    TaskFailed {
        /// Where the failure began.
        origin: TaskOrigin,
        /// The error's `Display` text.
        message: String,
        /// The Rust type name of the error value.
        error_type: &'static str,
        /// How many attempts ran.
        attempts: u32,
        /// The error value, when its type implements `std::error::Error`.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The task's body panicked.
    #[error("{origin} panicked after {attempts} attempt(s): {message}")]
    TaskPanicked {
        /// Where the panic happened.
        origin: TaskOrigin,
        /// The panic payload, when it was a string.
        message: String,
        /// The backtrace captured at the panic, when capturing was enabled.
        backtrace: Option<Arc<str>>,
        /// How many attempts ran.
        attempts: u32,
    },
    /// The task was cancelled (directly, or because its parent was).
    #[error("{origin} was cancelled")]
    Cancelled {
        /// The cancelled task.
        origin: TaskOrigin,
    },
    /// An attempt ran longer than the task's timeout.
    #[error("{origin} timed out after {timeout:?} ({attempts} attempt(s))")]
    TimedOut {
        /// The task that timed out.
        origin: TaskOrigin,
        /// The timeout that was exceeded.
        timeout: Duration,
        /// How many attempts ran.
        attempts: u32,
    },
    /// The task asks for more resources than the runtime has in total, so it could never run.
    #[error("{origin} can never be scheduled: it needs {demand} {resource} but the runtime has {capacity}")]
    Unschedulable {
        /// The task.
        origin: TaskOrigin,
        /// The resource that is short (`CPU` or a custom resource name).
        resource: Arc<str>,
        /// How much the task asks for.
        demand: f64,
        /// How much the runtime has in total.
        capacity: f64,
    },
    /// The task names a queue the runtime was not built with.
    #[error("{origin} names the queue `{queue}`, which the runtime does not have (known queues: {known})")]
    UnknownQueue {
        /// The task.
        origin: TaskOrigin,
        /// The queue it named.
        queue: Arc<str>,
        /// The queues the runtime has, comma separated.
        known: String,
    },
    /// An option given to a task, actor or runtime builder is out of range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option's name, e.g. `timeout` or `num_cpus`.
        option: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// The actor is dead: it crashed with no restarts left, or it was killed.
    #[error("{actor} ({class}) is dead: {reason}")]
    ActorDied {
        /// The actor.
        actor: ActorId,
        /// The actor's type.
        class: &'static str,
        /// Why it died.
        reason: DeathReason,
    },
    /// No actor has this name.
    #[error("no actor is named `{name}`")]
    ActorNotFound {
        /// The name looked up.
        name: String,
    },
    /// An actor with this name already exists.
    #[error("an actor named `{name}` already exists")]
    ActorNameTaken {
        /// The name asked for.
        name: String,
    },
    /// The named actor exists but is of another type than the one asked for.
    #[error("the actor named `{name}` is a `{actual}`, not a `{expected}`")]
    ActorTypeMismatch {
        /// The name looked up.
        name: String,
        /// The type asked for.
        expected: &'static str,
        /// The actor's real type.
        actual: &'static str,
    },
    /// No remote function is registered under this name.
    #[error("no remote function is registered as `{name}`{}", suggestions(near))]
    FunctionNotFound {
        /// The name looked up.
        name: String,
        /// Registered names close to it.
        near: Vec<&'static str>,
    },
    /// Bytes did not decode into the expected type, or a value did not encode.
    #[error("codec error while {context}: {message}")]
    Codec {
        /// What was being encoded or decoded.
        context: String,
        /// The codec's explanation.
        message: String,
    },
    /// An object holds a value of another type than the `ObjectRef` claims.
    #[error("{object} holds a value that is not a `{expected}`")]
    TypeMismatch {
        /// The object.
        object: ObjectId,
        /// The type the reader asked for.
        expected: &'static str,
    },
    /// The object was freed (no `ObjectRef` was left) before it was looked up by id.
    #[error("{object} is no longer in the object store: every ObjectRef to it was dropped")]
    ObjectLost {
        /// The object.
        object: ObjectId,
    },
    /// An object was read before it was written.
    #[error("{object} is not ready yet")]
    NotReady {
        /// The object.
        object: ObjectId,
    },
    /// A fault inside RustyRay itself, not in the task or its use of the
    /// API: a broken invariant the runtime caught instead of panicking.
    #[error("internal fault in RustyRay: {reason}")]
    Internal {
        /// Which invariant broke.
        reason: &'static str,
    },
    /// A task body asked for its arguments after its last attempt had taken them.
    #[error("the arguments were already moved into an earlier attempt (attempt {attempt})")]
    ArgumentConsumed {
        /// The attempt that asked.
        attempt: u32,
    },
    /// A blocking wait was attempted on a thread that drives async tasks.
    #[error(
        "get_blocking would block a thread that runs async tasks; use `.get().await` in async code, or call it from a plain (non-async) task body"
    )]
    WouldBlock,
    /// A deterministic run could make no progress: nothing could run, no
    /// timer was pending, and tasks were still waiting. Each waiting task
    /// fails with this error, which names them all.
    #[error("deadlock in a deterministic run (seed {seed}): nothing can run and no timer is pending, but {waiting}")]
    Deadlock {
        /// The run's seed.
        seed: u64,
        /// The tasks that were waiting, and what each was doing.
        waiting: String,
    },
    /// A blocking wait was asked for in a deterministic run, whose one thread
    /// runs every task: it would wait forever for work that thread must do.
    #[error(
        "get_blocking on {object}, which is not ready, in a deterministic runtime: its one thread runs every task, so the wait could never end; use `.get().await`"
    )]
    BlockingInDeterministic {
        /// The object asked for.
        object: ObjectId,
    },
    /// A wait with a deadline ran out before the object was ready.
    #[error("{object} was not ready within {timeout:?}")]
    WaitTimedOut {
        /// The object waited for.
        object: ObjectId,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The runtime this call needs has shut down.
    #[error("the RustyRay runtime has shut down")]
    RuntimeShutdown,
    /// There is no runtime to run this call on.
    #[error("no RustyRay runtime: call rustyray::init() first, or run the code inside Runtime::scope")]
    NoRuntime,
    /// A runtime could not be built or started; see [`BuildError`].
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Why a runtime could not be built or started: the failures of
/// `Builder::build` and `init`, apart from the failures of tasks.
///
/// `?` turns it into an [`Error`] ([`Error::Build`]), so code returning
/// [`Result`] can write `rustyray::init()?`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `init` was called while a default runtime is alive.
    #[error(
        "a default RustyRay runtime is already running; use Runtime::current(), or build more with Runtime::builder()"
    )]
    AlreadyInitialized,
    /// A runtime was built outside of any tokio runtime.
    #[error(
        "RustyRay runs on tokio: build the runtime inside a tokio runtime (e.g. #[tokio::main]) or pass one with Builder::tokio_handle"
    )]
    NoTokioRuntime,
    /// The tokio runtime has no timer, for a runner that needs one. The
    /// in-process runtime does not: its deadlines (task timeouts, retry
    /// backoff, `wait`'s timeout) run on a timer of its own, so it never
    /// returns this error.
    #[error(
        "RustyRay needs tokio's timer: build the tokio runtime with `enable_time()` (or `enable_all()`; #[tokio::main] does)"
    )]
    NoTokioTimer,
    /// A builder setting is out of range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The setting's name, e.g. `num_cpus` or `queue_limit`.
        option: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

impl BuildError {
    /// A short, stable name for the kind of failure, as [`Error::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            BuildError::AlreadyInitialized => "already_initialized",
            BuildError::NoTokioRuntime => "no_tokio_runtime",
            BuildError::NoTokioTimer => "no_tokio_timer",
            BuildError::InvalidOption { .. } => "invalid_option",
        }
    }
}

fn suggestions(near: &[&'static str]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
    }
}

impl Error {
    /// The task where this error began, for task-level failures.
    pub fn origin(&self) -> Option<&TaskOrigin> {
        match self {
            Error::TaskFailed { origin, .. }
            | Error::TaskPanicked { origin, .. }
            | Error::Cancelled { origin }
            | Error::TimedOut { origin, .. }
            | Error::Unschedulable { origin, .. }
            | Error::UnknownQueue { origin, .. } => Some(origin),
            _ => None,
        }
    }

    /// Whether this error means the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }

    /// A short, stable name for the kind of failure (`task_failed`, `cancelled`, ...),
    /// for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::TaskFailed { .. } => "task_failed",
            Error::TaskPanicked { .. } => "task_panicked",
            Error::Cancelled { .. } => "cancelled",
            Error::TimedOut { .. } => "timed_out",
            Error::Unschedulable { .. } => "unschedulable",
            Error::UnknownQueue { .. } => "unknown_queue",
            Error::InvalidOption { .. } => "invalid_option",
            Error::ActorDied { .. } => "actor_died",
            Error::ActorNotFound { .. } => "actor_not_found",
            Error::ActorNameTaken { .. } => "actor_name_taken",
            Error::ActorTypeMismatch { .. } => "actor_type_mismatch",
            Error::FunctionNotFound { .. } => "function_not_found",
            Error::Codec { .. } => "codec",
            Error::TypeMismatch { .. } => "type_mismatch",
            Error::ObjectLost { .. } => "object_lost",
            Error::NotReady { .. } => "not_ready",
            Error::Internal { .. } => "internal",
            Error::ArgumentConsumed { .. } => "argument_consumed",
            Error::WouldBlock => "would_block",
            Error::WaitTimedOut { .. } => "wait_timed_out",
            Error::Deadlock { .. } => "deadlock",
            Error::BlockingInDeterministic { .. } => "blocking_in_deterministic",
            Error::RuntimeShutdown => "runtime_shutdown",
            Error::NoRuntime => "no_runtime",
            Error::Build(error) => error.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(name: Option<&str>) -> TaskOrigin {
        TaskOrigin { task: TaskId::from_u64(7), function: FunctionId::new(&"app::add"), name: name.map(Arc::from) }
    }

    #[test]
    fn task_errors_name_task_and_function() {
        let e = Error::TaskFailed {
            origin: origin(None),
            message: "boom".into(),
            error_type: "String",
            attempts: 1,
            source: None,
        };
        assert_eq!(e.to_string(), "task #7 (app::add) failed after 1 attempt(s): boom");
        let e = Error::Cancelled { origin: origin(Some("resize")) };
        assert_eq!(e.to_string(), "task #7 `resize` (app::add) was cancelled");
        assert_eq!(e.origin().map(|o| o.task), Some(TaskId::from_u64(7)));
    }

    #[test]
    fn not_found_lists_near_matches() {
        let e = Error::FunctionNotFound { name: "app::ad".into(), near: vec!["app::add", "app::and"] };
        assert_eq!(
            e.to_string(),
            "no remote function is registered as `app::ad`; did you mean `app::add`, `app::and`?"
        );
        let e = Error::FunctionNotFound { name: "zzz".into(), near: vec![] };
        assert_eq!(e.to_string(), "no remote function is registered as `zzz`");
    }

    #[test]
    fn actor_died_names_its_reason() {
        let e = Error::ActorDied {
            actor: ActorId::from_u64(3),
            class: "Counter",
            reason: DeathReason::Crashed { error: Some("boom".into()) },
        };
        assert!(e.to_string().ends_with("(Counter) is dead: a method panicked: boom"), "{e}");
        assert_eq!(DeathReason::Killed.to_string(), "it was killed");
    }

    #[test]
    fn build_errors_convert_with_their_message_and_kind() {
        fn start() -> Result<()> {
            Err(BuildError::NoTokioRuntime)?;
            Ok(())
        }
        let Err(error) = start() else { panic!("the build error was dropped") };
        assert!(matches!(error, Error::Build(BuildError::NoTokioRuntime)), "{error:?}");
        assert_eq!(error.to_string(), BuildError::NoTokioRuntime.to_string());
        assert_eq!(error.kind(), "no_tokio_runtime");
    }
}
