//! The HTTP/JSON API through a real listening socket: submit, read, list
//! with paging, cancel, retry, statistics, health, metrics, the OpenAPI
//! document, server-sent events with resume, every route's auth matrix and
//! every kind of bad input, on SQLite and PostgreSQL.

mod queue;
mod service;

use std::time::Duration;

use futures::StreamExt;
use queue::{backends, within};
use reqwest::StatusCode;
use rustyray::queue::{JobState, Queue, Worker};
use serde_json::{Value, json};
use service::{ADMIN, READ, Server, client};

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
async fn nap(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

async fn worker(q: &Queue) -> Worker {
    Worker::builder(q).concurrency(4).heartbeat(Duration::from_millis(50)).start().await.expect("worker")
}

async fn submit(server: &Server, body: Value) -> reqwest::Response {
    client().post(server.url("/api/jobs")).bearer_auth(ADMIN).json(&body).send().await.unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn get(server: &Server, path: &str) -> (StatusCode, Value) {
    json_of(client().get(server.url(path)).bearer_auth(READ).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_retried_under_its_idempotency_key_answers_for_the_first_job() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let body = json!({"function": add::NAME, "args": [2, 3], "options": {"idempotency_key": "invoice-9"}});
        let (status, first) = json_of(submit(&server, body.clone()).await).await;
        assert_eq!((status, first["state"].as_str()), (StatusCode::CREATED, Some("QUEUED")), "{}", db.label);
        let w = worker(&q).await;
        let job = rustyray::queue::Job::<i64>::from_id(&q, first["id"].as_str().unwrap().parse().unwrap());
        assert_eq!(within("result", job.result()).await.unwrap(), 5);
        // The client did not hear back, and sends it again: the same job, as it is now.
        let (status, again) = json_of(submit(&server, body).await).await;
        assert_eq!(
            (status, &again["id"], again["state"].as_str()),
            (StatusCode::CREATED, &first["id"], Some("SUCCEEDED"))
        );
        let (_, stats) = get(&server, "/api/stats").await;
        assert_eq!(stats["by_state"]["SUCCEEDED"], 1, "{}: one job: {stats}", db.label);
        let long = json!({"function": add::NAME, "args": [1, 1], "options": {"idempotency_key": "k".repeat(256)}});
        let (status, refused) = json_of(submit(&server, long).await).await;
        assert_eq!((status, refused["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_ARGUMENT")));
        assert!(refused["message"].as_str().is_some_and(|m| m.starts_with("options.idempotency_key")), "{refused}");
        w.shutdown().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_submitted_read_listed_and_its_result_served() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let response =
            submit(&server, json!({"function": add::NAME, "args": [2, 3], "options": {"priority": 5}})).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", db.label);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let (_, created) = json_of(response).await;
        assert_eq!(created["state"], "QUEUED");
        assert_eq!(created["queue"], "default");
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(location, format!("/api/jobs/{id}"));
        let w = worker(&q).await;
        let job = rustyray::queue::Job::<i64>::from_id(&q, id.parse().unwrap());
        assert_eq!(within("result", job.result()).await.unwrap(), 5);
        let (status, info) = get(&server, &location).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((info["state"].as_str(), info["result"].as_i64()), (Some("SUCCEEDED"), Some(5)), "{info}");
        assert_eq!(info["attempt_list"][0]["state"], "SUCCEEDED");
        assert_eq!(info["args"], Value::Null, "arguments are redacted unless the job opted in");
        let (status, stats) = get(&server, "/api/stats").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stats["by_state"]["SUCCEEDED"], 1, "{stats}");
        assert!(stats["uptime_seconds"].is_u64());
        w.shutdown().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_and_pages_with_a_cursor() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        for i in 0..5 {
            let queue = if i % 2 == 0 { "even" } else { "odd" };
            let body = json!({"function": add::NAME, "args": [i, i], "options": {"queue": queue}});
            assert_eq!(submit(&server, body).await.status(), StatusCode::CREATED);
        }
        let (status, page) = get(&server, "/api/jobs?queue=even&limit=2").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
        let cursor = page["next_cursor"].as_str().expect("a full page has a cursor").to_string();
        let (_, rest) = get(&server, &format!("/api/jobs?queue=even&limit=2&cursor={cursor}")).await;
        let rest = rest["jobs"].as_array().unwrap().clone();
        assert_eq!(rest.len(), 1, "{}", db.label);
        let first: Vec<&str> = page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert!(!first.contains(&rest[0]["id"].as_str().unwrap()), "pages do not overlap");
        let (_, queued) = get(&server, "/api/jobs?state=QUEUED").await;
        assert_eq!(queued["jobs"].as_array().unwrap().len(), 5);
        assert_eq!(queued["next_cursor"], Value::Null);
        let (_, by_function) = get(&server, &format!("/api/jobs?function={}", add::NAME)).await;
        assert_eq!(by_function["jobs"].as_array().unwrap().len(), 5);
        // Blank fields (as a form sends them) are no filter; a state in any case.
        let (status, blank) = get(&server, "/api/jobs?state=&queue=&function=&search=&cursor=").await;
        assert_eq!((status, blank["jobs"].as_array().map(Vec::len)), (StatusCode::OK, Some(5)), "{blank}");
        let (_, lower) = get(&server, "/api/jobs?state=queued").await;
        assert_eq!(lower["jobs"].as_array().unwrap().len(), 5, "{}: {lower}", db.label);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_move_jobs_and_active_shows_running_ones() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let (_, queued) = json_of(submit(&server, json!({"function": add::NAME, "args": [1, 1]})).await).await;
        let id = queued["id"].as_str().unwrap();
        let cancel = |id: &str| client().post(server.url(&format!("/api/jobs/{id}/cancel"))).bearer_auth(ADMIN).send();
        let (status, body) = json_of(cancel(id).await.unwrap()).await;
        assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("CANCELLED")), "{body}");
        let (status, body) = json_of(cancel(id).await.unwrap()).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::OK, Some("CANCELLED")),
            "cancel is idempotent: {body}"
        );
        let (_, queued_again) = json_of(submit(&server, json!({"function": add::NAME, "args": [2, 2]})).await).await;
        let not_ended = client()
            .post(server.url(&format!("/api/jobs/{}/retry", queued_again["id"].as_str().unwrap())))
            .bearer_auth(ADMIN)
            .send();
        let (status, body) = json_of(not_ended.await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_ARGUMENT")), "{body}");
        assert!(body["message"].as_str().unwrap().contains("QUEUED"), "{body}");
        let retry = client().post(server.url(&format!("/api/jobs/{id}/retry"))).bearer_auth(ADMIN).send();
        let (status, body) = json_of(retry.await.unwrap()).await;
        assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("QUEUED")), "{body}");
        let (_, long) = json_of(submit(&server, json!({"function": nap::NAME, "args": [60_000]})).await).await;
        let long_id = long["id"].as_str().unwrap().to_string();
        let w = worker(&q).await;
        let running = within("running", async {
            loop {
                let (_, active) = get(&server, "/api/active").await;
                let jobs = active["jobs"].as_array().cloned().unwrap_or_default();
                if let Some(job) = jobs.into_iter().find(|j| j["id"] == long_id.as_str()) {
                    break job;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!((running["runner"].as_str(), running["attempt"].as_u64()), (Some("local"), Some(1)));
        assert_eq!(running["worker_id"].as_str(), Some(w.id()));
        let (status, _) = json_of(cancel(&long_id).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let job = rustyray::queue::Job::<u64>::from_id(&q, long_id.parse().unwrap());
        assert_eq!(within("cancelled", job.wait()).await.unwrap(), JobState::Cancelled);
        w.shutdown().await;
        server.stop().await;
    }
}

/// Every route, with the role it needs.
fn routes(id: &str) -> Vec<(reqwest::Method, String, Option<Value>, &'static str)> {
    use reqwest::Method;
    vec![
        (Method::GET, "/api/jobs".into(), None, "read"),
        (Method::POST, "/api/jobs".into(), Some(json!({"function": add::NAME, "args": [1, 2]})), "admin"),
        (Method::GET, format!("/api/jobs/{id}"), None, "read"),
        (Method::POST, format!("/api/jobs/{id}/cancel"), None, "admin"),
        (Method::POST, format!("/api/jobs/{id}/retry"), None, "admin"),
        (Method::GET, "/api/active".into(), None, "read"),
        (Method::GET, "/api/stats".into(), None, "read"),
        (Method::GET, "/api/health".into(), None, "read"),
        (Method::GET, "/metrics".into(), None, "read"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_no_token_and_read_tokens_on_admin_routes() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let (_, job) = json_of(submit(&server, json!({"function": add::NAME, "args": [1, 1]})).await).await;
    let id = job["id"].as_str().unwrap().to_string();
    for (method, path, body, role) in routes(&id) {
        let request = |token: Option<&str>| {
            let mut r = client().request(method.clone(), server.url(&path));
            if let Some(token) = token {
                r = r.bearer_auth(token);
            }
            if let Some(body) = &body {
                r = r.json(body);
            }
            r.send()
        };
        let (status, error) = json_of(request(None).await.unwrap()).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")),
            "{method} {path}"
        );
        let (status, _) = json_of(request(Some("not-a-token-anyone-knows")).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let (status, error) = json_of(request(Some(READ)).await.unwrap()).await;
        if role == "admin" {
            assert_eq!(
                (status, error["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED")),
                "{method} {path}"
            );
        } else {
            assert!(status.is_success(), "{method} {path} with a read token: {status} {error}");
        }
        let (status, error) = json_of(request(Some(ADMIN)).await.unwrap()).await;
        // Cancel and retry answer for the state the job is in; the token passed.
        assert!(
            status.is_success() || error["code"] == "INVALID_ARGUMENT",
            "{method} {path} with an admin token: {status} {error}"
        );
    }
    // A token in the wrong place is no token.
    let wrong_header = client().get(server.url("/api/jobs")).header("X-Api-Key", READ).send().await.unwrap();
    assert_eq!(wrong_header.status(), StatusCode::UNAUTHORIZED);
    let wrong_scheme = client().get(server.url("/api/jobs")).header("Authorization", format!("Token {READ}")).send();
    let (status, error) = json_of(wrong_scheme.await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error["message"].as_str().unwrap().contains("Bearer"), "{error}");
    let openapi = client().get(server.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(openapi.status(), StatusCode::OK, "the API's description needs no token");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_can_be_public_and_health_says_why_it_is_degraded() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start_with(&q, |b| b.public_health(true).public_metrics(true)).await;
    let (status, health) = json_of(client().get(server.url("/api/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "degraded", "no worker is alive: {health}");
    assert!(health["reasons"][0].as_str().unwrap().contains("worker"), "{health}");
    let w = worker(&q).await;
    // A report is shared for a second: the worker shows up in a later one.
    let health = within("a report that sees the worker", async {
        loop {
            let (_, health) = json_of(client().get(server.url("/api/health")).send().await.unwrap()).await;
            if health["status"] != "degraded" {
                break health;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(health["status"], "healthy", "{health}");
    let database = health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "database").unwrap().clone();
    assert!(database["latency_ms"].as_f64().is_some());
    let metrics = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rustyray_service_requests_total"), "{metrics}");
    assert!(metrics.contains("rustyray_queue"), "the queue's metrics come first: {metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"));
    assert_eq!(metrics.matches("# EOF").count(), 1);
    w.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_with_its_code_and_writes_nothing() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start_with(&q, |b| b.known_queues(["default", "io"]).body_limit(4096)).await;
        let post = |body: reqwest::Body, content_type: &'static str| {
            client()
                .post(server.url("/api/jobs"))
                .bearer_auth(ADMIN)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let cases: Vec<(reqwest::Body, &str, StatusCode, &str, &str)> = vec![
            ("{not json".into(), "application/json", StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "body"),
            (
                r#"{"function": "x"}"#.into(),
                "text/plain",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "INVALID_ARGUMENT",
                "Content-Type",
            ),
            (
                format!(r#"{{"function": "{}", "args": ["{}"]}}"#, add::NAME, "x".repeat(8192)).into(),
                "application/json",
                StatusCode::PAYLOAD_TOO_LARGE,
                "RESOURCE_EXHAUSTED",
                "body",
            ),
            (
                r#"{"function": "nope::missing", "args": []}"#.into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "function",
            ),
            (
                format!(r#"{{"function": "{}", "args": ["two", 3]}}"#, add::NAME).into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "args",
            ),
            (
                format!(r#"{{"function": "{}", "args": [1, 2], "options": {{"priority": 101}}}}"#, add::NAME).into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "options.priority",
            ),
            (
                // Past what a time column holds: the database would refuse it (a 503).
                format!(
                    r#"{{"function": "{}", "args": [1, 2], "options": {{"run_after_ms": 10000000000000000}}}}"#,
                    add::NAME
                )
                .into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "options.run_after_ms",
            ),
            (
                format!(
                    r#"{{"function": "{}", "args": [1, 2], "options": {{"backoff_ms": [1, 10000000000000000]}}}}"#,
                    add::NAME
                )
                .into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "options.backoff_ms",
            ),
            (
                format!(r#"{{"function": "{}", "args": [1, 2], "options": {{"name": "a\u0000b"}}}}"#, add::NAME).into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "options.name",
            ),
            (
                // A name is a label, not a payload: it is in every listing row.
                format!(
                    r#"{{"function": "{}", "args": [1, 2], "options": {{"name": "{}"}}}}"#,
                    add::NAME,
                    "n".repeat(1025)
                )
                .into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "options.name",
            ),
            (
                format!(r#"{{"function": "{}", "args": [1, 2], "options": {{"queue": "elsewhere"}}}}"#, add::NAME)
                    .into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "options.queue",
            ),
            (
                format!(r#"{{"function": "{}", "args": [1, 2], "surprise": true}}"#, add::NAME).into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "surprise",
            ),
        ];
        for (body, content_type, status, code, names) in cases {
            let (got, error) = json_of(post(body, content_type).await.unwrap()).await;
            assert_eq!((got, error["code"].as_str()), (status, Some(code)), "{}: {error}", db.label);
            assert!(error["message"].as_str().unwrap().contains(names), "the message names `{names}`: {error}");
        }
        for (path, names) in [
            ("/api/jobs/not-a-uuid", "id"),
            ("/api/jobs/%FF", "path"),
            ("/api/jobs?limit=abc", "limit"),
            ("/api/jobs?limit=5000", "limit"),
            ("/api/jobs?state=DONE", "state"),
            ("/api/jobs?cursor=AAAA%27--", "cursor"),
            ("/api/jobs?colour=blue", "colour"),
            ("/api/events?after=-4", "after"),
        ] {
            let (status, error) = get(&server, path).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("INVALID_ARGUMENT")),
                "{path}: {error}"
            );
            assert!(error["message"].as_str().unwrap().contains(names), "{path}: {error}");
        }
        for resume in ["-4", "x"] {
            let response =
                client().get(server.url("/api/events")).bearer_auth(READ).header("Last-Event-ID", resume).send().await;
            let (status, error) = json_of(response.unwrap()).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("INVALID_ARGUMENT")),
                "Last-Event-ID {resume}: {error}"
            );
            assert!(error["message"].as_str().unwrap().contains("Last-Event-ID"), "{error}");
        }
        let (status, error) = get(&server, &format!("/api/jobs/{}", uuid::Uuid::now_v7())).await;
        assert_eq!((status, error["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
        let (status, error) = get(&server, "/api/nothing-here").await;
        assert_eq!((status, error["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
        let delete = client().delete(server.url("/api/jobs")).bearer_auth(ADMIN).send().await.unwrap();
        let (status, error) = json_of(delete).await;
        assert_eq!((status, error["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("INVALID_ARGUMENT")));
        assert_eq!(q.stats().await.unwrap().by_state.values().sum::<u64>(), 0, "{}: nothing was written", db.label);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_unavailable_not_a_500() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let (_, job) = json_of(submit(&server, json!({"function": add::NAME, "args": [1, 1]})).await).await;
        let id = job["id"].as_str().unwrap().to_string();
        // The tables vanish under the service, as when its database is replaced or broken.
        if db.label == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query("DROP TABLE rustyray_attempts").execute(&pool).await.unwrap();
            sqlx::query("DROP TABLE rustyray_jobs").execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query("DROP TABLE rustyray_attempts, rustyray_jobs CASCADE").execute(&pool).await.unwrap();
        }
        for path in [format!("/api/jobs/{id}"), "/api/jobs".to_string(), "/api/stats".to_string()] {
            let (status, error) = get(&server, &path).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, Some("UNAVAILABLE")),
                "{path}: {error}"
            );
            assert!(!error["message"].as_str().unwrap().contains("panicked"));
        }
        server.stop().await;
    }
}

/// Reads server-sent events until `count` have come; returns (id, kind, data).
async fn read_events(response: reqwest::Response, count: usize) -> Vec<(i64, String, Value)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = stream.next().await.expect("the stream stays open").expect("bytes");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                events.push((id, kind, data));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_every_transition_and_resume_after_last_event_id() {
    for db in backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let stream = client().get(server.url("/api/events")).bearer_auth(READ).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let (_, job) = json_of(submit(&server, json!({"function": add::NAME, "args": [4, 4]})).await).await;
        let id = job["id"].as_str().unwrap().to_string();
        let w = worker(&q).await;
        let events = within("three events", read_events(stream, 3)).await;
        let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
        assert_eq!(kinds, ["submitted", "started", "succeeded"], "{}", db.label);
        assert!(events.iter().all(|(_, _, data)| data["job_id"] == id.as_str() && data["function"] == add::NAME));
        assert_eq!(events[2].2["state"], "SUCCEEDED");
        assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
        // A client that saw only the first event resumes after it.
        let resumed = client()
            .get(server.url(&format!("/api/events?job={id}")))
            .bearer_auth(READ)
            .header("Last-Event-ID", events[0].0.to_string())
            .send()
            .await
            .unwrap();
        let replay = within("replay", read_events(resumed, 2)).await;
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), vec![events[1].0, events[2].0], "{}", db.label);
        w.shutdown().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_its_errors() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let (status, doc) = json_of(client().get(server.url("/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/cancel",
        "/api/jobs/{id}/retry",
        "/api/active",
        "/api/stats",
        "/api/health",
        "/api/events",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["paths"]["/api/jobs"]["post"]["responses"]["400"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_their_limit_are_429_until_one_closes() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start_with(&q, |b| b.max_watchers(1)).await;
    let open = || client().get(server.url("/api/events")).bearer_auth(READ).send();
    let first = open().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, error) = json_of(open().await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("RESOURCE_EXHAUSTED")),
        "a second stream past the limit of one: {error}"
    );
    drop(first);
    let reopened = within("a place comes free", async {
        loop {
            let response = open().await.unwrap();
            if response.status() == StatusCode::OK {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(reopened);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_mounted_in_an_application_ends_its_event_streams_on_close() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let tokens = rustyray::service::Tokens::new().with(READ, rustyray::service::Role::Read);
    let service = rustyray::service::Service::builder(&q).tokens(tokens).build().await.expect("a service");
    let app = axum::Router::new().merge(service.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closing = service.clone();
    let served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                closing.close();
            })
            .await
    });
    // A watcher of everything, and one of a job that has no events (it is
    // never sent anything): neither may hold the shutdown open.
    let open = client().get(format!("{base}/api/events")).bearer_auth(READ).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let job = rustyray::queue::JobId::new();
    let behind = client().get(format!("{base}/api/events?after=0&job={job}")).bearer_auth(READ).send().await.unwrap();
    assert_eq!(behind.status(), StatusCode::OK);
    stop.send(()).unwrap();
    within("the application's graceful shutdown", served).await.unwrap().expect("served");
    // The streams ended rather than being cut mid-way.
    for stream in [open, behind] {
        let rest = within("a stream's end", stream.bytes()).await;
        assert!(rest.is_ok(), "{rest:?}");
    }
}

/// A health check that counts its runs and answers when let go.
struct Gate {
    runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    open: std::sync::Arc<tokio::sync::Notify>,
}

impl rustyray::service::Check for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn check(&self) -> futures::future::BoxFuture<'_, Result<String, String>> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            self.open.notified().await;
            Ok("open".into())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_asked_by_many_at_once_runs_one_report() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let open = std::sync::Arc::new(tokio::sync::Notify::new());
    let gate = Gate { runs: runs.clone(), open: open.clone() };
    let server = Server::start_with(&q, |b| b.public_health(true).check(gate)).await;
    let url = server.url("/api/health");
    let asks: Vec<_> = (0..20).map(|_| tokio::spawn(client().get(url.clone()).send())).collect();
    within("the report to begin", async {
        while runs.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Let the other requests reach the report in progress, then let it end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    open.notify_one();
    for ask in asks {
        let (status, health) = json_of(ask.await.unwrap().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{health}");
        assert!(health["checks"].as_array().unwrap().iter().any(|c| c["name"] == "gate" && c["ok"] == true));
    }
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1, "twenty asked while one report ran");
    server.stop().await;
}
