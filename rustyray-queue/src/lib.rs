//! The durable queue of RustyRay: `#[remote]` functions as jobs in a
//! database, the system of record, so that work survives crashes and any
//! number of workers on any number of machines share it.
//!
//! ```no_run
//! use rustyray_queue::{JobOptions, Queue, Worker};
//!
//! # async fn demo() -> Result<(), rustyray_queue::QueueError> {
//! // With `#[rustyray::remote] fn resize(path: String, width: u32) -> u64` in
//! // the binary, `resize::enqueue(&q, "a.png".into(), 800)` does the same, typed.
//! let q = Queue::connect("sqlite://jobs.db").await?; // created with its schema
//! let id = q.enqueue_by_name("app::resize", serde_json::json!(["a.png", 800]), JobOptions::default()).await?;
//! let worker = Worker::builder(&q).concurrency(4).start().await?;
//! let job = rustyray_queue::Job::<u64>::from_id(&q, id);
//! println!("{}", job.result().await?);
//! worker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The layers, top to bottom: [`Queue`] and [`Job`] (what producers use),
//! [`Worker`] and its [`Runner`]s (what runs jobs), `store` (every SQL
//! statement, by stage: enqueue, claim, complete, lease), `db` (connections,
//! migrations, the two dialects). Jobs move QUEUED -> RUNNING -> SUCCEEDED |
//! FAILED | CANCELLED; each run is an attempt, SUBMITTED -> RUNNING ->
//! SUCCEEDED | FAILED | CANCELLED | LOST. Delivery is at least once: a job may
//! run again after a crash, so job bodies should be idempotent.

#![deny(missing_docs)]

mod db;
mod error;
mod group_commit;
mod job;
mod metrics;
mod model;
mod queue;
mod results;
mod signal;
mod store;
mod worker;

pub use error::{QueueError, Result, redact_url};
pub use job::Job;
pub use model::{
    ActiveJob, AttemptInfo, AttemptState, DEFAULT_QUEUE, Event, JobFilter, JobId, JobInfo, JobOptions, JobState,
    LONGEST_DELAY, Micros, QueueStats, WorkerInfo, to_micros, to_system_time,
};
pub use queue::{DEFAULT_EVENT_RETENTION, DEFAULT_RESULT_LIMIT, Queue, QueueBuilder};
pub use results::{DirStore, ResultStore};
pub use signal::Signal;
pub use store::claim::Claimed;
pub use worker::remote::{AttemptRun, run_attempt};
pub use worker::runner::{Attempt, LocalRunner, Outcome, Runner, Stop, run_local};
pub use worker::{LONGEST_WAIT, Worker, WorkerBuilder};
