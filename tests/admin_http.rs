//! The admin page over plain HTTP, as a browser would speak to it but
//! without one: sign-in and the session cookie, expired and forged
//! sessions, the CSRF checks on every action, a read session refused the
//! actions, HTML in names, arguments and errors escaped, unknown jobs and
//! pages, filters with wrong values, and the live event stream's auth.

mod queue;
mod service;

use std::time::Duration;

use futures::StreamExt;
use queue::{sqlite, within};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use rustyray::queue::{JobId, JobOptions, JobState, Queue, Worker};
use serde_json::json;
use service::{ADMIN, READ, Server};

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
fn refuse(why: String) -> Result<i64, String> {
    Err(why)
}

const SCRIPT: &str = "<script>alert('x')</script>";

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let escape = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
}

/// Signs in with `token`; returns the `Cookie` header to send.
async fn sign_in(server: &Server, token: &str) -> String {
    let response = post_form(server, "/admin/login", None, &[("token", token), ("next", "/admin")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

async fn post_form(server: &Server, path: &str, cookie: Option<&str>, pairs: &[(&str, &str)]) -> reqwest::Response {
    let mut request = browser()
        .post(server.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, server.base.as_str())
        .body(encode(pairs));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

async fn page(server: &Server, path: &str, cookie: &str) -> (StatusCode, String) {
    let response = browser().get(server.url(path)).header(COOKIE, cookie).send().await.unwrap();
    let status = response.status();
    if status.is_success() || status.is_client_error() {
        let kind = response.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
    }
    (status, response.text().await.unwrap())
}

/// The session's form token, as its pages carry it.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form token on the page") + 19;
    html[start..].split('"').next().unwrap().to_string()
}

async fn wait_state(q: &Queue, id: JobId, state: JobState) {
    within("the job's state", async {
        while q.state(id).await.unwrap() != state {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_opens_a_session_and_bad_sessions_go_back_to_sign_in() {
    let db = sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;

    let response = browser().get(server.url("/admin?state=FAILED")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin/login?next=%2Fadmin%3Fstate%3DFAILED");
    let form = browser().get(server.url("/admin/login?next=/admin")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.text().await.unwrap().contains("type=\"password\""));

    let wrong = post_form(&server, "/admin/login", None, &[("token", "not-a-token-of-this-service")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("not one this service knows"));

    let response =
        post_form(&server, "/admin/login", None, &[("token", ADMIN), ("next", "https://evil.example/")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin", "no redirect off the admin pages");
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(!set.contains(ADMIN), "the cookie holds a session id, never the token");
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, html) = page(&server, "/admin", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Signed in with a <strong class=\"role\">admin</strong> token"), "{html}");

    // The session opens the pages, never the API.
    let api = browser().get(server.url("/api/jobs")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

    // A session the service does not know goes back to sign-in.
    let forged = format!("rustyray_admin={}", "ab".repeat(32));
    let response = browser().get(server.url("/admin")).header(COOKIE, forged).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()[LOCATION].to_str().unwrap().starts_with("/admin/login"));

    // Signing out ends the session.
    let csrf = csrf_of(&html);
    let out = post_form(&server, "/admin/logout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, _) = page(&server, "/admin", &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    server.stop().await;

    // A session past its lifetime does too.
    let server = Server::start_with(&q, |b| b.admin_session_ttl(Duration::from_millis(1))).await;
    let cookie = sign_in(&server, READ).await;
    within("the session to expire", async {
        while page(&server, "/admin", &cookie).await.0 != StatusCode::SEE_OTHER {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_an_admin_session_its_form_token_and_this_site() {
    let db = sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let id = q.enqueue_by_name(add::NAME, json!([1, 2]), JobOptions::default().name("waiting")).await.unwrap();
    let path = format!("/admin/jobs/{id}");
    let cancel = format!("{path}/cancel");

    let admin = sign_in(&server, ADMIN).await;
    let (status, html) = page(&server, &path, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Cancel job…"), "{html}");
    let csrf = csrf_of(&html);

    // Forged: no token, a wrong one, the right one from another site.
    for form in [vec![("confirmed", "yes")], vec![("confirmed", "yes"), ("csrf", "0123456789abcdef")]] {
        let response = post_form(&server, &cancel, Some(&admin), &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.text().await.unwrap().contains("The form was refused"));
    }
    let cross = browser()
        .post(server.url(&cancel))
        .header(COOKIE, &admin)
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", &csrf), ("confirmed", "yes")]))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // Without a session, back to sign-in.
    let anonymous = post_form(&server, &cancel, None, &[("csrf", &csrf), ("confirmed", "yes")]).await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(q.state(id).await.unwrap(), JobState::Queued, "nothing refused changed the job");

    // The first POST asks; the confirmed one acts and says so.
    let ask = post_form(&server, &cancel, Some(&admin), &[("csrf", &csrf)]).await;
    assert_eq!(ask.status(), StatusCode::OK);
    assert!(ask.text().await.unwrap().contains("Cancel this job?"));
    assert_eq!(q.state(id).await.unwrap(), JobState::Queued);
    let done = post_form(&server, &cancel, Some(&admin), &[("csrf", &csrf), ("confirmed", "yes")]).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION].to_str().unwrap(), path);
    assert_eq!(q.state(id).await.unwrap(), JobState::Cancelled);
    let (_, html) = page(&server, &path, &admin).await;
    assert!(html.contains("now CANCELLED"), "the result is shown: {html}");
    assert!(html.contains("Retry…"));

    // A read session sees no actions, and its own valid form token does not help.
    let read = sign_in(&server, READ).await;
    let (_, html) = page(&server, &path, &read).await;
    assert!(!html.contains("Retry…") && !html.contains("/retry\""), "{html}");
    let (_, list) = page(&server, "/admin", &read).await;
    assert!(!list.contains("name=\"id\"") && !list.contains("Retry selected"), "{list}");
    let read_csrf = csrf_of(&html);
    let refused =
        post_form(&server, &format!("{path}/retry"), Some(&read), &[("csrf", &read_csrf), ("confirmed", "yes")]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("needs an admin token"));
    let bulk = post_form(
        &server,
        "/admin/bulk",
        Some(&read),
        &[("csrf", &read_csrf), ("action", "retry"), ("id", &id.to_string()), ("confirmed", "yes")],
    )
    .await;
    assert_eq!(bulk.status(), StatusCode::FORBIDDEN);
    assert_eq!(q.state(id).await.unwrap(), JobState::Cancelled);

    // Bulk: nothing ticked is said so; ticked jobs are retried, the rest named.
    let (_, list) = page(&server, "/admin", &admin).await;
    assert!(list.contains("Retry selected"));
    let none =
        post_form(&server, "/admin/bulk", Some(&admin), &[("csrf", &csrf), ("action", "retry"), ("back", "/admin")])
            .await;
    assert_eq!(none.status(), StatusCode::SEE_OTHER);
    let (_, list) = page(&server, "/admin", &admin).await;
    assert!(list.contains("No job was selected"), "{list}");
    let other = q.enqueue_by_name(add::NAME, json!([3, 4]), JobOptions::default()).await.unwrap();
    let (ids, others) = (id.to_string(), other.to_string());
    let ask = post_form(
        &server,
        "/admin/bulk",
        Some(&admin),
        &[("csrf", &csrf), ("action", "retry"), ("id", &ids), ("id", &others), ("back", "/admin?state=CANCELLED")],
    )
    .await;
    assert_eq!(ask.status(), StatusCode::OK);
    assert!(ask.text().await.unwrap().contains("Retry 2 job(s)?"));
    let done = post_form(
        &server,
        "/admin/bulk",
        Some(&admin),
        &[
            ("csrf", &csrf),
            ("action", "retry"),
            ("id", &ids),
            ("id", &others),
            ("back", "/admin?state=CANCELLED"),
            ("confirmed", "yes"),
        ],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/admin?state=CANCELLED");
    assert_eq!(q.state(id).await.unwrap(), JobState::Queued);
    let (_, list) = page(&server, "/admin", &admin).await;
    assert!(list.contains("Retried 1 of 2 job(s). Not changed:"), "{list}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_page_and_html_is_never_run() {
    let db = sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let admin = sign_in(&server, ADMIN).await;
    let read = sign_in(&server, READ).await;

    for path in [format!("/admin/jobs/{}", JobId::new()), "/admin/jobs/not-a-job".into(), "/admin/nothing-here".into()]
    {
        let (status, html) = page(&server, &path, &admin).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("<h1>Not found</h1>") && html.contains("Back to the job list"), "{html}");
    }

    let (status, html) = page(&server, "/admin?state=DONE&limit=7&from=yesterday&q=x", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("These filters were not understood"), "{html}");
    assert!(html.contains("state: `DONE` is not a state"));
    assert!(html.contains("limit: `7` is not a page size"));
    assert!(html.contains("from: `yesterday` is not a date"));
    assert!(html.contains("name=\"q\" value=\"x\""), "the form keeps what was typed");
    let (status, html) = page(&server, &format!("/admin?state=%3Cscript%3E{}", "x".repeat(300)), &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!html.contains("<script>x"), "{html}");

    // HTML in a name, in recorded arguments and in an error is shown as text.
    let recorded = JobOptions { record_args: true, ..JobOptions::default() }.name(SCRIPT).max_retries(0);
    let id = q
        .enqueue_by_name(refuse::NAME, json!([format!("{SCRIPT}<img src=x onerror=alert(1)>")]), recorded)
        .await
        .unwrap();
    let quiet = q.enqueue_by_name(add::NAME, json!([1, 1]), JobOptions::default()).await.unwrap();
    let worker = Worker::builder(&q).concurrency(2).start().await.unwrap();
    wait_state(&q, id, JobState::Failed).await;
    wait_state(&q, quiet, JobState::Succeeded).await;
    let escaped = "&lt;script&gt;alert('x')&lt;/script&gt;";
    for path in ["/admin".to_string(), format!("/admin/jobs/{id}")] {
        let (status, html) = page(&server, &path, &admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("<script>alert") && !html.contains("<img src=x"), "{path}: {html}");
        assert!(html.contains(escaped), "{path}: {html}");
    }
    let (_, html) = page(&server, &format!("/admin/jobs/{id}"), &admin).await;
    let args = html.find("id=\"args\"").expect("an admin sees recorded arguments");
    assert!(html[args..].contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
    assert!(html.contains("FAILED") && html.contains("error-message"), "{html}");
    let (_, html) = page(&server, &format!("/admin/jobs/{id}"), &read).await;
    assert!(html.contains("Hidden: arguments are shown to admins only") && !html.contains("id=\"args\""), "{html}");
    let (_, html) = page(&server, &format!("/admin/jobs/{quiet}"), &admin).await;
    assert!(html.contains("Redacted: this job's function does not record its arguments"), "{html}");

    // Filters select: by state, by text in the name, by time range.
    let (_, html) = page(&server, "/admin?state=FAILED", &admin).await;
    assert!(html.contains(&format!("data-job=\"{id}\"")) && !html.contains(&format!("data-job=\"{quiet}\"")));
    let (_, html) = page(&server, "/admin?q=%3Cscript", &admin).await;
    assert!(html.contains(&format!("data-job=\"{id}\"")) && !html.contains(&format!("data-job=\"{quiet}\"")));
    let (_, html) = page(&server, "/admin?to=2000-01-01T00%3A00", &admin).await;
    assert!(html.contains("No jobs match."), "{html}");
    worker.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_event_stream_needs_a_session_and_carries_no_arguments() {
    let db = sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let anonymous = browser().get(server.url("/admin/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let cookie = sign_in(&server, ADMIN).await;
    let response = browser().get(server.url("/admin/events?after=0")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let recorded = JobOptions { record_args: true, ..JobOptions::default() };
    let id = q.enqueue_by_name(add::NAME, json!([40, 2]), recorded).await.unwrap();
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    within("the submitted event", async {
        while !text.contains(&id.to_string()) {
            let chunk = stream.next().await.expect("the stream goes on").unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(text.contains("event: submitted"), "{text}");
    assert!(!text.contains("\"args\"") && !text.contains("[40,2]"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_speaking_http2_signs_in_and_acts() {
    // HTTP/2 names the host in the request's authority, not in a `Host`
    // header: the same-origin check must still find it (a proxy in front
    // often speaks HTTP/2 to the service, which gRPC needs anyway).
    let db = sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let id = q.enqueue_by_name(add::NAME, json!([1, 2]), JobOptions::default()).await.unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let post = |path: String, cookie: Option<String>, body: String| {
        let mut request = h2
            .post(server.url(&path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ORIGIN, server.base.as_str())
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send()
    };
    let signed = post("/admin/login".into(), None, encode(&[("token", ADMIN), ("next", "/admin")])).await.unwrap();
    assert_eq!(signed.version(), reqwest::Version::HTTP_2);
    assert_eq!(signed.status(), StatusCode::SEE_OTHER, "{}", signed.text().await.unwrap());
    let cookie = signed.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let path = format!("/admin/jobs/{id}");
    let html = h2.get(server.url(&path)).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    let form = encode(&[("csrf", &csrf_of(&html)), ("confirmed", "yes")]);
    let done = post(format!("{path}/cancel"), Some(cookie.clone()), form.clone()).await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", done.text().await.unwrap());
    assert_eq!(q.state(id).await.unwrap(), JobState::Cancelled);
    // Another site is still refused over HTTP/2.
    let cross = h2
        .post(server.url(&format!("{path}/retry")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, "https://evil.example")
        .header(COOKIE, &cookie)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    server.stop().await;
}
