//! Retry and cancel, for one job (its page) or many (the list's
//! checkboxes). Each POST must pass the CSRF checks and come from an admin
//! session; a read session is refused (403) whatever it sends. The first
//! POST shows a confirmation page (no script needed); the confirmed one
//! acts, leaves a message saying what happened, and redirects back.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use rustyray_queue::{JobId, JobInfo, JobState, QueueError};

use super::csrf;
use super::job;
use super::list::short;
use super::page::{self, ErrorPage};
use super::session::{Viewer, safe_next};
use crate::http::Shared;

/// At most this many jobs in one bulk action.
const MAX_BULK: usize = 500;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Action {
    Retry,
    Cancel,
}

impl Action {
    fn parse(text: &str) -> Option<Action> {
        match text {
            "retry" => Some(Action::Retry),
            "cancel" => Some(Action::Cancel),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
        }
    }
}

/// The checks every action passes first: the form's origin and token, then
/// the session's role.
fn allowed(viewer: &Viewer, headers: &HeaderMap, form: &[(String, String)]) -> Result<(), ErrorPage> {
    csrf::check(viewer, headers, super::first(form, "csrf"))?;
    if !viewer.is_admin() {
        return Err(ErrorPage::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Retrying and cancelling jobs needs an admin token; this session signed in with a read token.",
        ));
    }
    Ok(())
}

