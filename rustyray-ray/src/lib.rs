//! The Ray cluster runner of RustyRay's durable queue: each attempt of a
//! job runs as one Ray job on a real Ray cluster, through the Ray Jobs REST
//! API, with the same database-visible semantics as the local runner
//! (states, attempts, errors, results, retries, timeouts, cancellation).
//!
//! ```no_run
//! use rustyray_queue::{Queue, Worker};
//! use rustyray_ray::RayJobRunner;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // This binary defines the #[remote] functions and hands its arguments to
//! // `rustyray::cli::run()`, so a Ray job can run `<it> run-attempt ID --db URL`.
//! let q = Queue::connect("postgres://app@db-host/app").await?;
//! let runner = RayJobRunner::new("http://ray-head:8265")?.upload_binary(true);
//! let worker = Worker::builder(&q).concurrency(16).runner(runner).start().await?;
//! # worker.shutdown().await; Ok(()) }
//! ```
//!
//! The pieces: [`RayClient`] (typed calls to the dashboard, token auth,
//! [`RayError`]), [`RayJobRunner`] (submit, follow, reconcile, stop), the
//! binary's package upload for multi-node clusters, and a circuit breaker
//! that pauses claiming while the dashboard is unreachable.
//!
//! Which database works where: a SQLite file only when every Ray node sees
//! that same file (a single-node cluster on the worker's machine);
//! PostgreSQL otherwise, reachable from every node.

#![deny(missing_docs)]

mod breaker;
mod client;
mod error;
mod package;
mod runner;

pub use client::{JobDetails, JobStatus, JobSubmission, RayClient, RayVersion};
pub use error::{RayError, Result};
pub use runner::{BinaryMode, RayJobRunner};
