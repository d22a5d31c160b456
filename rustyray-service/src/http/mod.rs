//! The HTTP/JSON API: routes, the auth and limit layers around them, and the
//! OpenAPI document generated from the handlers.
//!
//! Every failure is a [`ServiceError`] and leaves as `{code, message}`:
//! malformed bodies and queries, unknown routes and methods, refused tokens,
//! timeouts, overload and panics alike.

mod events;
pub(crate) mod jobs;
mod status;

use std::sync::Arc;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State as AxumState};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder as Layers;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Role;
use crate::error::{ErrorBody, ServiceError};
use crate::service::State;

pub(crate) type Shared = Arc<State>;

/// A JSON body whose rejections are [`ServiceError`]s.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ServiceError))]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string whose rejections are [`ServiceError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ServiceError))]
pub(crate) struct Query<T>(pub(crate) T);

/// Path parameters whose rejections are [`ServiceError`]s (a path that is
/// not UTF-8, say `/api/jobs/%FF`, is a JSON 400 like any other).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ServiceError))]
pub(crate) struct Path<T>(pub(crate) T);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RustyRay job service",
        description = "Durable jobs over SQLite or PostgreSQL: submit by function name, follow, cancel, retry, watch events."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route with its documentation.
fn api() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::list, jobs::submit))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::active))
        .routes(routes!(status::stats))
        .routes(routes!(status::health))
        .routes(routes!(status::metrics))
        .routes(routes!(events::events))
}

/// The OpenAPI document.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The whole HTTP application over `state`, with the gRPC service if `grpc`.
pub(crate) fn router(state: Shared, grpc: bool) -> axum::Router {
    let (routes, document) = api().split_for_parts();
    let document = Arc::new(serde_json::to_vec(&document).unwrap_or_default());
    // One limit for the whole application: `Router::layer` wraps each
    // route apart, and a plain concurrency limit would give each its own.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(state.max_in_flight));
    let limits = Layers::new()
        .layer(HandleErrorLayer::new(tower_error))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(in_flight.clone()));
    let timeout = state.request_timeout;
    let routes = routes
        .route(
            OPENAPI_PATH,
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document.to_vec())
            }),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require))
        // The admin pages check their session themselves, not a bearer token.
        .merge(crate::admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |request: Request, next: Next| deadline(request, next, timeout)))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(axum::extract::DefaultBodyLimit::max(state.body_limit))
        .layer(limits)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
    let health_in_flight = in_flight.clone();
    let routes = if grpc {
        // gRPC calls are POSTs to `/<package>.<Service>/<Method>`; they check
        // their tokens themselves, and answer in gRPC's own terms, which the
        // HTTP layers above do not (their refusals are JSON, which a gRPC
        // client reads as UNKNOWN). So gRPC stays outside them, under its own
        // version of their limits, sharing the one on requests in flight.
        let grpc = Layers::new()
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                grpc_limits(in_flight.clone(), timeout, request, next)
            }))
            .service(crate::grpc::server(state.clone()));
        let health = Layers::new()
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                grpc_limits(health_in_flight.clone(), timeout, request, next)
            }))
            .service(crate::grpc_health::server(state.clone()));
        routes
            .route_service("/rustyray.v1.JobService/{*method}", grpc)
            .route_service("/grpc.health.v1.Health/{*method}", health)
    } else {
        routes
    };
    routes.with_state(state)
}

const OPENAPI_PATH: &str = "/api/openapi.json";

/// Checks the token: every POST (submit, cancel, retry) needs admin, every
/// other route read; the OpenAPI document, and health and metrics where so
/// configured, need none.
async fn require(AxumState(state): AxumState<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let public = path == OPENAPI_PATH
        || (state.public_health && path == status::HEALTH_PATH)
        || (state.public_metrics && path == status::METRICS_PATH);
    if !public {
        let needed = if request.method() == axum::http::Method::POST { Role::Admin } else { Role::Read };
        let header = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        if let Err(error) = state.authorize(header, needed) {
            return error.into_response();
        }
    }
    next.run(request).await
}

/// Ends a request that runs past the deadline with DEADLINE_EXCEEDED; event
/// streams are exempt once their headers are out.
async fn deadline(request: Request, next: Next, timeout: std::time::Duration) -> Response {
    let path = request.uri().path().to_string();
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ServiceError::DeadlineExceeded(format!("{path} took longer than {timeout:?}")).into_response(),
    }
}

/// The HTTP layers' limits for a gRPC call, answered as gRPC statuses: past
/// the limit on requests in flight it is refused with RESOURCE_EXHAUSTED,
/// past the deadline it ends with DEADLINE_EXCEEDED (a stream once it has
/// started is exempt, as an event stream is), and a panic in its handler is
/// INTERNAL while the service carries on.
async fn grpc_limits(
    in_flight: Arc<tokio::sync::Semaphore>,
    timeout: std::time::Duration,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = in_flight.try_acquire_owned() else {
        return grpc_refusal(ServiceError::Overloaded("too many requests in flight: retry shortly".into()));
    };
    let method = request.uri().path().to_string();
    let call = std::panic::AssertUnwindSafe(next.run(request));
    match tokio::time::timeout(timeout, futures::FutureExt::catch_unwind(call)).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => {
            tracing::error!(%method, "a gRPC handler panicked; the service carries on");
            grpc_refusal(ServiceError::Internal(format!("{method}: the handler panicked; the service carries on")))
        }
        Err(_) => grpc_refusal(ServiceError::DeadlineExceeded(format!("{method} took longer than {timeout:?}"))),
    }
}

/// `error` as a gRPC response: no body, its code in `grpc-status`.
fn grpc_refusal(error: ServiceError) -> Response {
    tonic::Status::from(error).into_http::<Body>()
}

/// Counts each request by its route template and status.
async fn count(AxumState(state): AxumState<Shared>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let response = next.run(request).await;
    let labels = crate::metrics::RequestLabels { route, status: response.status().as_u16() };
    state.metrics.requests.get_or_create(&labels).inc();
    response
}

async fn tower_error(error: tower::BoxError) -> ServiceError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ServiceError::Overloaded("too many requests in flight: retry shortly".into())
    } else {
        ServiceError::Internal(format!("request failed: {error}"))
    }
}

/// Whether `path` is one of the admin pages', which answer in HTML.
fn admin_path(path: &str) -> bool {
    path == crate::admin::PREFIX || path.starts_with("/admin/")
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    if admin_path(path) {
        return crate::admin::page::no_such_page(path);
    }
    ServiceError::NotFound(format!("no route {} {path}", request.method())).into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path();
    if admin_path(path) {
        return crate::admin::page::no_such_page(path);
    }
    ServiceError::MethodNotAllowed(format!("{} is not allowed on {path}", request.method())).into_response()
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    ServiceError::Internal("the request handler panicked; the service carries on".into()).into_response()
}
