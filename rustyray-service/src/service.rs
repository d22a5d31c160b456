//! The service itself: its configuration, the state every handler shares,
//! and serving HTTP/JSON and gRPC on one listener.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustyray_queue::Queue;
use tokio::net::TcpListener;

use crate::auth::{Role, Tokens};
use crate::error::{Result, ServiceError};
use crate::feed::Feed;
use crate::health::{self, Check, Health};
use crate::metrics::ServiceMetrics;

/// Request bodies larger than this are refused by default (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Requests running longer than this end with DEADLINE_EXCEEDED by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight past this are refused with RESOURCE_EXHAUSTED by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Event streams open past this are refused with RESOURCE_EXHAUSTED by default.
pub const DEFAULT_MAX_WATCHERS: usize = 1024;

/// Settings for a [`Service`].
#[must_use = "a builder does nothing until `.build()` is awaited"]
pub struct ServiceBuilder {
    queue: Queue,
    tokens: Option<Tokens>,
    pub(crate) public_health: bool,
    pub(crate) public_metrics: bool,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    known_queues: Option<BTreeSet<String>>,
    checks: Vec<Arc<dyn Check>>,
    feed_poll: Option<Duration>,
    max_watchers: usize,
    admin_session_ttl: Duration,
    #[cfg(feature = "nats")]
    nats: Option<crate::nats::NatsConfig>,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("queue", &self.queue.url())
            .field("tokens", &self.tokens)
            .field("public_health", &self.public_health)
            .field("public_metrics", &self.public_metrics)
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    /// The tokens accepted (default: from `RUSTYRAY_TOKENS` and
    /// `RUSTYRAY_TOKENS_FILE`). With none, every protected route refuses.
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Serves `/api/health` without a token.
    pub fn public_health(mut self, public: bool) -> Self {
        self.public_health = public;
        self
    }

    /// Serves `/metrics` without a token.
    pub fn public_metrics(mut self, public: bool) -> Self {
        self.public_metrics = public;
        self
    }

    /// The largest request body accepted.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes.max(1024);
        self
    }

    /// How long one request or gRPC call may take (event streams excepted):
    /// past it, DEADLINE_EXCEEDED.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many requests and gRPC calls together may be in flight at once:
    /// past it, RESOURCE_EXHAUSTED.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// How many event streams (SSE, the admin page's, gRPC WatchEvents) may
    /// be open at once (default 1,024); past it, RESOURCE_EXHAUSTED. A stream
    /// holds no request slot once it is open, so `max_in_flight` does not
    /// bound them.
    pub fn max_watchers(mut self, watchers: usize) -> Self {
        self.max_watchers = watchers.max(1);
        self
    }

    /// The queues submissions may name; any other is INVALID_ARGUMENT.
    /// Default: any well-formed name.
    pub fn known_queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a health check (a cluster's dashboard, say); failing, it degrades.
    pub fn check(mut self, check: impl Check) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// How often the event feed looks for events when nothing woke it
    /// (default 10 ms on SQLite, 250 ms on PostgreSQL, which notifies).
    pub fn feed_poll(mut self, every: Duration) -> Self {
        self.feed_poll = Some(every.max(Duration::from_millis(1)));
        self
    }

    /// How long a sign-in to the admin page lasts (default 8 hours); past
    /// it, the page asks for a token again.
    pub fn admin_session_ttl(mut self, ttl: Duration) -> Self {
        self.admin_session_ttl = ttl;
        self
    }

    /// Publishes lifecycle events to NATS JetStream at `url`.
    #[cfg(feature = "nats")]
    pub fn nats(mut self, config: crate::nats::NatsConfig) -> Self {
        self.nats = Some(config);
        self
    }

    /// Starts the event feed (and the broker publisher); the service is ready
    /// to be served or mounted.
    pub async fn build(self) -> Result<Service> {
        let tokens = match self.tokens {
            Some(tokens) => tokens,
            None => Tokens::from_env()?,
        };
        if tokens.is_empty() {
            tracing::warn!("the service has no tokens: every protected route refuses (set RUSTYRAY_TOKENS)");
        }
        let poll = self.feed_poll.unwrap_or(if self.queue.is_sqlite() {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(250)
        });
        let feed = Feed::start(self.queue.clone(), poll, self.max_watchers).await?;
        let metrics = ServiceMetrics::default();
        #[cfg(feature = "nats")]
        let broker = match self.nats {
            Some(config) => Some(crate::nats::Publisher::start(self.queue.clone(), config, metrics.clone())),
            None => None,
        };
        let state = Arc::new(State {
            queue: self.queue,
            tokens,
            public_health: self.public_health,
            public_metrics: self.public_metrics,
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
            max_in_flight: self.max_in_flight,
            known_queues: self.known_queues,
            checks: self.checks,
            feed,
            admin: crate::admin::Sessions::new(self.admin_session_ttl),
            started: Instant::now(),
            metrics,
            last_health: Default::default(),
            #[cfg(feature = "nats")]
            broker,
        });
        Ok(Service { state })
    }
}

