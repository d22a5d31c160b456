//! gRPC: `rustyray.v1.JobService` from `proto/rustyray.proto`, over the same
//! queue, tokens and error codes as the HTTP/JSON API.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use rustyray_queue::{Event, JobInfo, JobState};
use tonic::{Request, Response, Status};

use crate::auth::Role;
use crate::error::ServiceError;
use crate::http::jobs::{SubmitOptions, page_limit, parse_id};
use crate::proto::job_service_server::{JobService, JobServiceServer};
use crate::proto::{self as pb};
use crate::service::State;

/// The gRPC service over `state`.
pub(crate) fn server(state: Arc<State>) -> JobServiceServer<Api> {
    // A message may be as large as an HTTP request body, no larger.
    let limit = state.body_limit;
    JobServiceServer::new(Api { state }).max_decoding_message_size(limit)
}

/// Implements the calls.
pub(crate) struct Api {
    state: Arc<State>,
}

impl Api {
    fn authorize<T>(&self, request: &Request<T>, needed: Role) -> Result<(), Status> {
        let header = request.metadata().get("authorization").map(|value| value.as_bytes());
        self.state.authorize(header, needed)?;
        Ok(())
    }
}

fn status_of(info: JobInfo) -> pb::JobStatus {
    pb::JobStatus {
        job_id: info.id.to_string(),
        function: info.function,
        queue: info.queue,
        state: info.state.to_string(),
        attempts: info.attempts,
        max_attempts: info.max_attempts,
        result_json: info.result.map(|value| value.to_string()),
        result_ref: info.result_ref,
        error_message: info.last_error,
        created_at_us: info.created_at,
        finished_at_us: info.finished_at,
        attempt_list: info
            .attempt_list
            .into_iter()
            .map(|a| pb::Attempt {
                attempt: a.attempt,
                state: a.state.to_string(),
                runner: a.runner,
                worker_id: a.worker_id,
                ray_job_id: a.ray_job_id,
                error_class: a.error_class,
                error_message: a.error_message,
                submitted_at_us: a.submitted_at,
                finished_at_us: a.finished_at,
            })
            .collect(),
    }
}

fn event_of(event: &Event) -> pb::Event {
    pb::Event {
        seq: event.seq,
        kind: event.kind.clone(),
        job_id: event.job_id.to_string(),
        function: event.function.clone(),
        queue: event.queue.clone(),
        state: event.state.to_string(),
        attempt: event.attempt,
        error: event.error.clone(),
        args_json: event.args.as_ref().map(ToString::to_string),
        at_us: event.at,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl JobService for Api {
    async fn submit(&self, request: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitResponse>, Status> {
        self.authorize(&request, Role::Admin)?;
        let pb::SubmitRequest { function, args_json, options } = request.into_inner();
        let args: serde_json::Value = if args_json.trim().is_empty() {
            serde_json::Value::Array(Vec::new())
        } else {
            serde_json::from_str(&args_json).map_err(|error| ServiceError::field("args_json", error))?
        };
        let options = options.unwrap_or_default();
        let options = SubmitOptions {
            queue: options.queue,
            priority: options.priority,
            max_retries: options.max_retries,
            backoff_ms: None,
            timeout_ms: options.timeout_ms,
            run_after_ms: options.run_after_ms,
            name: options.name,
            num_cpus: options.num_cpus,
            record_args: false,
            idempotency_key: options.idempotency_key,
        }
        .into_job_options()?;
        self.state.check_queue(options.queue_name())?;
        self.state.queue.check_call(&function, &args, &options).map_err(ServiceError::from)?;
        let keyed = options.idempotency_key.is_some();
        let id = self.state.queue.enqueue_by_name(&function, args, options).await.map_err(ServiceError::from)?;
        // Under a key the job may be one submitted before, and have moved on
        // (QUEUED, should that read fail: the job is written either way).
        let state = match keyed {
            true => self.state.queue.state(id).await.unwrap_or(JobState::Queued),
            false => JobState::Queued,
        };
        Ok(Response::new(pb::SubmitResponse { job_id: id.to_string(), state: state.to_string() }))
    }

    async fn get_job_status(
        &self,
        request: Request<pb::GetJobStatusRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        self.authorize(&request, Role::Read)?;
        let id = parse_id("job_id", &request.get_ref().job_id)?;
        let info = self.state.queue.job(id).await.map_err(ServiceError::from)?;
        Ok(Response::new(status_of(info)))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.authorize(&request, Role::Read)?;
        let health = self.state.health().await;
        let stats = self.state.queue.stats().await.ok().map(|stats| pb::ExecutionStats {
            by_state: stats.by_state.into_iter().collect(),
            lost_attempts: stats.lost_attempts,
            workers_alive: stats.workers_alive,
            run_time_p50_seconds: stats.run_time_p50,
            run_time_p99_seconds: stats.run_time_p99,
        });
        let status = serde_json::to_value(health.status).ok().and_then(|v| v.as_str().map(str::to_string));
        Ok(Response::new(pb::GetStatusResponse {
            status: status.unwrap_or_default(),
            reasons: health.reasons,
            stats,
            uptime_seconds: i64::try_from(health.uptime_seconds).unwrap_or(i64::MAX),
        }))
    }

    async fn get_active_jobs(
        &self,
        request: Request<pb::GetActiveJobsRequest>,
    ) -> Result<Response<pb::GetActiveJobsResponse>, Status> {
        self.authorize(&request, Role::Read)?;
        let limit = match request.get_ref().limit {
            0 => None,
            n => Some(n),
        };
        let limit = page_limit(limit)?;
        let jobs = self.state.queue.active(limit).await.map_err(ServiceError::from)?;
        let jobs = jobs
            .into_iter()
            .map(|job| pb::ActiveJob {
                job_id: job.id.to_string(),
                function: job.function,
                queue: job.queue,
                attempt: job.attempt,
                runner: job.runner,
                worker_id: job.worker_id,
                ray_job_id: job.ray_job_id,
                started_at_us: job.started_at,
            })
            .collect();
        Ok(Response::new(pb::GetActiveJobsResponse { jobs }))
    }

    async fn cancel(&self, request: Request<pb::CancelRequest>) -> Result<Response<pb::CancelResponse>, Status> {
        self.authorize(&request, Role::Admin)?;
        let id = parse_id("job_id", &request.get_ref().job_id)?;
        let state = self.state.queue.cancel(id).await.map_err(ServiceError::from)?;
        Ok(Response::new(pb::CancelResponse { job_id: id.to_string(), state: state.to_string() }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        self.authorize(&request, Role::Read)?;
        let pb::WatchEventsRequest { after_seq, job_id } = request.into_inner();
        if after_seq.is_some_and(|after| after < 0) {
            return Err(ServiceError::field("after_seq", "an event id is 0 or more").into());
        }
        let job = match job_id.as_deref() {
            Some(job) => Some(parse_id("job_id", job)?),
            None => None,
        };
        let stream = self.state.feed.watch(after_seq, job)?.map(|item| match item {
            Ok(event) => Ok(event_of(&event)),
            Err(error) => Err(Status::from(error)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
