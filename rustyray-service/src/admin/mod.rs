//! The admin web page, served at `/admin` over the service's queue and
//! tokens: the job list with filters, counts and health; a job's page with
//! its options, arguments, result and every attempt; retry and cancel, one
//! job or many, for admin tokens.
//!
//! Server-rendered with maud; a few lines of plain script (an
//! `EventSource` on `/admin/events`) update the pages live, and everything
//! reads without it. Stylesheet and script are compiled into the binary.
//!
//! Modules: `session` (sign-in, the session cookie), `csrf` (what every
//! POST must prove), `list` and `job` (the pages), `actions` (retry and
//! cancel, with their confirmations), `events` (the live stream for the
//! pages), `assets`, `page` (the shared layout and error page), `time`.

mod actions;
mod assets;
mod csrf;
mod events;
mod job;
mod list;
pub(crate) mod page;
pub(crate) mod session;
mod time;

use axum::Router;
use axum::routing::{get, post};

pub(crate) use session::{DEFAULT_TTL, Sessions};

use crate::http::Shared;

/// Where the admin pages live.
pub(crate) const PREFIX: &str = "/admin";

/// The admin routes; they authenticate with the session cookie, not a
/// bearer token.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/admin", get(list::page))
        .route("/admin/", get(|| async { axum::response::Redirect::permanent(PREFIX) }))
        .route("/admin/stats", get(list::stats_fragment))
        .route("/admin/login", get(session::form).post(session::sign_in))
        .route("/admin/logout", post(session::sign_out))
        .route("/admin/jobs/{id}", get(job::page))
        .route("/admin/jobs/{id}/live", get(job::fragment))
        .route("/admin/jobs/{id}/{action}", post(actions::one))
        .route("/admin/bulk", post(actions::bulk))
        .route("/admin/events", get(events::events))
        .route("/admin/assets/{name}", get(assets::serve))
        .layer(axum::middleware::map_request(host_from_authority))
}

/// HTTP/2 names the host in the request's authority (`:authority`), and
/// sends no `Host` header: give the request one from the authority, so the
/// same-origin check of a POST ([`csrf`]) compares the browser's `Origin`
/// with the host the request was sent to, whatever the protocol.
async fn host_from_authority(mut request: axum::extract::Request) -> axum::extract::Request {
    if !request.headers().contains_key(axum::http::header::HOST)
        && let Some(authority) = request.uri().authority()
        && let Ok(host) = axum::http::HeaderValue::from_str(&match authority.port_u16() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_string(),
        })
    {
        request.headers_mut().insert(axum::http::header::HOST, host);
    }
    request
}

/// The pairs of a query string (lossy: bad escapes become U+FFFD).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The pairs of an `application/x-www-form-urlencoded` body.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `name`.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// The admin page that shows job `id`.
pub(crate) fn job_url(id: impl std::fmt::Display) -> String {
    format!("{PREFIX}/jobs/{id}")
}
