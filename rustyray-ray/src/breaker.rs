//! The circuit breaker in front of the dashboard. A submission that finds
//! the cluster away opens it: the worker stops claiming (jobs stay QUEUED,
//! no attempt is spent), the queue's stats and metrics say the cluster is
//! down and count the failure, and one task probes the dashboard with
//! backoff until it answers, then closes the breaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustyray_queue::Queue;

use crate::client::RayClient;
use crate::error::RayError;

/// Open while the dashboard is unreachable.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    open: AtomicBool,
}

/// A submission id no job has: reading it needs the token, so a probe
/// checks the dashboard and the credentials together.
const PROBE_JOB: &str = "rustyray-probe-0000";

impl Breaker {
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a failed submission; the first opens the breaker and starts
    /// the probe.
    pub(crate) fn trip(self: &Arc<Self>, client: &RayClient, queue: &Queue, error: &RayError) {
        queue.note_cluster_submission_failure();
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        queue.set_cluster_down(true);
        tracing::warn!(%error, "Ray cluster down: claiming paused until the dashboard answers");
        let breaker = Arc::clone(self);
        let client = client.clone().with_timeout(Duration::from_secs(5));
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                tokio::time::sleep(backoff).await;
                match client.job(PROBE_JOB).await {
                    Ok(_) | Err(RayError::NotFound { .. }) => break,
                    Err(error) => {
                        tracing::debug!(%error, retry_in = ?backoff, "Ray dashboard still down");
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
            tracing::info!(address = client.address(), "Ray cluster answers again: claiming resumes");
            breaker.open.store(false, Ordering::Release);
            queue.set_cluster_down(false);
        });
    }
}
