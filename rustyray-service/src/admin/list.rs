//! The job list, `/admin`: counts per state, live workers and health at the
//! top; a filter form (state, queue, function, created between, text in
//! the id or name); the jobs newest first, a page at a time, with
//! checkboxes and bulk retry and cancel for admins. Filter values that make
//! no sense are named in a message above the form, never ignored silently.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rustyray_queue::{JobFilter, JobId, JobInfo, JobState, Micros, QueueStats};

use super::page::{self, ErrorPage, Live};
use super::session::Viewer;
use super::time;
use crate::health::{Health, HealthStatus};
use crate::http::Shared;

/// The page sizes offered.
const LIMITS: [u32; 4] = [25, 50, 100, 200];
const DEFAULT_LIMIT: u32 = 50;
/// The longest filter value read.
const MAX_VALUE: usize = 200;

/// What the list shows, read from the query string.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filters {
    state: Option<JobState>,
    queue: Option<String>,
    function: Option<String>,
    search: Option<String>,
    from: Option<Micros>,
    to: Option<Micros>,
    cursor: Option<JobId>,
    limit: u32,
    /// The values as typed, to show them again in the form.
    raw: Vec<(&'static str, String)>,
}

impl Filters {
    /// Reads the filters; each value that makes no sense is left out and
    /// named in the messages.
    pub(crate) fn parse(pairs: &[(String, String)]) -> (Filters, Vec<String>) {
        let mut filters = Filters { limit: DEFAULT_LIMIT, ..Filters::default() };
        let mut problems = Vec::new();
        for key in ["state", "queue", "function", "q", "from", "to", "cursor", "limit"] {
            let Some(value) = super::first(pairs, key).map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            filters.raw.push((key, value.chars().take(MAX_VALUE).collect()));
            if value.chars().count() > MAX_VALUE {
                problems.push(format!("{key}: at most {MAX_VALUE} characters"));
                continue;
            }
            match key {
                "state" => match value.parse::<JobState>() {
                    Ok(state) => filters.state = Some(state),
                    Err(_) => problems.push(format!(
                        "state: `{value}` is not a state; use one of {}",
                        JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                },
                "queue" => filters.queue = Some(value.to_string()),
                "function" => filters.function = Some(value.to_string()),
                "q" => filters.search = Some(value.to_string()),
                "from" | "to" => match time::parse(value) {
                    Ok(at) if key == "from" => filters.from = Some(at),
                    Ok(at) => filters.to = Some(at),
                    Err(why) => problems.push(format!("{key}: {why}")),
                },
                "cursor" => match uuid::Uuid::parse_str(value) {
                    Ok(id) => filters.cursor = Some(JobId(id)),
                    Err(_) => problems.push(format!("cursor: `{value}` is not a job id")),
                },
                _ => match value.parse::<u32>() {
                    Ok(limit) if LIMITS.contains(&limit) => filters.limit = limit,
                    _ => problems.push(format!(
                        "limit: `{value}` is not a page size; use one of {}",
                        LIMITS.map(|l| l.to_string()).join(", ")
                    )),
                },
            }
        }
        if let (Some(from), Some(to)) = (filters.from, filters.to)
            && from >= to
        {
            problems.push("to: the end of the time range must come after its start".into());
        }
        (filters, problems)
    }

    fn raw(&self, key: &str) -> &str {
        self.raw.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v.as_str())
    }

    /// Whether anything narrows the list (a page past the first counts).
    fn narrowed(&self) -> bool {
        self.raw.iter().any(|(key, _)| *key != "limit")
    }

    /// The query string of these filters, with another cursor.
    fn query(&self, cursor: Option<&JobId>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &self.raw {
            if *key != "cursor" {
                query.append_pair(key, value);
            }
        }
        if let Some(cursor) = cursor {
            query.append_pair("cursor", &cursor.to_string());
        }
        let query = query.finish();
        if query.is_empty() { super::PREFIX.to_string() } else { format!("{}?{query}", super::PREFIX) }
    }

    fn to_job_filter(&self) -> JobFilter {
        JobFilter {
            state: self.state,
            queue: self.queue.clone(),
            function: self.function.clone(),
            search: self.search.clone(),
            created_after: self.from,
            created_before: self.to,
            before: self.cursor,
            // One more than shown tells whether there is a next page.
            limit: Some(self.limit + 1),
        }
    }
}

/// `GET /admin`: the job list.
pub(crate) async fn page(State(state): State<Shared>, viewer: Viewer, RawQuery(query): RawQuery) -> Response {
    let pairs = super::query_pairs(query.as_deref());
    let (filters, problems) = Filters::parse(&pairs);
    // The events the page's script replays start here, before anything is
    // read, so that no change between the read and the stream is missed.
    let after = state.feed.delivered();
    let (stats, health) = tokio::join!(state.queue.stats(), state.health());
    let jobs = if problems.is_empty() {
        match state.queue.jobs(filters.to_job_filter()).await {
            Ok(jobs) => Some(jobs),
            Err(error) => return ErrorPage::from(crate::error::ServiceError::from(error)).into_response(),
        }
    } else {
        None
    };
    let flash = state.admin.take_flash(&viewer.id);
    let title = match filters.state {
        Some(state) => format!("{state} jobs"),
        None => "Jobs".to_string(),
    };
    let body = html! {
        main {
            h1 { (title) }
            (summary(stats.as_ref().ok(), stats.as_ref().err().map(ToString::to_string), &health))
            (page::flash(flash.as_ref()))
            @if !problems.is_empty() {
                div.msg.error role="alert" #filter-problems {
                    p { "These filters were not understood:" }
                    ul { @for problem in &problems { li { (problem) } } }
                }
            }
            (filter_form(&filters))
            @if let Some(jobs) = &jobs {
                (job_table(&viewer, &filters, jobs))
            }
        }
    };
    let live = Live { events: Some(format!("{}/events?after={after}", super::PREFIX)), refresh: None };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page::html(status, page::layout_live(&title, Some(&viewer), &live, body))
}

