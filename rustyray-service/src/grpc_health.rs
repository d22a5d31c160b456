//! The standard gRPC health service, `grpc.health.v1.Health`, which load
//! balancers and Kubernetes' gRPC probes ask. It tells the same verdict as
//! `/api/health`, in that protocol's terms:
//! - the whole server (service `""`) and `rustyray.v1.JobService` are
//!   SERVING while the report is healthy or degraded;
//! - they are NOT_SERVING while it is unhealthy (the database cannot be
//!   reached), and from the moment the service starts stopping, so that
//!   balancers move away while requests in flight finish;
//! - any other service name is NOT_FOUND for `Check`, and SERVICE_UNKNOWN
//!   for `Watch`.
//!
//! `Check` asks for the report (shared with every caller for a second, see
//! [`HEALTH_FRESH_FOR`](crate::HEALTH_FRESH_FOR)). Watches share one
//! verdict: one task asks again every few seconds while any watch is open
//! (and idles while none is), and each watch sends its client the changes. As many watches may be open as event
//! streams (`max_watchers`); one past that is refused with
//! RESOURCE_EXHAUSTED. Both calls need the read token unless health is
//! public, as for `/api/health` (a Kubernetes probe sends no token: serve
//! with `--public-health`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{OnceCell, watch};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::auth::Role;
use crate::error::ServiceError;
use crate::health::HealthStatus;
use crate::service::State;

/// The services this server answers for: itself as a whole, and the job service.
const SERVICES: [&str; 2] = ["", "rustyray.v1.JobService"];

/// How often the shared verdict is worked out again while anyone watches.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The health service over `state`.
pub(crate) fn server(state: Arc<State>) -> HealthServer<Checker> {
    HealthServer::new(Checker { state, verdict: OnceCell::new(), watches: Arc::new(()) })
}

/// Answers health checks from the service's health report.
pub(crate) struct Checker {
    state: Arc<State>,
    /// The verdict watches share, from the first watch on (see [`publish`]).
    verdict: OnceCell<Arc<watch::Sender<ServingStatus>>>,
    /// One count per open watch, beside this one.
    watches: Arc<()>,
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

    /// The verdict now: NOT_SERVING once the service is stopping, else the report's.
    async fn verdict(state: &State) -> ServingStatus {
        let mut closing = state.feed.closing();
        if *closing.borrow() {
            return ServingStatus::NotServing;
        }
        tokio::select! {
            health = state.health() => serving(health.status),
            _ = closing.wait_for(|closed| *closed) => ServingStatus::NotServing,
        }
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

/// One open watch of a known service.
struct Watching {
    verdict: watch::Receiver<ServingStatus>,
    closing: watch::Receiver<bool>,
    /// What its client was last told.
    last: Option<ServingStatus>,
    /// Its place among the open watches.
    _place: Arc<()>,
}

/// Works the shared verdict out every [`WATCH_EVERY`] while any watch is
/// open, until the service stops (the watches then end on their own) or
/// the health service is gone. With no watch open it asks nothing; a new
/// watch brings the verdict up to date itself.
async fn publish(state: Arc<State>, verdict: std::sync::Weak<watch::Sender<ServingStatus>>) {
    let mut closing = state.feed.closing();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = closing.wait_for(|closed| *closed) => break,
        }
        let Some(sender) = verdict.upgrade() else { return };
        if sender.receiver_count() == 0 {
            continue;
        }
        // A stop seen during the report ends the loop at the next select.
        let now = Checker::verdict(&state).await;
        sender.send_if_modified(|last| std::mem::replace(last, now) != now);
    }
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
        Ok(Response::new(answer(Checker::verdict(&self.state).await)))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        self.authorize(&request)?;
        // Counted with this one: two watches admitted at once cannot both
        // take the last place.
        let place = self.watches.clone();
        let limit = self.state.feed.max_watchers();
        if Arc::strong_count(&place) - 1 > limit {
            let message = format!("{limit} watches are open, the most this service serves; try again later");
            return Err(ServiceError::Overloaded(message).into());
        }
        let mut closing = self.state.feed.closing();
        if !SERVICES.contains(&request.get_ref().service.as_str()) {
            // Unknown, and stays so: one message, then the stream waits for
            // the client to leave or the service to stop.
            let unknown = futures::stream::once(async { Ok(answer(ServingStatus::ServiceUnknown)) });
            let until_stop = futures::stream::once(async move {
                let _place = place;
                let _ = closing.wait_for(|closed| *closed).await;
            })
            .filter_map(|()| async { None::<Result<HealthCheckResponse, Status>> });
            return Ok(Response::new(Box::pin(unknown.chain(until_stop))));
        }
        let state = self.state.clone();
        let sender = self
            .verdict
            .get_or_init(|| async move {
                let sender = Arc::new(watch::Sender::new(ServingStatus::Serving));
                tokio::spawn(publish(state, Arc::downgrade(&sender)));
                sender
            })
            .await;
        // Up to date before this watch's first message: the shared verdict
        // may be from before a time nobody watched.
        let now = Checker::verdict(&self.state).await;
        sender.send_if_modified(|last| std::mem::replace(last, now) != now);
        let watching = Watching { verdict: sender.subscribe(), closing, last: None, _place: place };
        // Each change of the shared verdict, from the one now; once the
        // service stops, NOT_SERVING (if that is news), and the end.
        let changes = futures::stream::unfold(watching, |mut watching| async move {
            loop {
                let stopping = *watching.closing.borrow();
                let now = if stopping { ServingStatus::NotServing } else { *watching.verdict.borrow_and_update() };
                if watching.last != Some(now) {
                    watching.last = Some(now);
                    return Some((Ok(answer(now)), watching));
                }
                if stopping {
                    return None;
                }
                tokio::select! {
                    changed = watching.verdict.changed() => changed.ok()?,
                    _ = watching.closing.wait_for(|closed| *closed) => {}
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
