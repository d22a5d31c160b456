//! The queue's Prometheus metrics (seed 002 §12.2): jobs per queue and state
//! as the database holds them (queued, running, succeeded and failed totals
//! across every process), workers alive, and what this process saw:
//! submissions and submission failures, attempt outcomes, lost attempts, and
//! the run time of the attempts it ran.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{QueueError, Result};
use crate::queue::Queue;

/// The run-time histogram's buckets: 1 ms doubling to about 9 hours.
pub(crate) fn run_time_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

type Labels = Vec<(&'static str, String)>;

impl Queue {
    /// The queue's metrics in the Prometheus text format, read now: gauges
    /// from the database, counters and the run-time histogram of this process.
    pub async fn metrics_text(&self) -> Result<String> {
        let stats = self.stats().await?;
        let mut registry = Registry::with_prefix("rustyray");

        let jobs = Family::<Labels, Gauge>::default();
        for (queue, states) in &stats.by_queue {
            for (state, n) in states {
                let labels = vec![("queue", queue.clone()), ("state", state.clone())];
                jobs.get_or_create(&labels).set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        registry.register("jobs", "Jobs in the database, per queue and state", jobs);
        let workers = Gauge::<i64>::default();
        workers.set(i64::try_from(stats.workers_alive).unwrap_or(i64::MAX));
        registry.register("queue_workers_alive", "Workers whose lease is live", workers);

        let counters = &self.inner.counters;
        let counter = |value: &std::sync::atomic::AtomicU64| {
            let c = Counter::<u64>::default();
            c.inc_by(value.load(Ordering::Relaxed));
            c
        };
        registry.register("job_submissions", "Jobs this process enqueued", counter(&counters.submitted));
        registry.register(
            "job_enqueues_deduplicated",
            "Enqueues this process answered with a job already stored under their idempotency key",
            counter(&counters.deduplicated),
        );
        registry.register(
            "job_submission_failures",
            "Enqueues this process refused or could not write",
            counter(&counters.submission_failures),
        );
        let outcomes = Family::<Labels, Counter>::default();
        for (outcome, value) in [
            ("succeeded", &counters.succeeded),
            ("failed", &counters.failed),
            ("retried", &counters.retried),
            ("cancelled", &counters.cancelled),
        ] {
            outcomes.get_or_create(&vec![("outcome", outcome.to_string())]).inc_by(value.load(Ordering::Relaxed));
        }
        registry.register(
            "job_attempts_finished",
            "Attempts this process's workers recorded, by what became of the job",
            outcomes,
        );
        registry.register(
            "job_attempts_lost",
            "Attempts this process's reconciler found LOST",
            counter(&counters.lost),
        );
        registry.register(
            "cluster_submission_failures",
            "Submissions of attempts to a cluster that failed because it was unreachable or failing",
            counter(&counters.cluster_submission_failures),
        );
        let up = Gauge::<i64>::default();
        up.set(i64::from(!counters.cluster_down.load(Ordering::Relaxed)));
        registry.register("cluster_up", "0 while this process's cluster runner finds its cluster down", up);
        registry.register(
            "job_run_seconds",
            "Run time of the attempts this process ran, claim to outcome",
            counters.run_time.clone(),
        );

        let mut text = self.runtime_metrics_text()?;
        encode(&mut text, &registry).map_err(|error| QueueError::Codec {
            context: "encoding the metrics".into(),
            message: error.to_string(),
        })?;
        Ok(text)
    }

    /// Remembers the in-process runtime a worker of this process runs on,
    /// so that its task metrics are reported with the queue's.
    #[cfg(feature = "metrics")]
    pub(crate) fn note_runtime(&self, runtime: &rustyray_runtime::Runtime) {
        let collector = runtime.metrics_collector();
        let mut runtimes = self.inner.runtimes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        runtimes.retain(rustyray_runtime::MetricsCollector::is_alive);
        if !runtimes.iter().any(|known| known.same_runtime(&collector)) {
            runtimes.push(collector);
        }
    }

    /// The metrics of the runtime this process's workers run on, without the
    /// closing `# EOF` (the queue's own follow). When workers run on several
    /// runtimes, the first still alive is reported: one family per name.
    #[cfg(feature = "metrics")]
    fn runtime_metrics_text(&self) -> Result<String> {
        let collector = {
            let runtimes = self.inner.runtimes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            runtimes.iter().find(|c| c.is_alive()).cloned()
        };
        let Some(collector) = collector else { return Ok(String::new()) };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        encode(&mut text, &registry).map_err(|error| QueueError::Codec {
            context: "encoding the runtime's metrics".into(),
            message: error.to_string(),
        })?;
        Ok(text.trim_end().strip_suffix("# EOF").map(str::to_string).unwrap_or(text))
    }

    #[cfg(not(feature = "metrics"))]
    fn runtime_metrics_text(&self) -> Result<String> {
        Ok(String::new())
    }
}
