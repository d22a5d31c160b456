//! The network face of RustyRay's durable queue: an HTTP/JSON API (with an
//! OpenAPI document generated from its handlers), gRPC
//! (`rustyray.v1.JobService`, from `proto/rustyray.proto`, beside the
//! standard `grpc.health.v1.Health` for balancers and probes), bearer tokens
//! with `read` and `admin` roles, lifecycle events over server-sent events
//! and gRPC streams, and, with the `nats` feature, published to NATS
//! JetStream from the database's event outbox.
//!
//! ```no_run
//! use rustyray_queue::Queue;
//! use rustyray_service::{Role, Service, Tokens};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let q = Queue::connect("sqlite://jobs.db").await?;
//! let tokens = Tokens::new().with(std::env::var("ADMIN_TOKEN")?, Role::Admin);
//! let service = Service::builder(&q).tokens(tokens).public_health(true).build().await?;
//! // Mount `service.router()` in an axum app, or serve HTTP and gRPC on one port:
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! service.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! The same router serves an admin web page at `/admin` (a job list with
//! filters and live updates, each job's attempts with their errors and
//! backtraces, retry and cancel for admin tokens), where a token is given
//! once on a sign-in form and a session cookie does the rest.
//!
//! Layers: [`Service`] (configuration and serving) over `http` (routes,
//! auth, limits, OpenAPI), `admin` (the web page), `grpc` and
//! `grpc_health`, which share
//! `feed` (the event feed),
//! `health`, `auth` and one error type, [`ServiceError`], whose [`Code`]s
//! are the same on both protocols.

#![deny(missing_docs)]

mod admin;
mod auth;
mod error;
mod feed;
mod grpc;
mod grpc_health;
mod health;
mod http;
mod metrics;
#[cfg(feature = "nats")]
mod nats;
mod service;

/// The generated gRPC types: messages, the server trait and a client.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("rustyray.v1");
}

pub use auth::{MIN_TOKEN_LEN, Role, TOKENS_ENV, TOKENS_FILE_ENV, Tokens};
pub use error::{Code, ErrorBody, Result, ServiceError};
pub use feed::GAP_WAIT;
pub use health::{Check, CheckResult, Health, HealthStatus, SLOW_DATABASE};
pub use http::jobs::{JobPage, JobStateResponse, SubmitOptions, SubmitRequest, SubmitResponse};
#[cfg(feature = "nats")]
pub use nats::{NatsConfig, message_id};
pub use service::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_WATCHERS, DEFAULT_REQUEST_TIMEOUT, HEALTH_FRESH_FOR,
    Service, ServiceBuilder, router,
};
