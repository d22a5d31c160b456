//! Server-sent lifecycle events: `id` is the event's sequence number, so a
//! client that reconnects with `Last-Event-ID` resumes where it left off,
//! from the database's backlog.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use super::jobs::parse_id;
use super::{Query, Shared};
use crate::error::{ErrorBody, Result, ServiceError};

/// Where to start and what to follow.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Start after this event (the `Last-Event-ID` header wins); without
    /// either, only new events come.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Only this job's events.
    pub job: Option<String>,
}

/// Lifecycle events as they happen: submitted, started, retried, released,
/// succeeded, failed, cancelled, lost.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    params(EventParams, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "A text/event-stream of events; each `data` is an Event", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let resume = match headers.get("last-event-id") {
        Some(value) => {
            let text = value.to_str().unwrap_or_default().trim();
            let after = text.parse::<i64>().ok().filter(|after| *after >= 0);
            Some(after.ok_or_else(|| ServiceError::field("Last-Event-ID", format!("`{text}` is not an event id")))?)
        }
        None => None,
    };
    if params.after.is_some_and(|after| after < 0) {
        return Err(ServiceError::field("after", "an event id is 0 or more"));
    }
    let job = match params.job.as_deref() {
        Some(job) => Some(parse_id("job", job)?),
        None => None,
    };
    let stream = state.feed.watch(resume.or(params.after), job)?.map(|item| {
        Ok(match item {
            Ok(event) => {
                let data = serde_json::to_string(&*event).unwrap_or_default();
                SseEvent::default().id(event.seq.to_string()).event(event.kind.as_str()).data(data)
            }
            Err(error) => {
                SseEvent::default().event("error").data(serde_json::to_string(&error.body()).unwrap_or_default())
            }
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
