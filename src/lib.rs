//! Ray's programming model for Rust: remote functions, object refs that form
//! task graphs, a shared object store and actors, in-process on tokio.
//!
//! ```
//! use rustyray::prelude::*;
//!
//! #[rustyray::remote]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! #[tokio::main]
//! async fn main() -> rustyray::Result<()> {
//!     let rt = rustyray::Runtime::builder().num_cpus(2).build()?;
//!     rt.scope(async {
//!         let a: ObjectRef<i64> = add::remote(1, 2); // returns at once
//!         let b = add::remote(&a, 10);               // waits for `a`
//!         assert_eq!(rustyray::get(&b).await?, 13);
//!         assert_eq!(add(1, 2), 3);                  // still a plain function
//!         Ok::<_, rustyray::Error>(())
//!     })
//!     .await?;
//!     rt.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! The pieces:
//! - [`macro@remote`] turns a function (plain or `async`) into a remote
//!   function: `f::remote(args..)` submits a task and returns an
//!   [`ObjectRef`] at once; `f::options()` sets retries, timeout, priority,
//!   queue, resources and a name for one call.
//! - `#[remote(num_returns = n)]` on a function returning an `n`-tuple gives
//!   one `ObjectRef` per element, each its own object ([`ReturnsBuilder`]).
//! - `#[remote(streaming)]` on a function whose last parameter is a
//!   [`Yield<T>`](Yield) gives an [`ObjectStream<T>`](ObjectStream): one
//!   `ObjectRef` per item, read as the function sends them, with
//!   backpressure ([`StreamBuilder::buffer`]).
//! - [`ObjectRef`] is a typed future of a task's result. Pass it (or `&` it)
//!   to another remote call to build a graph; read it with [`get`],
//!   [`get_all`], [`wait`] or [`get_blocking`].
//! - [`Runtime`] runs the tasks on the caller's tokio runtime; [`init`] makes
//!   the process default, [`Runtime::scope`] makes one current for a future.
//! - [`registry`] finds remote functions by name, for calls with encoded
//!   arguments ([`call_by_name`]).
//! - Observability: every attempt runs in a `tracing` span; the runtime
//!   reports Prometheus metrics (`Runtime::metrics_text`, feature `metrics`),
//!   a Chrome-trace timeline ([`Runtime::timeline`]), a stream of lifecycle
//!   [`Event`]s ([`Runtime::subscribe`]), and a progress bar over many refs
//!   (`progress::get_all_with_progress`, feature `progress`). Arguments stay
//!   out of all of them unless a call opts in with `.record_args(true)`.
//!
//! - [`deterministic`]: a test mode (`Builder::deterministic(seed)`, feature
//!   `deterministic`) that runs a task graph on one thread in an order the
//!   seed picks, on virtual time, so a failing interleaving replays exactly.
//!
//! The semantics (ordering, readiness, failure propagation, object lifetime,
//! cancellation, retries, shutdown) are written down in `docs/semantics.md`.

#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]

pub use rustyray_core::{
    ActorBuilder, ActorHandle, ActorId, ActorOptions, Backoff, BuildError, ConcurrencyGroup, DeathReason, Error,
    ErrorSource, FunctionId, GetSize, ObjectId, ObjectRef, ObjectSize, ObjectStream, Result, ReturnsBuilder,
    StreamBuilder, TaskArg, TaskBuilder, TaskId, TaskKind, TaskOptions, TaskOrigin, Yield, codec, get_actor, kill,
};
pub use rustyray_macros::{actor, method, remote};
#[cfg(feature = "metrics")]
pub use rustyray_runtime::MetricsCollector;
pub use rustyray_runtime::deterministic;
#[cfg(feature = "progress")]
pub use rustyray_runtime::progress;
pub use rustyray_runtime::{
    ActorInfo, ActorState, AttemptInfo, AttemptOutcome, Builder, Event, EventKind, EventStream, Runtime, Stats,
    TaskFilter, TaskInfo, TaskState, call_by_name, cancel, current_task, get, get_all, get_blocking, init, put, wait,
};

/// Durable jobs: `#[remote]` functions enqueued into SQLite or PostgreSQL
/// and run by workers that survive crashes (see the crate `rustyray-queue`).
#[cfg(feature = "queue")]
pub mod queue {
    pub use rustyray_queue::*;
}

/// Durable jobs on a Ray cluster: each attempt a Ray job, through the Ray
/// Jobs API (see the crate `rustyray-ray`). `app worker --runner ray-job
/// --ray-address URL` uses it from the command line.
#[cfg(feature = "ray")]
pub mod ray {
    pub use rustyray_ray::*;
}

#[cfg(feature = "queue")]
pub mod cli;

/// The job service: HTTP/JSON and gRPC over the durable queue, with token
/// roles and lifecycle events (SSE, gRPC streams, NATS JetStream with the
/// `nats` feature).
#[cfg(feature = "service")]
pub mod service {
    pub use rustyray_service::*;
}

/// Remote functions by name: list them, look them up.
///
/// Registration relies on the linker keeping the registering code: a function
/// in a crate the final binary never refers to may not be linked, and then it
/// is not registered. Refer to such a crate from the binary (call any item of
/// it, or `use that_crate as _;`) to keep its functions.
pub mod registry {
    pub use rustyray_core::registry::{RegisteredFunction, functions, lookup};
}

/// What most applications import: `use rustyray::prelude::*;`.
pub mod prelude {
    pub use crate::{ActorHandle, Error, ObjectRef, Result, Runtime, TaskArg, actor, remote};
}

/// Items generated code refers to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use rustyray_core::actor::{assert_actor, state_mut, state_ref};
    pub use rustyray_core::call::{assert_remote_output, describe_args};
    pub use rustyray_core::inventory;
    pub use rustyray_core::registry::RegisteredFunction;
    pub use rustyray_core::returns::{MultipleReturns, assert_multiple_returns};
    pub use rustyray_core::serde_json;
    pub use rustyray_core::size::{ProbeGetSize, ProbeUnsized, SignatureType, SizeProbe};
    pub use rustyray_core::stream::{DEFAULT_BUFFER, StreamSource, StreamingFunction};
    pub use rustyray_core::value::{ArgDecoder, ArgOps, JsonArgs, OutputOps, arg_ops, assert_stream_item, output_ops};
    pub use rustyray_core::{
        Actor, ActorConstructor, ActorInstance, ActorMethod, ActorRef, ActorRemote, ArgSlot, ArgTuple, DisplayOnly,
        FailedWith, FunctionId, JobArgs, JobQueue, KeepSource, RemoteFunction, TaskBody, TaskError, Value,
    };
}

/// The README's code, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