/// What every handler shares.
pub(crate) struct State {
    pub(crate) queue: Queue,
    pub(crate) tokens: Tokens,
    pub(crate) public_health: bool,
    pub(crate) public_metrics: bool,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) known_queues: Option<BTreeSet<String>>,
    pub(crate) checks: Vec<Arc<dyn Check>>,
    pub(crate) feed: Feed,
    pub(crate) admin: crate::admin::Sessions,
    pub(crate) started: Instant,
    pub(crate) metrics: ServiceMetrics,
    /// The newest health report and when it was begun (see [`State::health`]).
    last_health: parking_lot::Mutex<Option<LastReport>>,
    #[cfg(feature = "nats")]
    pub(crate) broker: Option<crate::nats::Publisher>,
}

/// A health report in progress or done, that many callers may await.
type SharedReport = futures::future::Shared<futures::future::BoxFuture<'static, Health>>;

/// The newest health report: when it was begun, whether its task has
/// ended, and the report to await.
struct LastReport {
    begun: Instant,
    ended: Arc<std::sync::atomic::AtomicBool>,
    report: SharedReport,
}

/// Sets `flag` when dropped.
fn set_on_drop(flag: Arc<std::sync::atomic::AtomicBool>) -> impl Drop {
    struct Set(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Set {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
    Set(flag)
}

/// How long a health report answers for every caller: probes, balancers,
/// admin pages and (where health is public) anyone may ask as often as
/// they like, and the database sees at most one report's queries per
/// this long.
pub const HEALTH_FRESH_FOR: Duration = Duration::from_secs(1);

impl State {
    /// The role the `Authorization` header grants, if it is at least `needed`.
    pub(crate) fn authorize(&self, header: Option<&[u8]>, needed: Role) -> Result<Role> {
        let outcome = self.tokens.authorize(header, needed);
        if outcome.is_err() {
            self.metrics.auth_failures.inc();
        }
        outcome
    }

    /// Refuses a queue the service was not told about.
    pub(crate) fn check_queue(&self, queue: &str) -> Result<()> {
        match &self.known_queues {
            Some(known) if !known.contains(queue) => Err(ServiceError::field(
                "options.queue",
                format!(
                    "`{queue}` is not a queue of this service (known: {})",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The broker's state, when one is configured.
    pub(crate) fn broker(&self) -> Option<(bool, String)> {
        #[cfg(feature = "nats")]
        if let Some(broker) = &self.broker {
            return Some(broker.status());
        }
        None
    }

    /// The health report: one still running, or begun less than
    /// [`HEALTH_FRESH_FOR`] ago, is shared, so callers at once cost one.
    pub(crate) async fn health(&self) -> Health {
        let report = {
            let mut last = self.last_health.lock();
            match &*last {
                // Still running, or fresh: shared.
                Some(LastReport { begun, ended, report })
                    if !ended.load(std::sync::atomic::Ordering::Acquire) || begun.elapsed() < HEALTH_FRESH_FOR =>
                {
                    report.clone()
                }
                _ => {
                    let (queue, broker, checks) = (self.queue.clone(), self.broker(), self.checks.clone());
                    let uptime = self.started.elapsed();
                    // A task of its own: it runs to its end however many of
                    // its callers stop waiting (a probe's short deadline), so
                    // a later caller never resumes a half-run report; and a
                    // panic in an added check is one unhealthy answer, not
                    // a poisoned report.
                    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let ends = ended.clone();
                    let running = tokio::spawn(async move {
                        // Set however the task ends (a panic too).
                        let _ended = set_on_drop(ends);
                        health::report(&queue, broker, &checks, uptime).await
                    });
                    let report = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
                        running.await.unwrap_or_else(|error| Health {
                            status: health::HealthStatus::Unhealthy,
                            reasons: vec![format!("the health report failed: {error}")],
                            checks: Vec::new(),
                            uptime_seconds: uptime.as_secs(),
                        })
                    }));
                    *last = Some(LastReport { begun: Instant::now(), ended, report: report.clone() });
                    report
                }
            }
        };
        report.await
    }
}

/// The job service over one queue: HTTP/JSON under `/api`, Prometheus
/// metrics at `/metrics`, the admin web page at `/admin`, and gRPC
/// (`rustyray.v1.JobService`), on one port.
#[derive(Clone)]
pub struct Service {
    pub(crate) state: Arc<State>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("queue", &self.state.queue.url()).finish_non_exhaustive()
    }
}

impl Service {
    /// A builder for a service over `queue`.
    pub fn builder(queue: &Queue) -> ServiceBuilder {
        ServiceBuilder {
            queue: queue.clone(),
            tokens: None,
            public_health: false,
            public_metrics: false,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            known_queues: None,
            checks: Vec::new(),
            feed_poll: None,
            max_watchers: DEFAULT_MAX_WATCHERS,
            admin_session_ttl: crate::admin::DEFAULT_TTL,
            #[cfg(feature = "nats")]
            nats: None,
        }
    }

    /// The HTTP/JSON routes and the admin page (`/admin`), to mount in an
    /// axum application. Its event streams (and the admin pages' live
    /// updates) run until their clients go: call [`close`](Self::close)
    /// when the application starts its graceful shutdown.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.state.clone(), false)
    }

    /// The HTTP/JSON routes and the gRPC service together, under one limit
    /// on requests in flight.
    pub fn router_with_grpc(&self) -> axum::Router {
        crate::http::router(self.state.clone(), true)
    }

    /// Ends every event stream and health watch, and turns gRPC health to
    /// NOT_SERVING, so that clients that would watch for ever do not hold a
    /// graceful shutdown open. [`serve`](Self::serve) calls it when its
    /// `shutdown` completes; an application that mounts
    /// [`router`](Self::router) calls it in its own. Streams opened later
    /// end at once.
    ///
    /// ```no_run
    /// # async fn app(queue: &rustyray_queue::Queue, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    /// # let stop = std::future::pending::<()>();
    /// let service = rustyray_service::Service::builder(queue).build().await.expect("a service");
    /// let app = axum::Router::new().merge(service.router());
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(async move {
    ///         stop.await;
    ///         service.close();
    ///     })
    ///     .await
    /// # }
    /// ```
    pub fn close(&self) {
        self.state.feed.close();
    }

    /// The OpenAPI document of the HTTP routes.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        crate::http::openapi()
    }

    /// Serves HTTP/JSON and gRPC on `listener` until `shutdown` completes,
    /// then lets requests in flight finish.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let address = listener.local_addr().map_err(|error| ServiceError::Config(error.to_string()))?;
        tracing::info!(%address, queue = %self.state.queue.url(), "service listening");
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("service stopping: event streams end, requests in flight finish");
            state.feed.close();
        };
        axum::serve(listener, self.router_with_grpc())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|error| ServiceError::Config(format!("serving on {address}: {error}")))
    }
}

/// The HTTP/JSON routes over `queue`, with tokens from the environment
/// (`RUSTYRAY_TOKENS`, `RUSTYRAY_TOKENS_FILE`), to mount in an application.
/// Its event streams end only when their clients go; to end them on a
/// graceful shutdown, build a [`Service`] and call [`Service::close`].
pub async fn router(queue: &Queue) -> Result<axum::Router> {
    Ok(Service::builder(queue).build().await?.router())
}
