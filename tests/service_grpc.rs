//! The gRPC API with the generated tonic client against a real server:
//! submit, status, service status, active jobs, cancel, watching events,
//! the same error codes as the HTTP/JSON API, and the standard health
//! service (`grpc.health.v1`) that load balancers and probes ask.

mod queue;
mod service;

use std::time::Duration;

use queue::within;
use rustyray::queue::{Queue, Worker};
use rustyray::service::proto::job_service_client::JobServiceClient;
use rustyray::service::proto::{
    CancelRequest, GetActiveJobsRequest, GetJobStatusRequest, GetStatusRequest, SubmitOptions, SubmitRequest,
    WatchEventsRequest,
};
use service::{ADMIN, READ, Server};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

#[rustyray::remote]
fn mul(a: i64, b: i64) -> i64 {
    a * b
}

#[rustyray::remote]
async fn linger(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

async fn connect(server: &Server) -> JobServiceClient<Channel> {
    JobServiceClient::connect(server.base.clone()).await.expect("gRPC connects")
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn submit(function: &str, args: &str) -> SubmitRequest {
    SubmitRequest { function: function.into(), args_json: args.into(), options: Some(SubmitOptions::default()) }
}

/// The code and message of a call that must fail.
fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(status) => (status.code(), status.message().to_string()),
    }
}