fn see_other(to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

fn label(job: &JobInfo) -> String {
    match &job.name {
        Some(name) => format!("{name} ({})", short(&job.id)),
        None => short(&job.id),
    }
}

/// Does `action` to job `id`: what happened, or why not.
async fn act(state: &Shared, action: Action, id: JobId) -> Result<String, QueueError> {
    match action {
        Action::Retry => {
            state.queue.retry(id).await?;
            Ok("queued again: it runs as a new attempt, with its retries restored".into())
        }
        Action::Cancel => Ok(match state.queue.cancel(id).await? {
            JobState::Running => "cancel requested: its worker is stopping it".into(),
            now => format!("now {now}"),
        }),
    }
}

/// `POST /admin/jobs/{id}/{action}`: retry or cancel one job.
pub(crate) async fn one(
    State(state): State<Shared>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = super::form_pairs(&body);
    if let Err(refused) = allowed(&viewer, &headers, &form) {
        return refused.into_response();
    }
    let Some(action) = Action::parse(&action) else {
        return page::no_such_page(&format!("{}/{action}", super::job_url(&id)));
    };
    let id = match job::parse(&id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let info = match state.queue.job(id).await {
        Ok(info) => info,
        Err(QueueError::JobNotFound(_)) => {
            return ErrorPage::not_found(format!("No job has the id `{id}`.")).into_response();
        }
        Err(error) => return ErrorPage::from(crate::error::ServiceError::from(error)).into_response(),
    };
    if super::first(&form, "confirmed") != Some("yes") {
        return confirm_one(&viewer, action, &info);
    }
    match act(&state, action, id).await {
        Ok(done) => state.admin.flash(&viewer.id, true, format!("Job {}: {done}.", label(&info))),
        Err(error @ QueueError::WrongState { .. }) => {
            state.admin.flash(&viewer.id, false, format!("Job {} was not changed: {error}.", label(&info)));
        }
        Err(error) => return ErrorPage::from(crate::error::ServiceError::from(error)).into_response(),
    }
    see_other(&super::job_url(id))
}

fn confirm_one(viewer: &Viewer, action: Action, job: &JobInfo) -> Response {
    let (title, what, yes) = match action {
        Action::Retry => {
            ("Retry this job?", "It runs again as a new attempt, with its retries restored.", "Yes, retry it")
        }
        Action::Cancel => (
            "Cancel this job?",
            "A queued job ends CANCELLED at once; a running one is stopped by its worker. This cannot be undone, \
             though a cancelled job can be retried.",
            "Yes, cancel it",
        ),
    };
    let body = html! {
        main.narrow.confirm {
            h1 { (title) }
            p {
                "Job " strong { (label(job)) } " (" code { (job.function) } ") is "
                (page::job_badge(job.state)) " after " (job.attempts) " attempt(s). " (what)
            }
            form method="post" action={ (super::job_url(job.id)) "/" (action.as_str()) } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="confirmed" value="yes";
                div.buttons {
                    button #confirm type="submit" class=(if action == Action::Cancel { "danger" } else { "primary" }) { (yes) }
                    a.button href=(super::job_url(job.id)) { "No, go back" }
                }
            }
        }
    };
    page::html(StatusCode::OK, page::layout(title, Some(viewer), body))
}

/// `POST /admin/bulk`: retry or cancel the jobs ticked on the list.
pub(crate) async fn bulk(State(state): State<Shared>, viewer: Viewer, headers: HeaderMap, body: Bytes) -> Response {
    let form = super::form_pairs(&body);
    if let Err(refused) = allowed(&viewer, &headers, &form) {
        return refused.into_response();
    }
    let back = safe_next(super::first(&form, "back"));
    let Some(action) = super::first(&form, "action").and_then(Action::parse) else {
        state.admin.flash(&viewer.id, false, "Choose Retry selected or Cancel selected.");
        return see_other(&back);
    };
    // Distinct ids in the order given, up to one past the most allowed: a
    // form of a million ids costs no more than one of MAX_BULK + 1.
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &form {
        if key == "id" {
            match job::parse(value) {
                Ok(id) if seen.insert(id) => ids.push(id),
                Ok(_) => {}
                Err(error) => return error.into_response(),
            }
            if ids.len() > MAX_BULK {
                break;
            }
        }
    }
    if ids.is_empty() {
        state.admin.flash(&viewer.id, false, "No job was selected: tick the jobs to act on first.");
        return see_other(&back);
    }
    if ids.len() > MAX_BULK {
        state.admin.flash(&viewer.id, false, format!("At most {MAX_BULK} jobs at once; more were selected."));
        return see_other(&back);
    }
    if super::first(&form, "confirmed") != Some("yes") {
        return confirm_bulk(&viewer, action, &ids, &back);
    }
    let mut done = 0;
    let mut refused = Vec::new();
    for id in &ids {
        match act(&state, action, *id).await {
            Ok(_) => done += 1,
            Err(error @ (QueueError::WrongState { .. } | QueueError::JobNotFound(_))) => {
                refused.push(format!("{}: {error}", short(id)));
            }
            Err(error) => return ErrorPage::from(crate::error::ServiceError::from(error)).into_response(),
        }
    }
    let verb = match action {
        Action::Retry => "Retried",
        Action::Cancel => "Cancelled",
    };
    let mut text = format!("{verb} {done} of {} job(s).", ids.len());
    if !refused.is_empty() {
        text.push_str(" Not changed: ");
        text.push_str(&refused.iter().take(5).cloned().collect::<Vec<_>>().join("; "));
        if refused.len() > 5 {
            text.push_str(&format!("; and {} more", refused.len() - 5));
        }
        text.push('.');
    }
    state.admin.flash(&viewer.id, refused.is_empty(), text);
    see_other(&back)
}

fn confirm_bulk(viewer: &Viewer, action: Action, ids: &[JobId], back: &str) -> Response {
    let title = match action {
        Action::Retry => format!("Retry {} job(s)?", ids.len()),
        Action::Cancel => format!("Cancel {} job(s)?", ids.len()),
    };
    let what: Markup = html! {
        @match action {
            Action::Retry => "Failed and cancelled jobs run again as new attempts; jobs in other states are left as they are.",
            Action::Cancel => "Queued jobs end CANCELLED at once, running ones are stopped by their workers; ended jobs are left as they are.",
        }
    };
    let body = html! {
        main.narrow.confirm {
            h1 { (title) }
            p { (what) }
            ul.ids {
                @for id in ids.iter().take(20) { li { a href=(super::job_url(id)) { code { (id) } } } }
                @if ids.len() > 20 { li { "and " (ids.len() - 20) " more" } }
            }
            form method="post" action={ (super::PREFIX) "/bulk" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="confirmed" value="yes";
                input type="hidden" name="action" value=(action.as_str());
                input type="hidden" name="back" value=(back);
                @for id in ids { input type="hidden" name="id" value=(id); }
                div.buttons {
                    button #confirm type="submit" class=(if action == Action::Cancel { "danger" } else { "primary" }) {
                        "Yes, " (action.as_str()) " them"
                    }
                    a.button href=(back) { "No, go back" }
                }
            }
        }
    };
    page::html(StatusCode::OK, page::layout(&title, Some(viewer), body))
}
