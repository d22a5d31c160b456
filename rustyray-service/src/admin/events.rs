//! `/admin/events`: the service's lifecycle events for the admin pages'
//! script, authenticated by the session cookie (an `EventSource` cannot
//! send a bearer token). The same feed as `/api/events`, resumable with
//! `Last-Event-ID`, without arguments (the pages never need them), and
//! ending when the session does.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;

use super::session;
use crate::error::ServiceError;
use crate::http::Shared;

/// What the pages are told about one transition.
#[derive(Serialize)]
struct PageEvent<'a> {
    seq: i64,
    kind: &'a str,
    job_id: String,
    function: &'a str,
    queue: &'a str,
    state: &'a str,
    attempt: u32,
    error: Option<&'a str>,
    at: i64,
}

/// `GET /admin/events?after=&job=`.
pub(crate) async fn events(State(state): State<Shared>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(id) = session::cookie_value(&headers).filter(|id| state.admin.alive(id)) else {
        return ServiceError::Unauthenticated("no live admin session: sign in again".into()).into_response();
    };
    let pairs = super::query_pairs(query.as_deref());
    let resume = headers.get("last-event-id").and_then(|value| value.to_str().ok()).map(str::trim);
    let after = match resume.or(super::first(&pairs, "after")).filter(|text| !text.is_empty()) {
        Some(text) => match text.parse::<i64>() {
            Ok(after) if after >= 0 => Some(after),
            _ => return ServiceError::field("after", format!("`{text}` is not an event id")).into_response(),
        },
        None => None,
    };
    let job = match super::first(&pairs, "job") {
        Some(text) => match uuid::Uuid::parse_str(text) {
            Ok(job) => Some(rustyray_queue::JobId(job)),
            Err(_) => return ServiceError::field("job", format!("`{text}` is not a job id")).into_response(),
        },
        None => None,
    };
    let sessions = state.clone();
    let stream = match state.feed.watch(after, job) {
        Ok(stream) => stream,
        Err(error) => return error.into_response(),
    };
    let stream = stream.take_while(move |_| std::future::ready(sessions.admin.alive(&id))).map(
        |item| -> Result<SseEvent, Infallible> {
            Ok(match item {
                Ok(event) => {
                    let page = PageEvent {
                        seq: event.seq,
                        kind: &event.kind,
                        job_id: event.job_id.to_string(),
                        function: &event.function,
                        queue: &event.queue,
                        state: event.state.as_str(),
                        attempt: event.attempt,
                        error: event.error.as_deref(),
                        at: event.at,
                    };
                    SseEvent::default()
                        .id(event.seq.to_string())
                        .event(event.kind.as_str())
                        .data(serde_json::to_string(&page).unwrap_or_default())
                }
                Err(error) => SseEvent::default().event("error").data(error.to_string()),
            })
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
