//! The admin page in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, with fantoccini). Sign in, filter the list,
//! open a failed job and read its backtrace, retry it and watch it turn
//! SUCCEEDED without a reload, watch the list follow a job and show a new
//! one, cancel a running job, retry from the list in bulk, see a forged
//! POST refused, and see a read token get no action buttons. Screenshots of
//! the list (laptop and phone widths) and of the failed job's page are
//! saved under `target/admin-screenshots/`.
//!
//! `RUSTYRAY_TEST_BROWSER` names the Chromium binary (Debian:
//! `/usr/bin/chromium`); `RUSTYRAY_TEST_CHROMEDRIVER` names chromedriver,
//! by default the `chromedriver` beside the browser or on the `PATH`.
//! Without `RUSTYRAY_TEST_BROWSER` the test says it skips, and passes.

#![cfg(unix)]

mod queue;
mod service;

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures::future::BoxFuture;
use queue::{sqlite, within};
use rustyray::queue::{Attempt, JobId, JobOptions, JobState, Outcome, Queue, Runner, Worker, run_local};
use serde_json::json;
use service::{ADMIN, READ, Server};

/// Keys whose first run has failed.
static FAILED_ONCE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
/// Keys whose gated runs may finish.
static GATE: LazyLock<tokio::sync::watch::Sender<HashSet<String>>> =
    LazyLock::new(|| tokio::sync::watch::Sender::new(HashSet::new()));

fn open_gate(key: &str) {
    GATE.send_modify(|open| {
        open.insert(key.to_string());
    });
}

/// Fails on its first run for `key` (a panic, with HTML in its message),
/// then waits for `key`'s gate and succeeds.
#[rustyray::remote]
async fn flaky(key: String) -> String {
    let first = FAILED_ONCE.lock().unwrap().insert(key.clone());
    if first {
        panic!("first run of {key} fails: <script>alert('boom')</script>");
    }
    let _ = GATE.subscribe().wait_for(|open| open.contains(&key)).await;
    format!("{key} done")
}

/// Waits for `key`'s gate.
#[rustyray::remote]
async fn gated(key: String) -> String {
    let _ = GATE.subscribe().wait_for(|open| open.contains(&key)).await;
    key
}

#[rustyray::remote]
async fn nap(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[rustyray::remote]
fn broken(why: String) -> Result<u32, String> {
    Err(why)
}

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Runs attempts in this process; a failure that carries no backtrace gets
/// one, as when the body runs with `RUST_BACKTRACE=1` (set here in the
/// runner rather than in the test process's environment).
#[derive(Debug)]
struct WithBacktraces(rustyray::Runtime);

impl Runner for WithBacktraces {
    fn name(&self) -> &'static str {
        "local"
    }

    fn outcomes_written_by_worker(&self) -> bool {
        true
    }

    fn run(&self, attempt: Attempt) -> BoxFuture<'static, Outcome> {
        let run = run_local(self.0.clone(), attempt);
        Box::pin(async move {
            match run.await {
                Outcome::Failed { class, message, backtrace: None } => {
                    let backtrace = std::backtrace::Backtrace::force_capture().to_string();
                    Outcome::Failed { class, message, backtrace: Some(backtrace) }
                }
                other => other,
            }
        })
    }
}

/// chromedriver in a process group of its own, stopped with the browsers
/// it started when dropped (also when the test fails).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    client: Client,
    _driver: Driver,
}

