//! The in-process runtime of RustyRay, on tokio.
//!
//! Data flows one way through it:
//!
//! ```text
//! submit ──► manager ──► scheduler ──► executor ──► object store ──► waiters
//!  (Runner)   (event loop:   (priority,    (tokio task or   (cell written,   (woken by
//!              task table,    queues,       blocking pool,   refcounted)      notification)
//!              dependencies)  resources)    panics caught)
//! ```
//!
//! - `manager`: one event loop owning every task's lifecycle.
//! - `scheduler`: which ready task runs next.
//! - `executor`: runs one attempt and reports it back as a message.
//! - `store`: object accounting and lookup by id.
//! - [`state`]: task records and statistics.
//! - [`metrics`]: per-function counters and latency histograms, and their
//!   Prometheus exposition (feature `metrics`).
//! - [`events`]: the lifecycle event stream.
//! - `timeline`: attempts as Chrome trace events.
//! - `progress` (feature `progress`): a progress bar over many refs.
//!
//! Each task attempt runs inside a `tracing` span (`task`, target
//! `rustyray::task`, with the task id, function, name, attempt and parent
//! task), whose parent is the span current where the task was submitted.
//!
//! Applications use the `rustyray` crate, which re-exports this one.

#![deny(missing_docs)]

mod accounting;
mod actor;
mod api;
mod config;
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

pub use api::{call_by_name, cancel, current_task, get, get_all, get_blocking, put, wait};
pub use events::{Event, EventKind, EventStream};
#[cfg(feature = "metrics")]
pub use metrics::MetricsCollector;
pub use runtime::{Builder, Runtime, init};
pub use state::{ActorInfo, ActorState, AttemptInfo, AttemptOutcome, Stats, TaskFilter, TaskInfo, TaskState};
