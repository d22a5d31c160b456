//! Service status routes: statistics, health and Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use rustyray_queue::QueueStats;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Json, Shared};
use crate::error::{ErrorBody, Result};
use crate::health::{Health, HealthStatus};

pub(crate) const HEALTH_PATH: &str = "/api/health";
pub(crate) const METRICS_PATH: &str = "/metrics";

/// Queue statistics and the service's uptime.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct StatsResponse {
    /// Counts per state and queue, run times, live workers.
    #[serde(flatten)]
    pub queue: QueueStats,
    /// Seconds since the service started.
    pub uptime_seconds: u64,
}

/// Counts per state and queue, run-time percentiles, live workers, uptime.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "status",
    responses((status = 200, body = StatsResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub(crate) async fn stats(State(state): State<Shared>) -> Result<Json<StatsResponse>> {
    let queue = state.queue.stats().await?;
    Ok(Json(StatsResponse { queue, uptime_seconds: state.started.elapsed().as_secs() }))
}

/// healthy / degraded (200) or unhealthy (503), with the reasons.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "status",
    responses(
        (status = 200, description = "healthy or degraded", body = Health),
        (status = 401, body = ErrorBody),
        (status = 503, description = "unhealthy", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<Shared>) -> impl IntoResponse {
    let health = state.health().await;
    let status =
        if health.status == HealthStatus::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, axum::Json(health))
}

/// Prometheus metrics: the queue's, then the service's.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "status",
    responses(
        (status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn metrics(State(state): State<Shared>) -> Result<impl IntoResponse> {
    let queue = state.queue.metrics_text().await?;
    let mut text = queue.trim_end().strip_suffix("# EOF").unwrap_or(&queue).to_string();
    text.push_str(&state.metrics.text());
    text.push_str("# EOF\n");
    let content_type = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, content_type)], text))
}
