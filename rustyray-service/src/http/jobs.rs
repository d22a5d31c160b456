//! Job routes: submit, read one, list with filters and cursor paging,
//! cancel, retry, and the running jobs.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use rustyray_queue::{ActiveJob, JobFilter, JobId, JobInfo, JobOptions, JobState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Json, Path, Query, Shared};
use crate::error::{ErrorBody, Result, ServiceError};

/// How a submitted job is to be run; every field is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SubmitOptions {
    /// The queue (default `default`).
    pub queue: Option<String>,
    /// -100..=100, higher first.
    #[schema(minimum = -100, maximum = 100)]
    pub priority: i32,
    /// How many times a failed attempt is retried.
    #[schema(maximum = 1000)]
    pub max_retries: u32,
    /// Backoff between attempts, `[initial_ms, max_ms]`.
    pub backoff_ms: Option<[u64; 2]>,
    /// How long one attempt may run, in milliseconds.
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Not before this many milliseconds from now.
    pub run_after_ms: Option<u64>,
    /// A name shown in listings.
    pub name: Option<String>,
    /// CPU units an attempt holds.
    pub num_cpus: Option<f64>,
    /// Whether the arguments may appear in listings and events.
    pub record_args: bool,
    /// Makes the submit idempotent: a second submit with the key of a job
    /// still in the database writes nothing and answers for that job, so a
    /// client may retry a submit it got no answer for (1 to 255 bytes).
    pub idempotency_key: Option<String>,
}

impl SubmitOptions {
    /// The queue's options; out-of-range values are INVALID_ARGUMENT.
    pub(crate) fn into_job_options(self) -> Result<JobOptions> {
        let options = JobOptions {
            queue: self.queue,
            priority: self.priority,
            max_retries: self.max_retries,
            backoff: self.backoff_ms.map(|[a, b]| (Duration::from_millis(a), Duration::from_millis(b))),
            timeout: self.timeout_ms.map(Duration::from_millis),
            run_after: self.run_after_ms.map(Duration::from_millis),
            run_at: None,
            name: self.name,
            num_cpus: self.num_cpus,
            record_args: self.record_args,
            idempotency_key: self.idempotency_key,
        };
        options.validate()?;
        Ok(options)
    }
}

/// A job to write.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The registered function, `crate::module::function`.
    pub function: String,
    /// The arguments: a JSON array with one element per parameter.
    #[serde(default = "no_args")]
    pub args: serde_json::Value,
    /// How to run it.
    #[serde(default)]
    pub options: SubmitOptions,
}

fn no_args() -> serde_json::Value {
    serde_json::Value::Array(Vec::new())
}

/// The job just written.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SubmitResponse {
    /// Its id.
    pub id: JobId,
    /// QUEUED (or, under an idempotency key, the state of the job the key
    /// names).
    pub state: JobState,
    /// Its function.
    pub function: String,
    /// Its queue.
    pub queue: String,
}

/// Which jobs to list, newest first.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this state: QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED
    /// (in any case). An empty value, here and in the other filters, is no
    /// filter.
    #[serde(default, deserialize_with = "state_param")]
    pub state: Option<JobState>,
    /// Only this queue.
    #[serde(default, deserialize_with = "text_param")]
    pub queue: Option<String>,
    /// Only this function.
    #[serde(default, deserialize_with = "text_param")]
    pub function: Option<String>,
    /// Only jobs whose id, name or function contains this text.
    #[serde(default, deserialize_with = "text_param")]
    pub search: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "text_param")]
    pub cursor: Option<String>,
}

/// A text filter; empty (`?queue=`, as a form with a blank field sends it)
/// is none.
fn text_param<'de, D: serde::Deserializer<'de>>(value: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(value)?.filter(|text| !text.is_empty()))
}

/// A state filter in any case (`failed`, `FAILED`); empty is none.
fn state_param<'de, D: serde::Deserializer<'de>>(value: D) -> std::result::Result<Option<JobState>, D::Error> {
    match text_param(value)? {
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

/// One page of jobs.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs, newest first, without their attempts; an argument list or
    /// result over 4,096 bytes is left out (`values_omitted`), a longer
    /// last error cut.
    pub jobs: Vec<JobInfo>,
    /// Where the next page starts, when there may be one.
    pub next_cursor: Option<String>,
}

/// A job's new state after cancel or retry.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct JobStateResponse {
    /// The job.
    pub id: JobId,
    /// Its state now (RUNNING while its worker is stopping it).
    pub state: JobState,
}

