//! The in-process runtime of RustyRay, on tokio.
//!
//! A task's path through it, and the files that hold each step:
//!
//! ```text
//! submit ──► manager ──────────► scheduler ──► executor ──────► object cell ──► waiters
//! runtime/   manager/mod.rs      scheduler/    executor/        ObjectCell::    (woken by
//! shared.rs  submit.rs,          (priority,    (poll.rs: async,  complete, in    notification)
//! (Runner)   dependencies.rs     resources,    worker.rs: plain; rustyray-core;
//!            (the task table)    queues)       panics caught)    bytes counted in
//!                                                                accounting.rs
//!        ◄── outcome.rs: the attempt's report (protocol.rs) comes back; the
//!            task is retried or finalized, and dependencies.rs releases
//!            (or fails) the tasks that wait for its output.
//! ```
//!
//! - `runtime/`: the [`Runtime`] handle, its [`Builder`], and the `Runner`
//!   every task, object ref and actor handle calls.
//! - `manager/`: one event loop owning every task's lifecycle, a file per
//!   stage (submit, dependencies, dispatch, outcome, queries).
//! - `scheduler/`: which ready task runs next.
//! - `executor/`: runs one attempt and reports it back as a message.
//! - `protocol.rs`: the messages the manager receives; `task.rs`: a task's
//!   table entry and one attempt of it.
//! - `actor/`: actors' slots, threads, direct calls, directory and records.
//! - `accounting.rs`: object counts and bytes, exported objects by id.
//! - [`state`]: task and actor snapshots and statistics.
//! - [`metrics`]: per-function counters and latency histograms, and their
//!   Prometheus exposition (feature `metrics`).
//! - [`events`]: the lifecycle event stream.
//! - `timeline`: attempts as Chrome trace events.
//! - `progress` (feature `progress`): a progress bar over many refs.
//! - [`deterministic`] (feature `deterministic`): a test mode running every
//!   task on one thread in an order a seed picks, on virtual time.
//!
//! `ARCHITECTURE.md` beside this crate's manifest walks one task and one
//! failure through these files.
//!
//! Each task attempt runs inside a `tracing` span (`task`, target
//! `rustyray::task`, with the task id, function, name, attempt and parent
//! task), whose parent is the span current where the task was submitted.
//!
//! Applications use the `rustyray` crate, which re-exports this one.

#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]

mod accounting;
mod actor;
mod api;
mod config;
pub mod deterministic;
pub mod events;
mod executor;
mod manager;
pub mod metrics;
mod panic;
#[cfg(feature = "progress")]
pub mod progress;
mod protocol;
mod runtime;
mod scheduler;
pub mod state;
mod task;
mod timeline;
mod timer;
mod trim;

pub use api::{call_by_name, cancel, current_task, get, get_all, get_blocking, put, wait};
pub use events::{Event, EventKind, EventStream};
#[cfg(feature = "metrics")]
pub use metrics::MetricsCollector;
pub use runtime::{Builder, Runtime, init};
pub use state::{ActorInfo, ActorState, AttemptInfo, AttemptOutcome, Stats, TaskFilter, TaskInfo, TaskState};
