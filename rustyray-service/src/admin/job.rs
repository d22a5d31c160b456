//! A job's page, `/admin/jobs/{id}`: its state and times, retry and cancel
//! for admins, its result or where the result lives, every attempt (state,
//! runner, worker, Ray job, log link, times, heartbeat, error class and
//! message, backtrace in a collapsible monospaced block), its options and
//! its arguments. Arguments show only when the job's function records them
//! and the viewer is an admin, the stricter of the API's rule and the
//! page's.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rustyray_queue::{AttemptInfo, AttemptState, JobId, JobInfo, JobState};

use super::list::short;
use super::page::{self, ErrorPage, Live};
use super::session::Viewer;
use super::time;
use crate::http::Shared;

/// The longest JSON (arguments, result) shown in full.
const MAX_JSON: usize = 64 * 1024;

/// A job id from the path; anything else is no job of this service.
pub(crate) fn parse(text: &str) -> Result<JobId, ErrorPage> {
    uuid::Uuid::parse_str(text).map(JobId).map_err(|_| {
        ErrorPage::not_found(format!("No job has the id `{}`.", text.chars().take(80).collect::<String>()))
    })
}

async fn read(state: &Shared, id: &str) -> Result<JobInfo, ErrorPage> {
    let id = parse(id)?;
    state.queue.job(id).await.map_err(|error| match error {
        rustyray_queue::QueueError::JobNotFound(_) => ErrorPage::not_found(format!("No job has the id `{id}`.")),
        error => ErrorPage::from(crate::error::ServiceError::from(error)),
    })
}

/// `GET /admin/jobs/{id}`.
pub(crate) async fn page(State(state): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let after = state.feed.delivered();
    let job = match read(&state, &id).await {
        Ok(job) => job,
        Err(error) => return error.into_response(),
    };
    let flash = state.admin.take_flash(&viewer.id);
    let title = match &job.name {
        Some(name) => format!("Job {name}"),
        None => format!("Job {}", short(&job.id)),
    };
    let body = html! {
        main.job {
            p.crumbs { a href=(super::PREFIX) { "← All jobs" } }
            h1 {
                @if let Some(name) = &job.name { (name) " " }
                code.id { (job.id) }
            }
            (page::flash(flash.as_ref()))
            p.live-status aria-live="polite" {
                span #live-status { "Live updates need JavaScript; reload to see changes." }
            }
            div #live { (live(&viewer, &job)) }
            (options(&job))
            (arguments(&viewer, &job))
        }
    };
    let live = Live {
        events: Some(format!("{}/events?job={}&after={after}", super::PREFIX, job.id)),
        refresh: Some(format!("{}/live", super::job_url(job.id))),
    };
    page::html(axum::http::StatusCode::OK, page::layout_live(&title, Some(&viewer), &live, body))
}