impl Browser {
    /// Chromium under chromedriver, when the environment names it.
    async fn from_env() -> Option<Browser> {
        let Some(binary) = std::env::var_os("RUSTYRAY_TEST_BROWSER").filter(|b| !b.is_empty()) else {
            eprintln!("RUSTYRAY_TEST_BROWSER is not set: SKIPPING the admin page's browser test");
            return None;
        };
        let binary = PathBuf::from(binary);
        let driver = match std::env::var_os("RUSTYRAY_TEST_CHROMEDRIVER").filter(|d| !d.is_empty()) {
            Some(driver) => PathBuf::from(driver),
            None => {
                let beside = binary.parent().map(|dir| dir.join("chromedriver"));
                beside.filter(|path| path.exists()).unwrap_or_else(|| PathBuf::from("chromedriver"))
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", driver.display()));
        let driver = Driver(child);
        within("chromedriver to listen", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver starts a Chromium session");
        Some(Browser { client, _driver: driver })
    }
}

/// Waits until `check` holds, polling, for at most a minute.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

async fn text_of(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.ok(),
        Err(_) => None,
    }
}

async fn wait_text(c: &Client, css: &str, wanted: &str) {
    until(&format!("`{css}` to read `{wanted}`"), || async {
        text_of(c, css).await.is_some_and(|text| text.contains(wanted))
    })
    .await;
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect(css);
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.map_or(0, |found| found.len())
}

async fn path_and_query(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

/// Marks the page; the mark survives until the next page load.
async fn mark(c: &Client) {
    c.execute("window.__stayed = true; return true;", vec![]).await.unwrap();
}

async fn still_marked(c: &Client) -> bool {
    c.execute("return window.__stayed === true;", vec![]).await.unwrap() == json!(true)
}

async fn sign_in(c: &Client, server: &Server, token: &str) {
    c.goto(&server.url("/admin")).await.unwrap();
    until("the sign-in page", || async { path_and_query(c).await.starts_with("/admin/login") }).await;
    c.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    click(c, "main form button[type=submit]").await;
    wait_text(c, "h1", "Jobs").await;
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("admin-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let path = screenshots().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("saved {}", path.display());
}

async fn wait_state(q: &Queue, id: JobId, state: JobState) {
    until(&format!("job {id} to be {state}"), || async { q.state(id).await.unwrap() == state }).await;
}

/// Submits `form` to `action` from the page, as another site's page would
/// try to: without the session's form token, or with a made-up one.
async fn forge(c: &Client, action: &str, csrf: Option<&str>) {
    let script = "const [action, csrf] = arguments; const form = document.createElement('form'); \
        form.method = 'post'; form.action = action; \
        const add = (name, value) => { const i = document.createElement('input'); i.type = 'hidden'; \
        i.name = name; i.value = value; form.appendChild(i); }; \
        add('confirmed', 'yes'); if (csrf !== null) { add('csrf', csrf); } \
        document.body.appendChild(form); form.submit(); return true;";
    c.execute(script, vec![json!(action), json!(csrf)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_page_in_a_real_browser() {
    let Some(browser) = Browser::from_env().await else { return };
    let c = &browser.client;
    let db = sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let runtime = rustyray::Runtime::builder().num_cpus(2).build().unwrap();
    let worker = Worker::builder(&q)
        .queues(["default", "io"])
        .concurrency(4)
        .heartbeat(Duration::from_millis(100))
        .runner(WithBacktraces(runtime))
        .start()
        .await
        .unwrap();

    // A few finished jobs, one failed for good, one that fails once, one running.
    for (i, name) in ["resize thumbnails", "send digest", "<b>bold</b> name"].into_iter().enumerate() {
        let id = q.enqueue_by_name(add::NAME, json!([i, 1]), JobOptions::default().name(name)).await.unwrap();
        wait_state(&q, id, JobState::Succeeded).await;
    }
    let hopeless = q
        .enqueue_by_name(broken::NAME, json!(["disk full"]), JobOptions::default().name("hopeless").queue("io"))
        .await
        .unwrap();
    let recorded = JobOptions { record_args: true, ..JobOptions::default() }.name("import report").queue("io");
    let failing = q.enqueue_by_name(flaky::NAME, json!(["import"]), recorded).await.unwrap();
    let running = q.enqueue_by_name(nap::NAME, json!([600_000]), JobOptions::default().name("long nap")).await.unwrap();
    wait_state(&q, hopeless, JobState::Failed).await;
    wait_state(&q, failing, JobState::Failed).await;
    wait_state(&q, running, JobState::Running).await;

    // Sign in: the list, with counts and health at the top.
    c.set_window_size(1280, 1000).await.unwrap();
    sign_in(c, &server, ADMIN).await;
    wait_text(c, "a.count.state-failed .n", "2").await;
    wait_text(c, "#live-status", "Live:").await;
    assert_eq!(count(c, "#job-rows tr").await, 6);
    screenshot(c, "list.png").await;
    c.set_window_size(390, 844).await.unwrap();
    screenshot(c, "list-phone.png").await;
    let wide = "return document.documentElement.scrollWidth > document.documentElement.clientWidth;";
    assert_eq!(c.execute(wide, vec![]).await.unwrap(), json!(false), "nothing runs off a phone's screen");
    c.execute("document.getElementById('bulk').scrollIntoView();", vec![]).await.unwrap();
    screenshot(c, "list-phone-rows.png").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Filter: FAILED jobs of queue io.
    c.find(Locator::Css("#f-state")).await.unwrap().select_by_value("FAILED").await.unwrap();
    c.find(Locator::Css("#f-queue")).await.unwrap().send_keys("io").await.unwrap();
    click(c, "form.filters button[type=submit]").await;
    until("the filtered list", || async { path_and_query(c).await.contains("state=FAILED") }).await;
    assert!(path_and_query(c).await.contains("queue=io"));
    assert_eq!(count(c, "#job-rows tr").await, 2);
    assert_eq!(count(c, &format!("#job-rows tr[data-job='{failing}']")).await, 1);
    // A filter with a wrong value is named, not ignored.
    c.goto(&server.url("/admin?state=FINISHED")).await.unwrap();
    wait_text(c, "#filter-problems", "state: `FINISHED` is not a state").await;
    c.back().await.unwrap();

    // The failed job: its error, escaped, and its backtrace behind a click.
    click(c, &format!("#job-rows tr[data-job='{failing}'] td.job a")).await;
    wait_text(c, "#job-state", "FAILED").await;
    let message = text_of(c, "#attempt-1 .error-message").await.unwrap();
    assert!(message.contains("<script>alert('boom')</script>"), "shown as text: {message}");
    assert!(c.get_alert_text().await.is_err(), "and never run");
    assert!(!c.find(Locator::Css("#attempt-1 details.trace pre")).await.unwrap().is_displayed().await.unwrap());
    click(c, "#attempt-1 details.trace summary").await;
    let trace = c.find(Locator::Css("#attempt-1 details.trace pre")).await.unwrap();
    assert!(trace.is_displayed().await.unwrap());
    assert!(trace.text().await.unwrap().lines().count() > 3);
    let font = trace.css_value("font-family").await.unwrap();
    assert!(font.contains("mono"), "{font}");
    assert!(text_of(c, "#args").await.unwrap().contains("import"), "an admin sees recorded arguments");
    // Tall enough to show the page from its title down to the backtrace.
    c.set_window_size(1280, 1700).await.unwrap();
    c.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
    screenshot(c, "failed-job.png").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Retry, confirm, and watch it succeed without a reload.
    click(c, "#retry").await;
    wait_text(c, "h1", "Retry this job?").await;
    click(c, "#confirm").await;
    wait_text(c, "#flash", "queued again").await;
    mark(c).await;
    wait_state(&q, failing, JobState::Running).await;
    open_gate("import");
    wait_text(c, "#job-state", "SUCCEEDED").await;
    assert!(still_marked(c).await, "the page changed in place");
    wait_text(c, "#result", "import done").await;
    assert_eq!(count(c, "#attempt-2").await, 1);

    // The list follows a job, and shows a new one, in place.
    let follow = q.enqueue_by_name(gated::NAME, json!(["list"]), JobOptions::default().name("gated")).await.unwrap();
    wait_state(&q, follow, JobState::Running).await;
    c.goto(&server.url("/admin")).await.unwrap();
    wait_text(c, &format!("tr[data-job='{follow}'] [data-field=state]"), "RUNNING").await;
    wait_text(c, "#live-status", "Live:").await;
    mark(c).await;
    open_gate("list");
    wait_text(c, &format!("tr[data-job='{follow}'] [data-field=state]"), "SUCCEEDED").await;
    let fresh = q.enqueue_by_name(add::NAME, json!([20, 22]), JobOptions::default()).await.unwrap();
    wait_text(c, &format!("tr[data-job='{fresh}'] [data-field=state]"), "SUCCEEDED").await;
    assert!(still_marked(c).await, "the list changed in place");

    // Cancel the running job from its page.
    c.goto(&server.url(&format!("/admin/jobs/{running}"))).await.unwrap();
    wait_text(c, "#job-state", "RUNNING").await;
    click(c, "#cancel").await;
    wait_text(c, "h1", "Cancel this job?").await;
    click(c, "#confirm").await;
    wait_text(c, "#job-state", "CANCELLED").await;
    wait_state(&q, running, JobState::Cancelled).await;

    // A forged POST, without the form token or with a made-up one, is refused.
    let retry_path = format!("/admin/jobs/{hopeless}/retry");
    for csrf in [None, Some("made-up-token")] {
        c.goto(&server.url(&format!("/admin/jobs/{hopeless}"))).await.unwrap();
        wait_text(c, "#job-state", "FAILED").await;
        forge(c, &retry_path, csrf).await;
        wait_text(c, "h1", "Request refused").await;
    }
    assert_eq!(q.state(hopeless).await.unwrap(), JobState::Failed);

    // Bulk: tick the failed job on the list, retry the selection.
    c.goto(&server.url("/admin?state=FAILED")).await.unwrap();
    click(c, &format!("#job-rows tr[data-job='{hopeless}'] input[type=checkbox]")).await;
    click(c, "button[value=retry]").await;
    wait_text(c, "h1", "Retry 1 job(s)?").await;
    click(c, "#confirm").await;
    wait_text(c, "#flash", "Retried 1 of 1 job(s).").await;
    wait_state(&q, hopeless, JobState::Failed).await;

    // A read token: the same pages, no action buttons, and actions refused.
    click(c, ".who button").await;
    until("signed out", || async { path_and_query(c).await.starts_with("/admin/login") }).await;
    sign_in(c, &server, READ).await;
    assert_eq!(count(c, "#job-rows input[type=checkbox]").await, 0);
    assert_eq!(count(c, "#bulk button").await, 0);
    c.goto(&server.url(&format!("/admin/jobs/{hopeless}"))).await.unwrap();
    wait_text(c, "#job-state", "FAILED").await;
    assert_eq!(count(c, "#retry").await + count(c, "#cancel").await + count(c, ".actions").await, 0);
    wait_text(c, "#args-redacted", "Redacted").await;
    c.goto(&server.url(&format!("/admin/jobs/{failing}"))).await.unwrap();
    wait_text(c, "#args-redacted", "admins only").await;
    let own = c
        .execute("return document.querySelector('input[name=csrf]').value;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    forge(c, &retry_path, Some(&own)).await;
    wait_text(c, "h1", "Not allowed").await;
    assert_eq!(q.state(hopeless).await.unwrap(), JobState::Failed);

    browser.client.clone().close().await.unwrap();
    worker.shutdown().await;
    server.stop().await;
}
