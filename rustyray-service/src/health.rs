//! Health: `healthy`, `degraded` or `unhealthy`, with the reasons. The
//! database decides between healthy and unhealthy; live workers, the broker
//! and any checks the application adds (a Ray cluster's dashboard, say) can
//! only degrade.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rustyray_queue::Queue;
use serde::{Deserialize, Serialize};

/// A database round trip slower than this degrades the service.
pub const SLOW_DATABASE: Duration = Duration::from_millis(500);

/// The overall verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything answers.
    Healthy,
    /// Jobs are safe, but something is slow, missing or down.
    Degraded,
    /// The database cannot be reached: nothing can be submitted or read.
    Unhealthy,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// What was checked: `database`, `workers`, `broker`, or an added check's name.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// How long it took, in milliseconds, where that matters.
    pub latency_ms: Option<f64>,
}

/// The health report `/api/health` and `GetStatus` give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Why it is not healthy (empty when it is).
    pub reasons: Vec<String>,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// Seconds since the service started.
    pub uptime_seconds: u64,
}

/// A check an application adds: `Ok(detail)` passes, `Err(reason)` degrades.
pub trait Check: Send + Sync + 'static {
    /// Its name in the report.
    fn name(&self) -> &str;
    /// Runs it.
    fn check(&self) -> BoxFuture<'_, Result<String, String>>;
}

/// Runs every check and decides.
pub(crate) async fn report(
    queue: &Queue,
    broker: Option<(bool, String)>,
    extra: &[Arc<dyn Check>],
    uptime: Duration,
) -> Health {
    let mut checks = Vec::new();
    let mut status = HealthStatus::Healthy;
    let mut reasons = Vec::new();
    fn degrade(status: &mut HealthStatus, reasons: &mut Vec<String>, reason: String) {
        *status = (*status).max(HealthStatus::Degraded);
        reasons.push(reason);
    }
    match tokio::time::timeout(Duration::from_secs(5), queue.ping()).await {
        Ok(Ok(latency)) => {
            let ms = latency.as_secs_f64() * 1e3;
            let slow = latency > SLOW_DATABASE;
            if slow {
                degrade(&mut status, &mut reasons, format!("the database took {ms:.0} ms to answer"));
            }
            checks.push(CheckResult {
                name: "database".into(),
                ok: !slow,
                detail: format!("{} answered", queue.url()),
                latency_ms: Some(ms),
            });
            match queue.workers().await {
                Ok(workers) => {
                    let alive = workers.iter().filter(|w| w.state == "RUNNING").count();
                    if alive == 0 {
                        degrade(&mut status, &mut reasons, "no worker holds a live lease: jobs will wait".into());
                    }
                    checks.push(CheckResult {
                        name: "workers".into(),
                        ok: alive > 0,
                        detail: format!("{alive} worker(s) alive"),
                        latency_ms: None,
                    });
                }
                Err(error) => degrade(&mut status, &mut reasons, format!("cannot read worker leases: {error}")),
            }
        }
        Ok(Err(error)) => {
            status = HealthStatus::Unhealthy;
            reasons.push(format!("the database is unreachable: {error}"));
            checks.push(CheckResult {
                name: "database".into(),
                ok: false,
                detail: error.to_string(),
                latency_ms: None,
            });
        }
        Err(_) => {
            status = HealthStatus::Unhealthy;
            reasons.push("the database did not answer within 5 s".into());
            checks.push(CheckResult {
                name: "database".into(),
                ok: false,
                detail: "no answer within 5 s".into(),
                latency_ms: None,
            });
        }
    }
    if let Some((connected, detail)) = broker {
        if !connected {
            degrade(
                &mut status,
                &mut reasons,
                format!("the event broker is unreachable: {detail}; events are delayed"),
            );
        }
        checks.push(CheckResult { name: "broker".into(), ok: connected, detail, latency_ms: None });
    }
    for check in extra {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(5), check.check()).await;
        let latency_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        let (ok, detail) = match outcome {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(reason)) => (false, reason),
            Err(_) => (false, "no answer within 5 s".to_string()),
        };
        if !ok {
            degrade(&mut status, &mut reasons, format!("{}: {detail}", check.name()));
        }
        checks.push(CheckResult { name: check.name().to_string(), ok, detail, latency_ms });
    }
    Health { status, reasons, checks, uptime_seconds: uptime.as_secs() }
}