/// `GET /admin/jobs/{id}/live`: the parts that change, for the page's script.
pub(crate) async fn fragment(State(state): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> Response {
    match read(&state, &id).await {
        Ok(job) => page::fragment(live(&viewer, &job)),
        Err(error) => error.into_response(),
    }
}

/// State, times, actions, error, result and attempts.
fn live(viewer: &Viewer, job: &JobInfo) -> Markup {
    let now = time::now();
    html! {
        section.summary aria-label="State" data-state=(job.state.as_str()) {
            dl.grid {
                div { dt { "State" } dd #job-state { (page::job_badge(job.state)) } }
                div { dt { "Function" } dd { code { (job.function) } } }
                div { dt { "Queue" } dd { (job.queue) } }
                div { dt { "Attempts" } dd { (job.attempts) " of at most " (job.max_attempts) } }
                div { dt { "Created" } dd { (time::format(job.created_at)) } }
                @if job.state == JobState::Queued && job.run_after > now {
                    div { dt { "Runs after" } dd { (time::format(job.run_after)) " (" (time::ago(job.run_after, now)) ")" } }
                }
                @if let Some(started) = job.started_at {
                    div { dt { "First started" } dd { (time::format(started)) } }
                }
                @if let Some(finished) = job.finished_at {
                    div { dt { "Finished" } dd { (time::format(finished)) } }
                }
                @if let Some(worker) = &job.worker_id {
                    div { dt { "Worker" } dd { code { (worker) } } }
                }
            }
            @if job.cancel_requested && !job.state.is_terminal() {
                p.msg.note { "A cancel was asked for: the worker is stopping this job." }
            }
            @if viewer.is_admin() {
                (actions(viewer, job))
            }
        }
        @if let Some(error) = &job.last_error {
            section.last-error aria-labelledby="h-error" {
                h2 #h-error { "Last error" }
                pre.error-text { (error) }
            }
        }
        section aria-labelledby="h-result" {
            h2 #h-result { "Result" }
            @if let Some(result) = &job.result {
                (json_block(result, "result"))
            } @else if let Some(reference) = &job.result_ref {
                p { "Stored outside the database, at " code { (reference) } }
            } @else if job.state == JobState::Succeeded {
                p { "The function returned nothing." }
            } @else {
                p.muted { "No result: the job has not succeeded." }
            }
        }
        section aria-labelledby="h-attempts" {
            h2 #h-attempts { "Attempts (" (job.attempt_list.len()) ")" }
            @if job.attempt_list.is_empty() {
                p.muted { "None yet." }
            }
            @for attempt in job.attempt_list.iter().rev() {
                (attempt_card(attempt, now))
            }
        }
    }
}

/// Retry and cancel, as the job's state allows.
fn actions(viewer: &Viewer, job: &JobInfo) -> Markup {
    let retry = matches!(job.state, JobState::Failed | JobState::Cancelled);
    let cancel = matches!(job.state, JobState::Queued | JobState::Running) && !job.cancel_requested;
    html! {
        @if retry || cancel {
            div.actions role="group" aria-label="Actions" {
                @if retry {
                    form.inline method="post" action={ (super::job_url(job.id)) "/retry" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button.primary #retry type="submit" { "Retry…" }
                    }
                }
                @if cancel {
                    form.inline method="post" action={ (super::job_url(job.id)) "/cancel" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button.danger #cancel type="submit" { "Cancel job…" }
                    }
                }
            }
        }
    }
}

fn attempt_card(attempt: &AttemptInfo, now: i64) -> Markup {
    let ended = attempt.finished_at.or(if attempt.state == AttemptState::Running { Some(now) } else { None });
    html! {
        article.attempt #{ "attempt-" (attempt.attempt) } aria-labelledby={ "h-attempt-" (attempt.attempt) } {
            h3 #{ "h-attempt-" (attempt.attempt) } {
                "Attempt " (attempt.attempt) " " (page::attempt_badge(attempt.state))
                @if !attempt.charged { " " span.muted { "(not charged)" } }
            }
            dl.grid {
                div { dt { "Runner" } dd { code { (attempt.runner) } } }
                div { dt { "Worker" } dd { @if let Some(w) = &attempt.worker_id { code { (w) } } @else { "—" } } }
                div { dt { "Ray job" } dd { @if let Some(r) = &attempt.ray_job_id { code { (r) } } @else { "—" } } }
                div { dt { "Logs" } dd { (log_link(attempt.log_ref.as_deref())) } }
                div { dt { "Submitted" } dd { (time::format(attempt.submitted_at)) } }
                div { dt { "Started" } dd { @if let Some(t) = attempt.started_at { (time::format(t)) } @else { "—" } } }
                div { dt { "Finished" } dd { @if let Some(t) = attempt.finished_at { (time::format(t)) } @else { "—" } } }
                @if let (Some(started), Some(ended)) = (attempt.started_at, ended) {
                    div { dt { "Ran for" } dd { (time::duration(ended - started)) } }
                }
                div {
                    dt { "Last heartbeat" }
                    dd title=(time::format(attempt.last_heartbeat)) { (time::ago(attempt.last_heartbeat, now)) }
                }
                @if let Some(reference) = &attempt.result_ref {
                    div { dt { "Result at" } dd { code { (reference) } } }
                }
            }
            @if attempt.error_class.is_some() || attempt.error_message.is_some() {
                div.error-box {
                    p {
                        strong.error-class { (attempt.error_class.as_deref().unwrap_or("Error")) }
                        @if let Some(message) = &attempt.error_message { ": " span.error-message { (message) } }
                    }
                }
            }
            @if let Some(backtrace) = &attempt.backtrace {
                details.trace data-key={ "trace-" (attempt.attempt) } {
                    summary { "Backtrace (" (backtrace.lines().count()) " lines)" }
                    pre tabindex="0" { code { (backtrace) } }
                }
            }
        }
    }
}

/// A link to an attempt's logs when they are on the web, else where they are.
fn log_link(log_ref: Option<&str>) -> Markup {
    html! {
        @match log_ref {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                a href=(url) rel="noopener noreferrer" target="_blank" { "Open logs" }
            }
            Some(other) => code { (other) },
            None => "—",
        }
    }
}

fn options(job: &JobInfo) -> Markup {
    let o = &job.options;
    let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
    html! {
        section aria-labelledby="h-options" {
            h2 #h-options { "Options" }
            dl.grid {
                div { dt { "Queue" } dd { (o.queue_name()) } }
                div { dt { "Priority" } dd { (job.priority) } }
                div { dt { "Retries" } dd { (o.max_retries) } }
                div { dt { "Backoff" } dd { @if let Some((a, b)) = o.backoff { (ms(a)) " to " (ms(b)) } @else { "default" } } }
                div { dt { "Timeout" } dd { @if let Some(t) = o.timeout { (ms(t)) } @else { "none" } } }
                div { dt { "Delay" } dd { @if let Some(t) = o.run_after { (ms(t)) } @else { "none" } } }
                div { dt { "CPUs" } dd { @if let Some(c) = o.num_cpus { (c) } @else { "default" } } }
                div { dt { "Records arguments" } dd { (if o.record_args { "yes" } else { "no" }) } }
                @if let Some(name) = &o.name {
                    div { dt { "Name" } dd { (name) } }
                }
            }
        }
    }
}

fn arguments(viewer: &Viewer, job: &JobInfo) -> Markup {
    html! {
        section aria-labelledby="h-args" {
            h2 #h-args { "Arguments" }
            @match (&job.args, viewer.is_admin()) {
                (None, _) => p.muted #args-redacted { "Redacted: this job's function does not record its arguments." },
                (Some(_), false) => p.muted #args-redacted { "Hidden: arguments are shown to admins only." },
                (Some(args), true) => (json_block(args, "args")),
            }
        }
    }
}

/// Pretty JSON in a scrollable monospaced block, cut when very long.
fn json_block(value: &serde_json::Value, id: &str) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let cut = text.len() > MAX_JSON;
    let mut end = text.len().min(MAX_JSON);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let shown = &text[..end];
    html! {
        pre.json #(id) tabindex="0" { code { (shown) } }
        @if cut { p.muted { "Cut at " (MAX_JSON / 1024) " KiB of " (text.len() / 1024) " KiB; the API serves it whole." } }
    }
}