/// The running jobs.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ActiveJobs {
    /// Oldest attempt first.
    pub jobs: Vec<ActiveJob>,
}

/// Which running jobs to show.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActiveParams {
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Parses a job id from a path or cursor, naming the field when it is not one.
pub(crate) fn parse_id(field: &str, text: &str) -> Result<JobId> {
    uuid::Uuid::parse_str(text).map(JobId).map_err(|_| {
        ServiceError::field(field, format!("`{}` is not a UUID", text.chars().take(64).collect::<String>()))
    })
}

pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=JobFilter::MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ServiceError::field("limit", format!("{n} is outside 1..={}", JobFilter::MAX_LIMIT))),
    }
}

/// Writes a job after checking the function, its arguments and the options.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "Written, QUEUED", body = SubmitResponse),
        (status = 400, description = "Unknown function, arguments that do not fit, a bad option", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn submit(
    State(state): State<Shared>,
    Json(request): Json<SubmitRequest>,
) -> Result<impl IntoResponse> {
    let SubmitRequest { function, args, options } = request;
    let options = options.into_job_options()?;
    state.check_queue(options.queue_name())?;
    state.queue.check_call(&function, &args, &options)?;
    let queue = options.queue_name().to_string();
    let keyed = options.idempotency_key.is_some();
    let id = state.queue.enqueue_by_name(&function, args, options).await?;
    let mut body = SubmitResponse { id, state: JobState::Queued, function, queue };
    // Under a key the job may be one submitted before, and have moved on: it
    // is described as it is (as submitted, should that read fail: the job
    // is written either way).
    if keyed && let Ok(job) = state.queue.job(id).await {
        (body.state, body.function, body.queue) = (job.state, job.function, job.queue);
    }
    let location =
        HeaderValue::from_str(&format!("/api/jobs/{id}")).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(body)))
}

/// One job with its attempts (arguments only when the job opted in).
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, body = JobInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn get(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<JobInfo>> {
    let id = parse_id("id", &id)?;
    Ok(Json(state.queue.job(id).await?))
}

/// Jobs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/jobs",
    tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, body = JobPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<Shared>, Query(params): Query<ListParams>) -> Result<Json<JobPage>> {
    let limit = page_limit(params.limit)?;
    let before = match params.cursor.as_deref() {
        Some(cursor) => Some(parse_id("cursor", cursor)?),
        None => None,
    };
    let filter = JobFilter {
        state: params.state,
        queue: params.queue,
        function: params.function,
        search: params.search,
        before,
        limit: Some(limit),
        ..JobFilter::default()
    };
    let jobs = state.queue.jobs(filter).await?;
    let next_cursor = if jobs.len() == limit as usize { jobs.last().map(|job| job.id.to_string()) } else { None };
    Ok(Json(JobPage { jobs, next_cursor }))
}

/// Cancels a job: QUEUED ends CANCELLED at once; a RUNNING job is stopped by
/// its worker (the state stays RUNNING until it has).
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, body = JobStateResponse),
        (status = 400, description = "Not a UUID, or the job has already ended", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn cancel(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<JobStateResponse>> {
    let id = parse_id("id", &id)?;
    let now = state.queue.cancel(id).await?;
    Ok(Json(JobStateResponse { id, state: now }))
}

/// Runs a FAILED or CANCELLED job again, its retries restored.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, body = JobStateResponse),
        (status = 400, description = "Not a UUID, or the job has not ended", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn retry(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<JobStateResponse>> {
    let id = parse_id("id", &id)?;
    state.queue.retry(id).await?;
    Ok(Json(JobStateResponse { id, state: JobState::Queued }))
}

/// Running jobs with the worker, runner and Ray job running each.
#[utoipa::path(
    get,
    path = "/api/active",
    tag = "jobs",
    params(ActiveParams),
    responses(
        (status = 200, body = ActiveJobs),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn active(
    State(state): State<Shared>,
    Query(params): Query<ActiveParams>,
) -> Result<Json<ActiveJobs>> {
    let limit = page_limit(params.limit)?;
    Ok(Json(ActiveJobs { jobs: state.queue.active(limit).await? }))
}
