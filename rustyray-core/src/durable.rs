//! The seam between `#[remote]` functions and a durable job queue.
//!
//! `f::enqueue(&q, args..)` and `f::options()...enqueue(&q, args..)` are
//! generated for every remote function, whatever queue crate is linked: they
//! encode the arguments as JSON and hand an [`EnqueueCall`] to any type that
//! implements [`JobQueue`]. The durable queue (`rustyray::queue::Queue`)
//! implements it; the core knows nothing of databases.

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::options::TaskOptions;

/// When a job may start, at the earliest.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunAt {
    /// This long after the job is enqueued.
    After(Duration),
    /// At this time (a past time means at once).
    At(SystemTime),
}

/// One call to be stored as a job: the function's registered name, its
/// arguments as a JSON array (or the reason they could not be encoded), its
/// options and its idempotency key.
#[derive(Debug)]
pub struct EnqueueCall {
    /// The stable name of the function (`crate::module::function`).
    pub function: &'static str,
    /// The arguments as a JSON array, one element per parameter; `Err` holds
    /// why they could not be encoded.
    pub args: Result<serde_json::Value, String>,
    /// The options set with `f::options()`.
    pub options: TaskOptions,
    /// The key the job is enqueued under, if any: a second enqueue with the
    /// same key stores nothing and answers with the first job.
    pub idempotency_key: Option<String>,
}

/// A store of durable jobs that `#[remote]` functions can be enqueued into.
///
/// Implemented by the durable queue; generated code calls it, users rarely do.
pub trait JobQueue: Sync {
    /// The typed handle of one enqueued job, whose result is a `T`.
    type Job<T: Send + 'static>: Send;
    /// Why an enqueue failed.
    type Error: Send;

    /// Stores one call as a job; committed when the future resolves.
    fn enqueue_call<T: Send + 'static>(
        &self,
        call: EnqueueCall,
    ) -> impl Future<Output = Result<Self::Job<T>, Self::Error>> + Send;

    /// Stores many calls as jobs, all or none, in one transaction.
    fn enqueue_calls<T: Send + 'static>(
        &self,
        calls: Vec<EnqueueCall>,
    ) -> impl Future<Output = Result<Vec<Self::Job<T>>, Self::Error>> + Send;

    /// Checks options that a batch of calls of `function` shares, apart from
    /// any call: a batch with no calls and invalid options is refused as a
    /// batch with calls would be, not answered with no jobs.
    fn check_options(&self, function: &'static str, options: &TaskOptions) -> Result<(), Self::Error>;
}

/// Encodes an argument tuple as the JSON array a job stores.
pub fn encode_args<A: serde::Serialize>(args: &A) -> Result<serde_json::Value, String> {
    match serde_json::to_value(args) {
        Ok(serde_json::Value::Null) => Ok(serde_json::Value::Array(Vec::new())),
        Ok(value) => Ok(value),
        Err(error) => Err(error.to_string()),
    }
}

/// Arguments that can be stored as a job of queue `Q`: every serde type.
///
/// The queue parameter only defers the check to the call: generated
/// `f::enqueue` functions name it, so a parameter type without serde is
/// reported once, by the signature check, not again by `enqueue`.
pub trait JobArgs<Q: ?Sized> {
    /// The arguments as the JSON array a job stores.
    fn to_job_json(&self) -> Result<serde_json::Value, String>;
}

impl<Q: ?Sized, T: serde::Serialize> JobArgs<Q> for T {
    fn to_job_json(&self) -> Result<serde_json::Value, String> {
        encode_args(self)
    }
}
