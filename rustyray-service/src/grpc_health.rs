//! The standard gRPC health service, `grpc.health.v1.Health`, which load
//! balancers and Kubernetes' gRPC probes ask. It tells the same verdict as
//! `/api/health`, in that protocol's terms:
//! - the whole server (service `""`) and `rustyray.v1.JobService` are
//!   SERVING while the report is healthy or degraded;
//! - they are NOT_SERVING while it is unhealthy (the database cannot be
//!   reached);
//! - any other service name is NOT_FOUND for `Check`, and SERVICE_UNKNOWN
//!   for `Watch`.
//!
//! `Check` runs the report on each call. `Watch` sends the status at once,
//! then again whenever it changes, looking every few seconds, until the
//! service stops. Both need the read token unless health is public, as for
//! `/api/health`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::auth::Role;
use crate::health::HealthStatus;
use crate::service::State;

/// The services this server answers for: itself as a whole, and the job service.
const SERVICES: [&str; 2] = ["", "rustyray.v1.JobService"];

/// How often a watch runs the report again.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The health service over `state`.
pub(crate) fn server(state: Arc<State>) -> HealthServer<Checker> {
    HealthServer::new(Checker { state })
}

/// Answers health checks from the service's health report.
pub(crate) struct Checker {
    state: Arc<State>,
}

impl Checker {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.state.public_health {
            return Ok(());
        }
        let header = request.metadata().get("authorization").map(|value| value.as_bytes());
        self.state.authorize(header, Role::Read)?;
        Ok(())
    }
}

/// The serving status a health verdict means.
fn serving(status: HealthStatus) -> ServingStatus {
    match status {
        HealthStatus::Healthy | HealthStatus::Degraded => ServingStatus::Serving,
        HealthStatus::Unhealthy => ServingStatus::NotServing,
    }
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: status.into() }
}

#[tonic::async_trait]
impl Health for Checker {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        self.authorize(&request)?;
        let service = &request.get_ref().service;
        if !SERVICES.contains(&service.as_str()) {
            return Err(Status::not_found(format!(
                "no service `{service}` here: ask for \"\" (the whole server) or `{}`",
                SERVICES[1]
            )));
        }
        Ok(Response::new(answer(serving(self.state.health().await.status))))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        self.authorize(&request)?;
        let known = SERVICES.contains(&request.get_ref().service.as_str());
        let state = self.state.clone();
        // The stream ends when the service stops, so that it does not hold
        // a graceful shutdown open.
        let closing = state.feed.closing();
        let changes = futures::stream::unfold((state, closing, None), move |(state, mut closing, last)| async move {
            loop {
                if last.is_some() {
                    tokio::select! {
                        _ = tokio::time::sleep(WATCH_EVERY) => {}
                        _ = closing.wait_for(|closed| *closed) => return None,
                    }
                }
                if *closing.borrow() {
                    return None;
                }
                let now = if known { serving(state.health().await.status) } else { ServingStatus::ServiceUnknown };
                if last != Some(now) {
                    return Some((Ok(answer(now)), (state, closing, Some(now))));
                }
            }
        });
        Ok(Response::new(Box::pin(changes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unhealthy_report_stops_serving() {
        assert_eq!(serving(HealthStatus::Healthy), ServingStatus::Serving);
        // Degraded: jobs are safe, so a balancer keeps sending traffic.
        assert_eq!(serving(HealthStatus::Degraded), ServingStatus::Serving);
        assert_eq!(serving(HealthStatus::Unhealthy), ServingStatus::NotServing);
    }
}