/// `GET /admin/stats`: the summary again, for the page's script.
pub(crate) async fn stats_fragment(State(state): State<Shared>, _viewer: Viewer) -> Response {
    let (stats, health) = tokio::join!(state.queue.stats(), state.health());
    page::fragment(summary(stats.as_ref().ok(), stats.as_ref().err().map(ToString::to_string), &health))
}

/// Counts per state (each a link to that state's list), workers, health.
fn summary(stats: Option<&QueueStats>, failed: Option<String>, health: &Health) -> Markup {
    let verdict = match health.status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Unhealthy => "unhealthy",
    };
    html! {
        section #stats aria-label="Summary" {
            @if let Some(stats) = stats {
                ul.counts {
                    @for state in JobState::ALL {
                        li {
                            a class={ "count state-" (state.as_str().to_ascii_lowercase()) }
                                href={ (super::PREFIX) "?state=" (state.as_str()) } data-count=(state.as_str()) {
                                span.n { (stats.count(*state)) }
                                span.label { (state.as_str()) }
                            }
                        }
                    }
                    li {
                        span.count.workers {
                            span.n #workers-alive { (stats.workers_alive) }
                            span.label { "workers alive" }
                        }
                    }
                }
            }
            @if let Some(failed) = failed {
                p.msg.error role="alert" { "Counts unavailable: " (failed) }
            }
            div class={ "health health-" (verdict) } {
                span.verdict { "Service " strong { (verdict) } }
                ul.checks {
                    @for check in &health.checks {
                        li class=(if check.ok { "ok" } else { "bad" }) title=(check.detail) {
                            span.mark aria-hidden="true" { (if check.ok { "✔" } else { "✖" }) }
                            " " (check.name) ": " (check.detail)
                        }
                    }
                    @if let Some(stats) = stats && stats.cluster_down {
                        li.bad { span.mark aria-hidden="true" { "✖" } " cluster: unreachable, jobs wait QUEUED" }
                    }
                }
                @for reason in &health.reasons {
                    p.reason { (reason) }
                }
            }
        }
    }
}

fn filter_form(filters: &Filters) -> Markup {
    let from = filters.from.map(time::input_value);
    let to = filters.to.map(time::input_value);
    html! {
        form.filters method="get" action=(super::PREFIX) role="search" aria-label="Filter jobs" {
            div.field {
                label for="f-state" { "State" }
                select #f-state name="state" {
                    option value="" { "any" }
                    @for state in JobState::ALL {
                        option value=(state.as_str()) selected[filters.state == Some(*state)] { (state.as_str()) }
                    }
                }
            }
            div.field {
                label for="f-queue" { "Queue" }
                input #f-queue type="text" name="queue" value=(filters.raw("queue")) placeholder="any";
            }
            div.field {
                label for="f-function" { "Function" }
                input #f-function type="text" name="function" value=(filters.raw("function")) placeholder="any";
            }
            div.field.wide {
                label for="f-q" { "Id or name contains" }
                input #f-q type="search" name="q" value=(filters.raw("q"));
            }
            div.field {
                label for="f-from" { "Created from (UTC)" }
                input #f-from type="datetime-local" name="from"
                    value=(from.unwrap_or_else(|| filters.raw("from").to_string()));
            }
            div.field {
                label for="f-to" { "Created before (UTC)" }
                input #f-to type="datetime-local" name="to"
                    value=(to.unwrap_or_else(|| filters.raw("to").to_string()));
            }
            div.field {
                label for="f-limit" { "Per page" }
                select #f-limit name="limit" {
                    @for limit in LIMITS {
                        option value=(limit) selected[filters.limit == limit] { (limit) }
                    }
                }
            }
            div.buttons {
                button.primary type="submit" { "Apply filters" }
                @if filters.narrowed() {
                    a.button href=(super::PREFIX) { "Clear" }
                }
            }
        }
    }
}

