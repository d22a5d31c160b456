//! The runtime-agnostic vocabulary of RustyRay.
//!
//! This crate says what a task *is* without deciding how it runs: ids,
//! [`TaskSpec`] (one description for remote calls, actor creations and actor
//! method calls), [`TaskArg`], [`TaskOptions`], typed [`ObjectRef`]s, the
//! [`Error`] enum, the [`codec`] used wherever bytes cross a boundary, and the
//! [`registry`] of remote functions by name. Execution lives behind the
//! [`Runner`] trait: the in-process tokio runtime in `rustyray-runtime` is one
//! runner; a durable queue or a cluster can be others.
//!
//! Applications use the `rustyray` crate, which re-exports what they need.

#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod actor;
pub mod arg;
pub mod call;
pub mod codec;
pub mod context;
pub mod durable;
pub mod error;
pub mod ids;
pub mod object;
pub mod options;
pub mod registry;
pub mod returns;
pub mod runner;
pub mod size;
pub mod spec;
pub mod stream;
mod sync;
pub mod value;

pub use actor::{
    Actor, ActorBuilder, ActorConfig, ActorConstructor, ActorHandle, ActorOptions, ActorRef, ActorRemote,
    ConcurrencyGroup, WeakActorRef, get_actor, kill,
};
pub use arg::{ArgSlot, TaskArg};
pub use call::{ArgTuple, ArgValue, RemoteArg, RemoteFunction, RemoteOutput, TaskBuilder};
pub use durable::{EnqueueCall, JobArgs, JobQueue, RunAt};
pub use error::{BuildError, DeathReason, Error, ErrorSource, Result, TaskOrigin};
pub use ids::{ActorId, FunctionId, ObjectId, TaskId};
pub use object::{ObjectCell, ObjectRef, Value};
pub use options::{Backoff, TaskOptions};
pub use returns::{MultipleReturns, ReturnsBuilder};
pub use runner::Runner;
pub use size::{GetSize, ObjectSize};
pub use spec::{
    ActorInstance, ActorMethod, Attempt, BodyFuture, BodyResult, Deps, LocalBodyFuture, TaskBody, TaskError, TaskKind,
    TaskSpec,
};
#[doc(hidden)]
pub use spec::{DisplayOnly, FailedWith, KeepSource};
pub use stream::{ObjectStream, StreamBuilder, StreamSource, StreamingFunction, Yield};
pub use value::{ArgOps, OutputOps, TaskOutput, TaskValue};

#[doc(hidden)]
pub use inventory;
#[doc(hidden)]
pub use serde_json;