async fn worker(q: &Queue) -> Worker {
    Worker::builder(q).concurrency(2).heartbeat(Duration::from_millis(50)).start().await.expect("worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_then_status_watch_and_service_status() {
    for db in queue::backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let mut client = connect(&server).await;
        let before = q.last_event_seq().await.unwrap();
        let submitted = client.submit(with_token(submit(mul::NAME, "[6, 7]"), ADMIN)).await.unwrap().into_inner();
        assert_eq!(submitted.state, "QUEUED");
        // A stream's headers come with its first event: the backlog after `before` is one.
        let mut events = client
            .watch_events(with_token(WatchEventsRequest { after_seq: Some(before), job_id: None }, READ))
            .await
            .unwrap()
            .into_inner();
        let w = worker(&q).await;
        let kinds = within("events", async {
            let mut kinds = Vec::new();
            while kinds.len() < 3 {
                let event = events.message().await.unwrap().expect("stream open");
                assert_eq!(event.job_id, submitted.job_id);
                kinds.push(event.kind);
            }
            kinds
        })
        .await;
        assert_eq!(kinds, ["submitted", "started", "succeeded"], "{}", db.label);
        let status = client
            .get_job_status(with_token(GetJobStatusRequest { job_id: submitted.job_id.clone() }, READ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((status.state.as_str(), status.result_json.as_deref()), ("SUCCEEDED", Some("42")));
        assert_eq!(status.attempt_list.len(), 1);
        let service = client.get_status(with_token(GetStatusRequest {}, READ)).await.unwrap().into_inner();
        assert_eq!(service.status, "healthy", "{:?}", service.reasons);
        assert_eq!(service.stats.unwrap().by_state.get("SUCCEEDED"), Some(&1));
        w.shutdown().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_jobs_and_cancel() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let mut client = connect(&server).await;
    let job = client.submit(with_token(submit(linger::NAME, "[60000]"), ADMIN)).await.unwrap().into_inner();
    let w = worker(&q).await;
    let active = within("active", async {
        loop {
            let jobs = client
                .get_active_jobs(with_token(GetActiveJobsRequest { limit: 0 }, READ))
                .await
                .unwrap()
                .into_inner()
                .jobs;
            if let Some(active) = jobs.into_iter().find(|j| j.job_id == job.job_id) {
                break active;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!((active.runner.as_str(), active.attempt), ("local", 1));
    assert_eq!(active.worker_id.as_deref(), Some(w.id()));
    let cancelled = client.cancel(with_token(CancelRequest { job_id: job.job_id.clone() }, ADMIN)).await.unwrap();
    assert!(["RUNNING", "CANCELLED"].contains(&cancelled.get_ref().state.as_str()));
    let handle = rustyray::queue::Job::<u64>::from_id(&q, job.job_id.parse().unwrap());
    assert_eq!(within("cancel", handle.wait()).await.unwrap(), rustyray::queue::JobState::Cancelled);
    w.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_same_codes_as_http() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start(&q).await;
    let mut client = connect(&server).await;
    let (c, message) = code(client.submit(tonic::Request::new(submit(mul::NAME, "[1, 2]"))).await);
    assert_eq!(c, Code::Unauthenticated, "{message}");
    let (c, _) = code(client.submit(with_token(submit(mul::NAME, "[1, 2]"), READ)).await);
    assert_eq!(c, Code::PermissionDenied);
    let (c, message) = code(client.submit(with_token(submit("nope::gone", "[]"), ADMIN)).await);
    assert!(c == Code::InvalidArgument && message.starts_with("function"), "{c:?} {message}");
    let (c, message) = code(client.submit(with_token(submit(mul::NAME, "[1, \"x\"]"), ADMIN)).await);
    assert!(c == Code::InvalidArgument && message.starts_with("args"), "{c:?} {message}");
    let (c, message) = code(client.submit(with_token(submit(mul::NAME, "{oops"), ADMIN)).await);
    assert!(c == Code::InvalidArgument && message.starts_with("args_json"), "{c:?} {message}");
    let mut bad_priority = submit(mul::NAME, "[1, 2]");
    bad_priority.options = Some(SubmitOptions { priority: 500, ..Default::default() });
    let (c, message) = code(client.submit(with_token(bad_priority, ADMIN)).await);
    assert!(c == Code::InvalidArgument && message.contains("priority"), "{c:?} {message}");
    let (c, message) =
        code(client.get_job_status(with_token(GetJobStatusRequest { job_id: "xyz".into() }, READ)).await);
    assert!(c == Code::InvalidArgument && message.starts_with("job_id"), "{c:?} {message}");
    let missing = uuid::Uuid::now_v7().to_string();
    let (c, _) = code(client.get_job_status(with_token(GetJobStatusRequest { job_id: missing.clone() }, READ)).await);
    assert_eq!(c, Code::NotFound);
    let (c, _) = code(client.cancel(with_token(CancelRequest { job_id: missing }, ADMIN)).await);
    assert_eq!(c, Code::NotFound);
    let (c, _) = code(client.get_active_jobs(with_token(GetActiveJobsRequest { limit: 5000 }, READ)).await);
    assert_eq!(c, Code::InvalidArgument);
    assert_eq!(q.stats().await.unwrap().by_state.values().sum::<u64>(), 0, "nothing was written");
    server.stop().await;
}

/// Holds SQLite's write lock from another connection, so that every write
/// of the queue waits (reads go on: the database is in WAL mode).
async fn lock_writes(db: &queue::TestDb) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("a second connection");
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.expect("the write lock");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_deadline_ends_deadline_exceeded() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start_with(&q, |b| b.request_timeout(Duration::from_millis(200))).await;
    let mut client = connect(&server).await;
    let lock = lock_writes(&db).await;
    let call = client.submit(with_token(submit(mul::NAME, "[1, 2]"), ADMIN));
    let (c, message) = code(within("the submit", call).await);
    assert_eq!(c, Code::DeadlineExceeded, "{message}");
    assert!(message.contains("Submit"), "the message names the call: {message}");
    drop(lock);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_in_flight_limit_is_refused_resource_exhausted() {
    let db = queue::sqlite();
    let q = db.queue().await;
    let server = Server::start_with(&q, |b| b.max_in_flight(1).request_timeout(Duration::from_secs(60))).await;
    let mut client = connect(&server).await;
    let lock = lock_writes(&db).await;
    // An HTTP submit takes the one place, and waits for the lock.
    let body = serde_json::json!({"function": mul::NAME, "args": [2, 3]});
    let hold = || tokio::spawn(service::client().post(server.url("/api/jobs")).bearer_auth(ADMIN).json(&body).send());
    let mut held = hold();
    // A gRPC call is refused while it holds the place (a read, which the lock
    // does not hold up: only the limit refuses it).
    within("a refusal", async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if held.is_finished() {
                // It came while a call below held the place: it tries again.
                let refused = (&mut held).await.unwrap().expect("an answer");
                assert_eq!(refused.status(), reqwest::StatusCode::TOO_MANY_REQUESTS, "the submit waits for the lock");
                held = hold();
                continue;
            }
            match client.get_status(with_token(GetStatusRequest {}, READ)).await {
                Err(status) if status.code() == Code::ResourceExhausted => break,
                Err(status) => panic!("refused for another reason: {status}"),
                Ok(_) => {}
            }
        }
    })
    .await;
    drop(lock);
    let response = within("the held submit", held).await.unwrap().expect("the held submit is answered");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    // The place is free again.
    client.get_status(with_token(GetStatusRequest {}, READ)).await.expect("a call once the place is free");
    server.stop().await;
}

fn health_of(service: &str, token: Option<&str>) -> tonic::Request<HealthCheckRequest> {
    let message = HealthCheckRequest { service: service.into() };
    match token {
        Some(token) => with_token(message, token),
        None => tonic::Request::new(message),
    }
}

fn serving(response: HealthCheckResponse) -> ServingStatus {
    ServingStatus::try_from(response.status).expect("a known serving status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_health_service_answers_for_the_server_and_the_job_service() {
    for db in queue::backends().await {
        let q = db.queue().await;
        let server = Server::start(&q).await;
        let channel = Channel::from_shared(server.base.clone()).unwrap().connect().await.expect("gRPC connects");
        let mut health = HealthClient::new(channel);
        for service in ["", "rustyray.v1.JobService"] {
            let answer = health.check(health_of(service, Some(READ))).await.unwrap().into_inner();
            assert_eq!(serving(answer), ServingStatus::Serving, "{}: {service:?}", db.label);
        }
        let (unknown, message) = code(health.check(health_of("other.Service", Some(READ))).await);
        assert_eq!(unknown, Code::NotFound, "{message}");
        assert!(message.contains("other.Service"), "{message}");
        // Health is not public here: a probe without the read token is refused.
        let (refused, _) = code(health.check(health_of("", None)).await);
        assert_eq!(refused, Code::Unauthenticated, "{}", db.label);
        // A watch answers at once, for a service it does not know too.
        let mut watch = health.watch(health_of("", Some(READ))).await.unwrap().into_inner();
        let first = within("the first watch message", watch.message()).await.unwrap().expect("a message");
        assert_eq!(serving(first), ServingStatus::Serving);
        let mut unknown = health.watch(health_of("other.Service", Some(READ))).await.unwrap().into_inner();
        let first = within("the unknown service's message", unknown.message()).await.unwrap().expect("a message");
        assert_eq!(serving(first), ServingStatus::ServiceUnknown);
        // Open watches end when the service stops, so they do not hold it
        // open; a known service's last message is NOT_SERVING, so a
        // balancer moves away while requests in flight finish.
        within("the stop with two watches open", server.stop()).await;
        let last = within("the watch's last message", watch.message()).await.unwrap().expect("a last message");
        assert_eq!(serving(last), ServingStatus::NotServing);
        assert!(within("the watch's end", watch.message()).await.is_ok_and(|m| m.is_none()));
        assert!(within("the other watch's end", unknown.message()).await.is_ok_and(|m| m.is_none()));
    }
    // With health public, as for `/api/health`, no token is needed; watches
    // share the event streams' limit.
    let db = queue::backends().await.remove(0);
    let q = db.queue().await;
    let server = Server::start_with(&q, |b| b.public_health(true).max_watchers(1)).await;
    let channel = Channel::from_shared(server.base.clone()).unwrap().connect().await.expect("gRPC connects");
    let mut health = HealthClient::new(channel);
    let answer = health.check(health_of("", None)).await.unwrap().into_inner();
    assert_eq!(serving(answer), ServingStatus::Serving);
    let mut open = health.watch(health_of("", None)).await.unwrap().into_inner();
    assert_eq!(serving(within("a watch", open.message()).await.unwrap().unwrap()), ServingStatus::Serving);
    let (refused, message) = code(health.watch(health_of("", None)).await);
    assert_eq!(refused, Code::ResourceExhausted, "{message}");
    drop(open);
    within("the stop", server.stop()).await;
}

/// A TCP forwarder to the database that can be cut (every connection
/// dropped, new ones refused) and mended, on the same port.
struct Link {
    port: u16,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Link {
    async fn open(target: String) -> Link {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let link = Link { port, target, tasks: Default::default() };
        link.mend().await;
        link
    }

    async fn mend(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind the link");
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(copy);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_unhealthy_while_the_database_is_cut_off_and_recovers() {
    let Some(db) = queue::postgres().await else {
        eprintln!("SKIPPING: the database is cut off through a TCP link to RUSTYRAY_TEST_POSTGRES, which is not set");
        return;
    };
    let mut url = reqwest::Url::parse(&db.url).expect("a PostgreSQL URL");
    let target = format!("{}:{}", url.host_str().expect("a host"), url.port().unwrap_or(5432));
    let link = Link::open(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(link.port)).unwrap();
    let q = Queue::builder(url.as_str())
        .poll_interval(Duration::from_millis(10))
        .connect()
        .await
        .expect("connect through the link");
    let server = Server::start_with(&q, |b| b.public_health(true)).await;
    let http = service::client();
    let health = || async {
        let response = http.get(server.url("/api/health")).send().await.unwrap();
        let status = response.status();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let channel = Channel::from_shared(server.base.clone()).unwrap().connect().await.expect("gRPC connects");
    let mut grpc = HealthClient::new(channel);
    let mut watch = grpc.watch(health_of("rustyray.v1.JobService", None)).await.unwrap().into_inner();
    assert_eq!(serving(within("a watch", watch.message()).await.unwrap().unwrap()), ServingStatus::Serving);
    let (status, report) = health().await;
    assert_eq!(status, 200, "{report}");
    assert_ne!(report["status"], "unhealthy", "{report}");

    link.cut();
    // Reports are shared for a second: a later one sees the cut.
    let (status, report) = within("a report that sees the cut", async {
        loop {
            let (status, report) = health().await;
            if status != 200 {
                break (status, report);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["status"], "unhealthy", "{report}");
    assert!(report["reasons"][0].as_str().unwrap().contains("database"), "{report}");
    let answer = grpc.check(health_of("", None)).await.unwrap().into_inner();
    assert_eq!(serving(answer), ServingStatus::NotServing);
    let changed = within("the watch to see the cut", watch.message()).await.unwrap().unwrap();
    assert_eq!(serving(changed), ServingStatus::NotServing);

    link.mend().await;
    within("health to come back", async {
        while health().await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let answer = grpc.check(health_of("", None)).await.unwrap().into_inner();
    assert_eq!(serving(answer), ServingStatus::Serving);
    let back = within("the watch to see the mend", watch.message()).await.unwrap().unwrap();
    assert_eq!(serving(back), ServingStatus::Serving);
    drop(watch);
    within("the stop", server.stop()).await;
    link.cut();
}
