//! The service's own Prometheus metrics, served at `/metrics` after the
//! queue's: requests by route and status, refused tokens, and the broker
//! publisher's progress.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) route: String,
    pub(crate) status: u16,
}

/// Counters shared by every handler.
#[derive(Clone, Default)]
pub(crate) struct ServiceMetrics {
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) auth_failures: Counter,
    pub(crate) events_published: Counter,
    pub(crate) publish_failures: Counter,
    pub(crate) broker_connected: Gauge,
    pub(crate) events_unpublished: Gauge,
    registry: Arc<std::sync::OnceLock<Registry>>,
}

impl ServiceMetrics {
    fn registry(&self) -> &Registry {
        self.registry.get_or_init(|| {
            let mut registry = Registry::with_prefix("rustyray_service");
            registry.register("requests", "HTTP requests by route and status", self.requests.clone());
            registry.register(
                "auth_failures",
                "Requests refused for a missing, unknown or too weak token",
                self.auth_failures.clone(),
            );
            registry.register(
                "events_published",
                "Lifecycle events the broker acknowledged",
                self.events_published.clone(),
            );
            registry.register(
                "publish_failures",
                "Attempts to publish to the broker that failed",
                self.publish_failures.clone(),
            );
            registry.register(
                "broker_connected",
                "1 when the event broker is reachable",
                self.broker_connected.clone(),
            );
            registry.register(
                "events_unpublished",
                "Events waiting for the broker in the publisher's last read (at most 256)",
                self.events_unpublished.clone(),
            );
            registry
        })
    }

    /// The exposition text.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, self.registry());
        out
    }
}