fn job_table(viewer: &Viewer, filters: &Filters, jobs: &[JobInfo]) -> Markup {
    let shown = &jobs[..jobs.len().min(filters.limit as usize)];
    let older = if jobs.len() > shown.len() { shown.last().map(|job| filters.query(Some(&job.id))) } else { None };
    let now = time::now();
    let admin = viewer.is_admin();
    let back = filters.query(filters.cursor.as_ref());
    // New jobs are added to the top live only where they surely belong:
    // the first page of an unfiltered list.
    let insert = !filters.narrowed();
    html! {
        form #bulk method="post" action={ (super::PREFIX) "/bulk" } {
            @if admin {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="back" value=(back);
                div.bulk role="group" aria-label="Actions on the selected jobs" {
                    span { "Selected jobs: " }
                    button type="submit" name="action" value="retry" { "Retry selected" }
                    button.danger type="submit" name="action" value="cancel" { "Cancel selected" }
                }
            }
            p.live-status aria-live="polite" {
                span #live-status { "Live updates need JavaScript; reload to see changes." }
                " " span #new-jobs hidden {}
            }
            @if shown.is_empty() {
                p.empty #no-jobs { "No jobs match." }
            }
            div.table-wrap {
                table.jobs data-live-insert=(insert) data-admin=(admin) {
                    caption.visually-hidden { "Jobs, newest first" }
                    thead {
                        tr {
                            @if admin {
                                th scope="col" {
                                    input #select-all type="checkbox" aria-label="Select every job on this page" hidden;
                                }
                            }
                            th scope="col" { "Job" }
                            th scope="col" { "Function" }
                            th scope="col" { "Queue" }
                            th scope="col" { "State" }
                            th scope="col" { "Attempts" }
                            th scope="col" { "Created" }
                            th scope="col" { "Last error" }
                        }
                    }
                    tbody #job-rows {
                        @for job in shown {
                            tr data-job=(job.id) {
                                @if admin {
                                    td.select {
                                        input type="checkbox" name="id" value=(job.id)
                                            aria-label={ "Select job " (job.name.as_deref().unwrap_or(&short(&job.id))) };
                                    }
                                }
                                td.job data-label="Job" {
                                    a href=(super::job_url(job.id)) {
                                        @if let Some(name) = &job.name { (name) } @else { code { (short(&job.id)) } }
                                    }
                                }
                                td data-label="Function" { code { (job.function) } }
                                td data-label="Queue" { (job.queue) }
                                td data-label="State" data-field="state" { (page::job_badge(job.state)) }
                                td data-label="Attempts" data-field="attempts" { (job.attempts) " / " (job.max_attempts) }
                                td data-label="Created" title=(time::format(job.created_at)) {
                                    (time::ago(job.created_at, now))
                                }
                                td.error data-label="Last error" data-field="error" {
                                    @if let Some(error) = &job.last_error { (clip(error, 120)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if filters.cursor.is_some() {
                a.button href=(filters.query(None)) { "← Newest" }
            }
            @if let Some(older) = older {
                a.button #older href=(older) { "Older →" }
            }
        }
    }
}

/// The first block of a job id, enough to tell jobs apart on a page.
pub(crate) fn short(id: &JobId) -> String {
    id.to_string().chars().take(13).collect()
}

/// `text`, cut to `max` characters.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn filters_read_what_they_can_and_name_the_rest() {
        let (f, problems) = Filters::parse(&pairs(&[("state", "failed"), ("q", "resize"), ("from", "2026-01-01")]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(f.state, Some(JobState::Failed));
        assert_eq!(f.search.as_deref(), Some("resize"));
        assert!(f.from.is_some());
        let (_, problems) = Filters::parse(&pairs(&[
            ("state", "DONE"),
            ("limit", "7"),
            ("cursor", "x"),
            ("from", "2026-02-01"),
            ("to", "2026-01-01"),
        ]));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("state: `DONE` is not a state"));
        let (f, problems) = Filters::parse(&pairs(&[("state", ""), ("queue", " ")]));
        assert!(problems.is_empty() && !f.narrowed());
    }

    #[test]
    fn paging_keeps_the_filters() {
        let (f, _) = Filters::parse(&pairs(&[
            ("state", "FAILED"),
            ("q", "a b&c"),
            ("cursor", "0190b5a0-0000-7000-8000-000000000000"),
        ]));
        let id = JobId(uuid::Uuid::nil());
        assert_eq!(f.query(Some(&id)), format!("/admin?state=FAILED&q=a+b%26c&cursor={id}"));
        assert_eq!(f.query(None), "/admin?state=FAILED&q=a+b%26c");
    }
}
