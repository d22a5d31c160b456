//! The durable queue's behaviour, the same suite on SQLite and PostgreSQL:
//! enqueue, claim, run, results, priority, delays, limits across workers,
//! retries, timeouts, cancellation, bad input and schema versions.

mod queue;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use queue::{TestDb, backends, within};
use rustyray::queue::{AttemptState, JobFilter, JobInfo, JobOptions, JobState, Queue, QueueError, Worker};

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
fn boom(_x: i64) -> i64 {
    panic!("boom on purpose")
}

#[rustyray::remote]
fn nul_in_error() -> Result<i64, String> {
    Err("a byte PostgreSQL refuses: \0".into())
}

/// Set when the body of `runs_until_stopped` is dropped.
static STOPPED: AtomicBool = AtomicBool::new(false);

#[rustyray::remote]
async fn runs_until_stopped() -> u64 {
    struct Stopped;
    impl Drop for Stopped {
        fn drop(&mut self) {
            STOPPED.store(true, Ordering::SeqCst);
        }
    }
    let _stopped = Stopped;
    tokio::time::sleep(Duration::from_secs(600)).await;
    1
}

#[rustyray::remote]
async fn sleepy(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[rustyray::remote]
fn big(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

static ATTEMPTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// Fails the first `failures` calls with this key, then returns how many calls it took.
#[rustyray::remote]
fn flaky(key: String, failures: u32) -> Result<u32, String> {
    let mut seen = ATTEMPTS.lock().unwrap();
    let count = seen.get_or_insert_with(HashMap::new).entry(key.clone()).or_insert(0);
    *count += 1;
    if *count <= failures { Err(format!("{key}: failure {count} of {failures}")) } else { Ok(*count) }
}

static ORDER: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[rustyray::remote]
fn note(tag: String) -> String {
    ORDER.lock().unwrap().push(tag.clone());
    tag
}

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts how many run at once, across every worker in this process.
#[rustyray::remote]
async fn overlap(ms: u64) -> usize {
    let now = NOW.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    NOW.fetch_sub(1, Ordering::SeqCst);
    now
}

async fn worker(q: &Queue) -> Worker {
    Worker::builder(q).concurrency(4).heartbeat(Duration::from_millis(50)).start().await.expect("worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_once_and_its_result_comes_back_typed() {
    for db in backends().await {
        let q = db.queue().await;
        let job = add::enqueue(&q, 1, 2).await.unwrap();
        assert_eq!(job.state().await.unwrap(), JobState::Queued, "{}", db.label);
        let w = worker(&q).await;
        assert_eq!(within("result", job.result()).await.unwrap(), 3, "{}", db.label);
        let info = job.info().await.unwrap();
        assert_eq!(info.state, JobState::Succeeded);
        assert_eq!(info.function, add::NAME);
        assert_eq!(info.attempt_list.len(), 1);
        let attempt = &info.attempt_list[0];
        assert_eq!((attempt.attempt, attempt.state, attempt.runner.as_str()), (1, AttemptState::Succeeded, "local"));
        assert_eq!(attempt.worker_id.as_deref(), Some(w.id()));
        assert!(attempt.started_at.is_some() && attempt.finished_at.is_some());
        assert_eq!(info.args, None, "arguments are redacted unless the function opts in");
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_whose_message_holds_nul_is_recorded_and_holds_back_no_outcome() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let failing = nul_in_error::enqueue(&q).await.unwrap();
        let error = within("failure", failing.result()).await.expect_err("it fails");
        assert!(error.to_string().contains("a byte PostgreSQL refuses: \u{FFFD}"), "{}: {error}", db.label);
        let info = failing.info().await.unwrap();
        assert_eq!(info.state, JobState::Failed, "{}", db.label);
        // The outcomes after it are recorded too.
        let after = add::enqueue(&q, 1, 1).await.unwrap();
        assert_eq!(within("result after it", after.result()).await.unwrap(), 2, "{}", db.label);
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_found_lost_while_it_still_runs_here_is_stopped() {
    for db in backends().await {
        STOPPED.store(false, Ordering::SeqCst);
        let q = db.queue().await;
        let w = worker(&q).await;
        let job = runs_until_stopped::enqueue(&q).await.unwrap();
        within("running", async {
            while job.state().await.unwrap() != JobState::Running {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        // Another worker's reconcile found it silent for too long (a
        // database outage on this side, say) and declared it LOST.
        let lost = "UPDATE rustyray_attempts SET state = 'LOST' WHERE job_id = ";
        if db.label == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(&format!("{lost}?")).bind(job.id().0).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(&format!("{lost}$1")).bind(job.id().0).execute(&pool).await.unwrap();
        }
        within("stopped here", async {
            while !STOPPED.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let info = job.info().await.unwrap();
        assert_eq!(info.attempt_list[0].state, AttemptState::Lost, "{}: stopping it wrote nothing over LOST", db.label);
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ignores_case_on_both_databases_and_nul_matches_nothing() {
    for db in backends().await {
        let q = db.queue().await;
        let named = add::options().name("Nightly Report").enqueue(&q, 1, 2).await.unwrap();
        let _other = add::enqueue(&q, 3, 4).await.unwrap();
        let search = |text: &str| q.jobs(JobFilter { search: Some(text.into()), ..JobFilter::default() });
        for text in ["nightly", "NIGHTLY REPORT", "Report"] {
            let found: Vec<_> = search(text).await.unwrap().into_iter().map(|job| job.id).collect();
            assert_eq!(found, vec![named.id()], "{}: {text:?}", db.label);
        }
        // PostgreSQL refuses NUL in a statement's text: an empty page, not a database error.
        assert!(search("a\0b").await.unwrap().is_empty(), "{}", db.label);
        let by_queue = q.jobs(JobFilter { queue: Some("a\0b".into()), ..JobFilter::default() }).await.unwrap();
        assert!(by_queue.is_empty(), "{}", db.label);
    }
}

#[rustyray::remote]
fn length(text: String) -> usize {
    text.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_leaves_out_large_values_which_the_job_itself_still_has() {
    let max = JobInfo::LISTED_VALUE_MAX;
    for db in backends().await {
        let q = db.queue().await;
        let long = "x".repeat(max + 1);
        // `["xx..."]`: four characters more than the text.
        let small_args = length::options().record_args(true).enqueue(&q, "x".repeat(max - 4)).await.unwrap();
        let large_args = length::options().record_args(true).enqueue(&q, long.clone()).await.unwrap();
        let unrecorded = length::enqueue(&q, long.clone()).await.unwrap();
        // `big(n)` returns n sevens: `[7,7,...]` is 2n + 1 characters.
        let small_result = big::enqueue(&q, (max - 1) / 2).await.unwrap();
        let large_result = big::enqueue(&q, max / 2 + 1).await.unwrap();
        let w = worker(&q).await;
        for id in [small_args.id(), large_args.id(), unrecorded.id(), small_result.id(), large_result.id()] {
            within("the jobs", async {
                while !q.state(id).await.unwrap().is_terminal() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
        }
        w.shutdown().await;
        let listed: HashMap<_, _> =
            q.jobs(JobFilter::default()).await.unwrap().into_iter().map(|job| (job.id, job)).collect();
        let what = |id| {
            let job: &JobInfo = &listed[&id];
            (job.args.is_some(), job.result.is_some(), job.values_omitted)
        };
        assert_eq!(what(small_args.id()), (true, true, false), "{}", db.label);
        assert_eq!(what(large_args.id()), (false, true, true), "{}", db.label);
        assert_eq!(what(unrecorded.id()), (false, true, false), "{}: redacted, not omitted", db.label);
        assert_eq!(what(small_result.id()), (false, true, false), "{}", db.label);
        assert_eq!(what(large_result.id()), (false, false, true), "{}", db.label);
        // The job itself has every value.
        let info = large_args.info().await.unwrap();
        assert_eq!(info.args, Some(serde_json::json!([long])), "{}", db.label);
        assert!(!info.values_omitted);
        assert_eq!(large_result.result().await.unwrap().len(), max / 2 + 1, "{}", db.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_enqueues_one_job_however_often_it_is_sent() {
    for db in backends().await {
        let q = db.queue().await;
        let keyed = |key: &str| JobOptions::default().idempotency_key(key);
        let args = || serde_json::json!([1, 2]);
        let first = q.enqueue_by_name(add::NAME, args(), keyed("order-17")).await.unwrap();
        let again = q.enqueue_by_name(add::NAME, args(), keyed("order-17")).await.unwrap();
        assert_eq!(again, first, "{}: the second enqueue answers for the first job", db.label);
        assert_eq!(q.job(first).await.unwrap().options.idempotency_key.as_deref(), Some("order-17"));
        // In one transaction: a repeat within it, and a key already written.
        let many = q
            .enqueue_many_by_name(vec![
                (add::NAME.to_string(), args(), keyed("order-18")),
                (add::NAME.to_string(), args(), keyed("order-18")),
                (add::NAME.to_string(), args(), keyed("order-17")),
                (add::NAME.to_string(), args(), JobOptions::default()),
            ])
            .await
            .unwrap();
        assert_eq!(many[0], many[1], "{}", db.label);
        assert_eq!(many[2], first, "{}", db.label);
        assert!(![first, many[0]].contains(&many[3]), "{}: a job without a key is its own", db.label);
        let listed = q.jobs(JobFilter::default()).await.unwrap();
        assert_eq!(listed.len(), 3, "{}: three jobs written: {listed:?}", db.label);
        // A key names the job whatever became of it: still the same id once it ran.
        let w = worker(&q).await;
        within("the keyed job", async {
            while q.state(first).await.unwrap() != JobState::Succeeded {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        w.shutdown().await;
        assert_eq!(q.enqueue_by_name(add::NAME, args(), keyed("order-17")).await.unwrap(), first, "{}", db.label);
        // Bad keys are refused.
        for bad in [String::new(), "k".repeat(256), "a\0b".to_string()] {
            let error = q.enqueue_by_name(add::NAME, args(), keyed(&bad)).await.unwrap_err();
            assert!(matches!(error, QueueError::InvalidOption { option: "idempotency_key", .. }), "{error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_enqueue_takes_an_idempotency_key_where_one_job_is_made() {
    for db in backends().await {
        let q = db.queue().await;
        let first = add::options().idempotency_key("typed-1").enqueue(&q, 1, 2).await.unwrap().id();
        let again = add::options().idempotency_key("typed-1").enqueue(&q, 1, 2).await.unwrap().id();
        assert_eq!(again, first, "{}: the repeat answers for the first job", db.label);
        assert_eq!(q.job(first).await.unwrap().options.idempotency_key.as_deref(), Some("typed-1"));
        let other = add::options().enqueue(&q, 1, 2).await.unwrap().id();
        assert_ne!(other, first, "{}: without a key, a job of its own", db.label);
        let bad = add::options().idempotency_key("").enqueue(&q, 1, 2).await.map(|job| job.id()).unwrap_err();
        assert!(matches!(bad, QueueError::InvalidOption { option: "idempotency_key", .. }), "{bad}");
        // One key cannot name many jobs: nothing is written.
        let many = add::options().idempotency_key("typed-2").enqueue_many(&q, [(1, 2), (3, 4)]).await;
        let error = many.map(|jobs| jobs.len()).unwrap_err();
        assert!(matches!(error, QueueError::InvalidOption { option: "idempotency_key", .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("enqueue_many") && message.contains(add::NAME), "{message}");
        // Nor can it name none: an empty batch with a key is refused as well.
        let none = add::options().idempotency_key("typed-4").enqueue_many(&q, std::iter::empty()).await;
        let error = none.map(|jobs| jobs.len()).unwrap_err();
        assert!(matches!(error, QueueError::InvalidOption { option: "idempotency_key", .. }), "{error}");
        assert_eq!(q.jobs(JobFilter::default()).await.unwrap().len(), 2, "{}", db.label);
        // Two jobs were written and one enqueue was answered by its key:
        // the metrics count them apart.
        let metrics = q.metrics_text().await.unwrap();
        for line in ["rustyray_job_submissions_total 2", "rustyray_job_enqueues_deduplicated_total 1"] {
            assert!(metrics.lines().any(|l| l == line), "{}: `{line}` missing from\n{metrics}", db.label);
        }
    }
    // An in-process call makes no durable job: the key is refused, not dropped.
    let rt = rustyray::Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let error = add::options().idempotency_key("typed-3").remote(1, 2).get().await.unwrap_err();
        assert!(matches!(error, rustyray::Error::InvalidOption { option: "idempotency_key", .. }), "{error}");
        assert_eq!(add::options().remote(1, 2).get().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_of_for_ever_are_taken_as_a_year_and_the_worker_runs_and_stops() {
    for db in backends().await {
        let q = Queue::builder(&db.url).poll_interval(Duration::MAX).connect().await.expect("connect");
        let w = Worker::builder(&q)
            .heartbeat(Duration::MAX)
            .stuck_timeout(Duration::MAX)
            .grace_period(Duration::MAX)
            .start()
            .await
            .expect("worker");
        let job = add::enqueue(&q, 2, 3).await.unwrap();
        assert_eq!(within("result", job.result()).await.unwrap(), 5, "{}", db.label);
        let id = w.id().to_string();
        within("shutdown", w.shutdown()).await;
        let lease = q.workers().await.unwrap().into_iter().find(|lease| lease.id == id).expect("its lease");
        assert_eq!(lease.state, "STOPPED", "{}: the worker stopped cleanly", db.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_enqueued_in_one_transaction_all_run() {
    for db in backends().await {
        let q = db.queue().await;
        let jobs = add::enqueue_many(&q, (0..200).map(|i| (i, i))).await.unwrap();
        assert_eq!(jobs.len(), 200);
        let w = worker(&q).await;
        for (i, job) in jobs.iter().enumerate() {
            assert_eq!(within("result", job.result()).await.unwrap(), 2 * i as i64, "{}", db.label);
        }
        let stats = q.stats().await.unwrap();
        assert_eq!(stats.count(JobState::Succeeded), 200);
        assert_eq!(stats.workers_alive, 1);
        w.shutdown().await;
        // After shutdown every outcome is written and counted.
        let metrics = q.metrics_text().await.unwrap();
        for line in [
            "rustyray_jobs{queue=\"default\",state=\"SUCCEEDED\"} 200",
            "rustyray_job_submissions_total 200",
            "rustyray_job_attempts_finished_total{outcome=\"succeeded\"} 200",
            "rustyray_job_run_seconds_count 200",
            "rustyray_queue_workers_alive 0",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{}: `{line}` missing from\n{metrics}", db.label);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_metrics_include_the_runtime_its_workers_run_on() {
    for db in backends().await {
        let q = db.queue().await;
        let rt = rustyray::Runtime::builder().build().unwrap();
        let w = Worker::builder(&q).runtime(rt.clone()).start().await.unwrap();
        let jobs = add::enqueue_many(&q, (0..5).map(|i| (i, 1))).await.unwrap();
        for job in &jobs {
            within("result", job.result()).await.unwrap();
        }
        w.shutdown().await;
        let metrics = q.metrics_text().await.unwrap();
        // One exposition: the runtime's task families, then the queue's, one `# EOF`.
        let line = "rustyray_tasks_total{function=\"queue_jobs::add\",state=\"succeeded\"} 5";
        assert!(metrics.lines().any(|l| l == line), "{}: `{line}` missing from\n{metrics}", db.label);
        assert!(metrics.lines().any(|l| l == "rustyray_job_submissions_total 5"), "{}: {metrics}", db.label);
        assert_eq!(metrics.matches("# EOF").count(), 1, "{}: {metrics}", db.label);
        assert!(metrics.ends_with("# EOF\n"), "{}", db.label);
        drop(rt);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_runs_first_then_older_first() {
    for db in backends().await {
        let q = db.queue().await;
        let tag = |t: &str| format!("{}-{t}", db.label);
        note::options().priority(-5).enqueue(&q, tag("low")).await.unwrap();
        note::options().queue("default").enqueue(&q, tag("mid-1")).await.unwrap();
        note::options().enqueue(&q, tag("mid-2")).await.unwrap();
        let last = note::options().priority(100).enqueue(&q, tag("high")).await.unwrap();
        let w = Worker::builder(&q).concurrency(1).start().await.unwrap();
        within("jobs", async {
            while q.stats().await.unwrap().count(JobState::Succeeded) < 4 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let order: Vec<String> = ORDER.lock().unwrap().iter().filter(|t| t.starts_with(db.label)).cloned().collect();
        assert_eq!(order, vec![tag("high"), tag("mid-1"), tag("mid-2"), tag("low")]);
        assert_eq!(last.result().await.unwrap(), tag("high"));
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_waits_for_its_time() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let job = add::options().run_after(Duration::from_millis(300)).enqueue(&q, 2, 2).await.unwrap();
        assert_eq!(within("result", job.result()).await.unwrap(), 4);
        let info = job.info().await.unwrap();
        assert!(info.run_after >= info.created_at + 300_000, "{}: run_after is 300 ms after creation", db.label);
        assert!(info.attempt_list[0].started_at.unwrap() >= info.run_after, "{}: it did not start early", db.label);
        let at = std::time::SystemTime::now() + Duration::from_millis(100);
        let job = add::options().run_at(at).enqueue(&q, 1, 1).await.unwrap();
        assert_eq!(within("result", job.result()).await.unwrap(), 2);
        assert!(job.info().await.unwrap().attempt_list[0].started_at.unwrap() >= rustyray::queue::to_micros(at));
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_holds_across_two_workers() {
    for db in backends().await {
        let q = db.queue().await;
        PEAK.store(0, Ordering::SeqCst);
        let jobs = overlap::options().queue("limited").enqueue_many(&q, (0..12).map(|_| (40u64,))).await.unwrap();
        let start = |q: &Queue| Worker::builder(q).queues(["limited"]).concurrency(4).queue_limit("limited", 2).start();
        let (a, b) = (start(&q).await.unwrap(), start(&q).await.unwrap());
        for job in &jobs {
            within("result", job.result()).await.unwrap();
        }
        let peak = PEAK.load(Ordering::SeqCst);
        assert!(peak <= 2, "{}: {peak} ran at once with a limit of 2", db.label);
        a.shutdown().await;
        b.shutdown().await;
        q.set_queue_limit("limited", None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_holds_across_queues_and_workers() {
    for db in backends().await {
        let q = db.queue().await;
        PEAK.store(0, Ordering::SeqCst);
        let mut jobs = overlap::options().queue("g1").enqueue_many(&q, (0..6).map(|_| (40u64,))).await.unwrap();
        jobs.extend(overlap::options().queue("g2").enqueue_many(&q, (0..6).map(|_| (40u64,))).await.unwrap());
        let start = |q: &Queue| Worker::builder(q).queues(["g1", "g2"]).concurrency(4).global_limit(3).start();
        let (a, b) = (start(&q).await.unwrap(), start(&q).await.unwrap());
        for job in &jobs {
            within("result", job.result()).await.unwrap();
        }
        let peak = PEAK.load(Ordering::SeqCst);
        assert!(peak <= 3, "{}: {peak} ran at once with a global limit of 3", db.label);
        a.shutdown().await;
        b.shutdown().await;
        q.set_queue_limit("*", None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_as_new_attempts_until_it_succeeds() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let key = format!("retry-{}", db.label);
        let job = flaky::options()
            .max_retries(3)
            .backoff(Duration::from_millis(20), Duration::from_millis(80))
            .enqueue(&q, key, 2)
            .await
            .unwrap();
        assert_eq!(within("result", job.result()).await.unwrap(), 3);
        let info = job.info().await.unwrap();
        let states: Vec<AttemptState> = info.attempt_list.iter().map(|a| a.state).collect();
        assert_eq!(states, vec![AttemptState::Failed, AttemptState::Failed, AttemptState::Succeeded], "{}", db.label);
        assert_eq!(info.attempts, 3);
        let first = &info.attempt_list[0];
        assert_eq!(first.error_class.as_deref(), Some("alloc::string::String"));
        assert!(first.error_message.as_deref().unwrap().contains("failure 1 of 2"));
        // Each retry waited its backoff: the second attempt began at least 10 ms (half of 20, the jitter floor) after the first ended.
        assert!(info.attempt_list[1].submitted_at >= first.finished_at.unwrap() + 10_000, "{}", db.label);
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_ends_failed_with_its_last_error() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let job = flaky::options()
            .max_retries(1)
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
            .enqueue(&q, format!("never-{}", db.label), 100)
            .await
            .unwrap();
        let error = within("result", job.result()).await.unwrap_err();
        match &error {
            QueueError::JobFailed { state, attempts, function, message, .. } => {
                assert_eq!((*state, *attempts), (JobState::Failed, 2), "{}", db.label);
                assert_eq!(function, flaky::NAME);
                assert!(message.as_deref().unwrap().contains("failure 2 of 100"), "{error}");
            }
            other => panic!("{}: expected JobFailed, got {other}", db.label),
        }
        assert!(error.to_string().contains(flaky::NAME), "{error}");

        let job = boom::enqueue(&q, 1).await.unwrap();
        let error = within("result", job.result()).await.unwrap_err();
        match error {
            QueueError::JobFailed { error_class, message, .. } => {
                assert_eq!(error_class.as_deref(), Some("Panic"));
                assert!(message.unwrap().contains("boom on purpose"));
            }
            other => panic!("expected a panic's failure, got {other}"),
        }
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_claimed_at_once_run_to_their_end_and_are_never_cancelled() {
    // With no backoff a failed attempt's retry may be claimed by the same
    // worker before the failed attempt's own task has wound down; finishing
    // the old attempt must not stop the new one.
    for db in backends().await {
        let q = db.queue().await;
        let w = Worker::builder(&q).concurrency(8).heartbeat(Duration::from_millis(50)).start().await.expect("worker");
        let jobs = flaky::options()
            .max_retries(3)
            .backoff(Duration::ZERO, Duration::ZERO)
            .enqueue_many(&q, (0..200).map(|i| (format!("again-{}-{i}", db.label), 1)))
            .await
            .unwrap();
        for job in &jobs {
            assert_eq!(within("result", job.result()).await.unwrap(), 2, "{}", db.label);
        }
        let stats = q.stats().await.unwrap();
        assert_eq!(stats.count(JobState::Succeeded), 200, "{}: {stats:?}", db.label);
        assert_eq!(stats.count(JobState::Cancelled), 0, "{}", db.label);
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_stop_handle_is_dropped_runs_to_its_end() {
    use rustyray::queue::{Attempt, Claimed, JobId, Outcome, run_local};
    let db = queue::sqlite();
    let q = db.queue().await;
    let runtime = rustyray::Runtime::builder().build().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(None);
    drop(stop); // nobody will ask it to stop: that is not a cancel
    let claimed = Claimed {
        job_id: JobId::new(),
        attempt_id: uuid::Uuid::now_v7(),
        attempt: 1,
        charged: 1,
        max_attempts: 1,
        function: add::NAME.to_string(),
        args: serde_json::json!([2, 3]),
        options: JobOptions::default(),
        queue: "default".into(),
        unreadable: None,
    };
    let attempt =
        Attempt { claimed, queue: q.clone(), worker_id: "w".into(), heartbeat: Duration::from_secs(1), stop: stop_rx };
    let outcome = within("outcome", run_local(runtime, attempt)).await;
    assert_eq!(outcome, Outcome::Succeeded(serde_json::json!(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_past_its_timeout_fails_with_timeout() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let job = sleepy::options().timeout(Duration::from_millis(100)).enqueue(&q, 30_000).await.unwrap();
        match within("result", job.result()).await.unwrap_err() {
            QueueError::JobFailed { error_class, state, .. } => {
                assert_eq!((error_class.as_deref(), state), (Some("Timeout"), JobState::Failed), "{}", db.label)
            }
            other => panic!("expected a timeout, got {other}"),
        }
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_job_ends_it_at_once() {
    for db in backends().await {
        let q = db.queue().await;
        let job = add::enqueue(&q, 1, 1).await.unwrap();
        assert_eq!(job.cancel().await.unwrap(), JobState::Cancelled);
        assert_eq!(job.state().await.unwrap(), JobState::Cancelled);
        let w = worker(&q).await;
        assert!(matches!(
            within("result", job.result()).await,
            Err(QueueError::JobFailed { state: JobState::Cancelled, attempts: 0, .. })
        ));
        assert!(job.info().await.unwrap().attempt_list.is_empty(), "{}: it never ran", db.label);
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_and_ends_it_cancelled() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let job = sleepy::enqueue(&q, 60_000).await.unwrap();
        within("start", async {
            while job.state().await.unwrap() != JobState::Running {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        job.cancel().await.unwrap();
        assert_eq!(within("cancel", job.wait()).await.unwrap(), JobState::Cancelled, "{}", db.label);
        let info = job.info().await.unwrap();
        assert_eq!(info.attempt_list.last().unwrap().state, AttemptState::Cancelled);
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_can_be_retried_and_then_succeeds() {
    for db in backends().await {
        let q = db.queue().await;
        let w = worker(&q).await;
        let job = flaky::enqueue(&q, format!("again-{}", db.label), 1).await.unwrap();
        assert!(within("first", job.result()).await.is_err());
        q.retry(job.id()).await.unwrap();
        assert_eq!(within("second", job.result()).await.unwrap(), 2, "{}", db.label);
        let info = job.info().await.unwrap();
        assert_eq!(info.attempt_list.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![1, 2]);
        assert!(matches!(q.retry(job.id()).await, Err(QueueError::WrongState { state: JobState::Succeeded, .. })));
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_arguments_are_refused_and_nothing_is_written() {
    for db in backends().await {
        let q = db.queue().await;
        let unknown = q.enqueue_by_name("queue_jobs::ad", serde_json::json!([1, 2]), JobOptions::default()).await;
        let message = unknown.unwrap_err().to_string();
        assert!(message.contains("queue_jobs::ad") && message.contains("queue_jobs::add"), "{message}");
        let wrong = q.enqueue_by_name(add::NAME, serde_json::json!(["x", 2]), JobOptions::default()).await;
        let message = wrong.unwrap_err().to_string();
        assert!(message.contains(add::NAME) && message.contains("fn add(a: i64, b: i64)"), "{message}");
        let short = q.enqueue_by_name(add::NAME, serde_json::json!([1]), JobOptions::default()).await;
        assert!(matches!(short, Err(QueueError::InvalidArguments { .. })));
        let priority =
            q.enqueue_by_name(add::NAME, serde_json::json!([1, 2]), JobOptions::default().priority(500)).await;
        assert!(matches!(priority, Err(QueueError::InvalidOption { option: "priority", .. })));
        assert!(q.jobs(JobFilter::default()).await.unwrap().is_empty(), "{}: nothing was written", db.label);
        let ok = q.enqueue_by_name(add::NAME, serde_json::json!([1, 2]), JobOptions::default()).await.unwrap();
        assert_eq!(q.job(ok).await.unwrap().state, JobState::Queued);
        assert!(matches!(q.job(rustyray::queue::JobId::new()).await, Err(QueueError::JobNotFound(_))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_size_limit_goes_to_the_result_store() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::builder(&db.url)
            .result_limit(1024)
            .result_store(rustyray::queue::DirStore::new(dir.path()))
            .connect()
            .await
            .unwrap();
        let w = worker(&q).await;
        let small = big::enqueue(&q, 10).await.unwrap();
        let large = big::enqueue(&q, 100_000).await.unwrap();
        assert_eq!(within("small", small.result()).await.unwrap().len(), 10);
        assert_eq!(within("large", large.result()).await.unwrap(), vec![7u8; 100_000]);
        let (small, large) = (small.info().await.unwrap(), large.info().await.unwrap());
        assert!(small.result.is_some() && small.result_ref.is_none(), "{}", db.label);
        assert!(large.result.is_none(), "{}", db.label);
        assert!(large.result_ref.as_deref().unwrap().starts_with("file://"));
        w.shutdown().await;
    }
}

/// Every other run (the first of each test database) hangs for ever.
static HANG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[rustyray::remote]
async fn hang_every_other() -> u32 {
    if HANG_RUNS.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
        std::future::pending::<()>().await;
    }
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_its_old_id_lets_the_dead_attempt_be_found_lost() {
    let fast = |q: &Queue| {
        Worker::builder(q)
            .id("restarted-worker")
            .heartbeat(Duration::from_millis(50))
            .stuck_timeout(Duration::from_millis(1000))
    };
    for db in backends().await {
        // The first process claims the job and dies mid-attempt: its tokio
        // runtime ends with no graceful stop.
        let url = db.url.clone();
        let job = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async {
                let q = Queue::builder(&url).poll_interval(Duration::from_millis(10)).connect().await.unwrap();
                let worker = fast(&q).start().await.unwrap();
                let job = hang_every_other::options().max_retries(1).enqueue(&q).await.unwrap();
                while job.state().await.unwrap() != JobState::Running {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                std::mem::forget(worker);
                job.id()
            })
        })
        .join()
        .unwrap();
        // The process comes back under the same worker id: it must not keep
        // the dead attempt alive, so the attempt is found LOST and retried.
        let q = db.queue().await;
        let worker = fast(&q).start().await.unwrap();
        let info = within("the retry after the lost attempt", async {
            loop {
                let info = q.job(job).await.unwrap();
                if info.state.is_terminal() {
                    break info;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(info.state, JobState::Succeeded, "{}: {info:?}", db.label);
        let states: Vec<AttemptState> = info.attempt_list.iter().map(|a| a.state).collect();
        assert_eq!(states, vec![AttemptState::Lost, AttemptState::Succeeded], "{}: {info:?}", db.label);
        within("shutdown", worker.shutdown()).await;
    }
}

/// A result store that panics on every write.
#[derive(Debug)]
struct PanickingStore;

impl rustyray::queue::ResultStore for PanickingStore {
    fn put<'a>(&'a self, _key: &'a str, _bytes: Vec<u8>) -> futures::future::BoxFuture<'a, Result<String, QueueError>> {
        Box::pin(async { panic!("the store broke") })
    }

    fn get<'a>(&'a self, _reference: &'a str) -> futures::future::BoxFuture<'a, Result<Vec<u8>, QueueError>> {
        Box::pin(async { panic!("the store broke") })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_store_that_panics_fails_the_attempt_and_the_worker_lives_on() {
    for db in backends().await {
        let q = Queue::builder(&db.url).result_limit(16).result_store(PanickingStore).connect().await.unwrap();
        let w = Worker::builder(&q).concurrency(1).start().await.unwrap();
        let large = big::enqueue(&q, 1_000).await.unwrap();
        let error = within("the large result", large.result()).await.unwrap_err();
        assert!(error.to_string().contains("result store panicked"), "{}: {error}", db.label);
        let info = large.info().await.unwrap();
        assert_eq!(info.state, JobState::Failed, "{}: {info:?}", db.label);
        // Its one slot is free again: the next job runs, and the worker stops.
        let small = big::enqueue(&q, 4).await.unwrap();
        assert_eq!(within("the small result", small.result()).await.unwrap().len(), 4, "{}", db.label);
        within("shutdown", w.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_unfinished_jobs_back_to_the_queue_uncharged() {
    for db in backends().await {
        let q = db.queue().await;
        let w = Worker::builder(&q).grace_period(Duration::from_millis(100)).start().await.unwrap();
        let job = sleepy::enqueue(&q, 60_000).await.unwrap();
        within("start", async {
            while job.state().await.unwrap() != JobState::Running {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        within("shutdown", w.shutdown()).await;
        let info = job.info().await.unwrap();
        assert_eq!((info.state, info.attempts), (JobState::Queued, 0), "{}", db.label);
        let attempt = &info.attempt_list[0];
        assert_eq!((attempt.state, attempt.charged), (AttemptState::Cancelled, false));
        assert_eq!(attempt.error_class.as_deref(), Some("Released"));
        let workers = q.workers().await.unwrap();
        assert_eq!(workers[0].state, "STOPPED");
    }
}

/// The kinds of `job`'s events, in order.
async fn kinds(q: &Queue, job: rustyray::queue::JobId) -> Vec<String> {
    let events = q.events_after(0, 1000).await.unwrap();
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "events come in sequence order");
    events.into_iter().filter(|e| e.job_id == job).map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_writes_one_event_with_the_job_and_attempt() {
    for db in backends().await {
        let q = db.queue().await;
        let ok = add::enqueue(&q, 2, 2).await.unwrap();
        let key = format!("events-{}", db.label);
        let retried = flaky::options().max_retries(1).backoff(Duration::from_millis(1), Duration::from_millis(2));
        let retried = retried.enqueue(&q, key, 1).await.unwrap();
        let failed = boom::enqueue(&q, 1).await.unwrap();
        let cancelled = add::options().run_after(Duration::from_secs(3600)).enqueue(&q, 0, 0).await.unwrap();
        cancelled.cancel().await.unwrap();
        let w = worker(&q).await;
        within("results", async {
            ok.result().await.unwrap();
            retried.result().await.unwrap();
            assert!(failed.result().await.is_err());
        })
        .await;
        w.shutdown().await;
        assert_eq!(kinds(&q, ok.id()).await, ["submitted", "started", "succeeded"], "{}", db.label);
        assert_eq!(
            kinds(&q, retried.id()).await,
            ["submitted", "started", "retried", "started", "succeeded"],
            "{}",
            db.label
        );
        assert_eq!(kinds(&q, failed.id()).await, ["submitted", "started", "failed"], "{}", db.label);
        assert_eq!(kinds(&q, cancelled.id()).await, ["submitted", "cancelled"], "{}", db.label);
        let events = q.events_after(0, 1000).await.unwrap();
        let failure = events.iter().find(|e| e.job_id == failed.id() && e.kind == "failed").unwrap();
        assert_eq!((failure.attempt, failure.state, failure.function.as_str()), (1, JobState::Failed, boom::NAME));
        assert!(failure.error.as_deref().unwrap_or_default().contains("boom on purpose"), "{failure:?}");
        assert!(events.iter().all(|e| e.args.is_none()), "arguments are redacted unless the function opts in");
        let unpublished = q.unpublished_events(1000).await.unwrap();
        assert_eq!(unpublished.len(), events.len());
        q.mark_events_published(&[unpublished[0].seq]).await.unwrap();
        assert_eq!(q.unpublished_events(1000).await.unwrap().len(), events.len() - 1);
        assert_eq!(q.last_event_seq().await.unwrap(), events.last().unwrap().seq);
        assert_eq!(q.prune_events(Duration::ZERO).await.unwrap(), events.len() as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_version_is_refused() {
    for db in backends().await {
        drop(db.queue().await);
        bump_schema(&db).await;
        match Queue::connect(&db.url).await {
            Err(QueueError::SchemaTooNew { found, supported, .. }) => {
                assert_eq!((found, supported), (99_999, 3), "{}", db.label)
            }
            other => panic!("{}: expected SchemaTooNew, got {other:?}", db.label),
        }
    }
}

/// Writes a migration this program does not know, as a newer version would.
async fn bump_schema(db: &TestDb) {
    let text = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                VALUES (99999, 'from the future', TRUE, X'00', 0)";
    if db.label == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(text).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(&text.replace("X'00'", "'\\x00'::bytea")).execute(&pool).await.unwrap();
    }
}

#[tokio::test]
async fn unreachable_and_malformed_databases_are_clear_errors() {
    let error = Queue::connect("postgres://app:s3cret@127.0.0.1:1/none").await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1") && !message.contains("s3cret"), "{message}");
    assert!(error.is_transient());
    assert!(matches!(Queue::connect("mysql://x").await, Err(QueueError::InvalidUrl { .. })));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let error = Queue::connect(&format!("sqlite://{}", path.display())).await.unwrap_err();
    assert!(error.to_string().contains("corrupt.db"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_elsewhere_hears_of_a_queued_job_cancelled_at_once() {
    let Some(db) = queue::postgres().await else {
        eprintln!("SKIPPING: another process's notification needs RUSTYRAY_TEST_POSTGRES");
        return;
    };
    // Two queues on one database, as two processes would have: the waiter's
    // poll is far too slow to see the end, so only a notification can.
    let waiter = Queue::builder(&db.url).poll_interval(Duration::from_secs(600)).connect().await.unwrap();
    let other = db.queue().await;
    // The waiter's queue listens once it hears another's enqueue.
    let mut heard = waiter.signals();
    let job = add::enqueue(&other, 1, 2).await.unwrap();
    within("the waiter's queue to listen", async {
        while heard.recv().await.unwrap() != rustyray::queue::Signal::Ready {}
    })
    .await;
    let waiting = tokio::spawn({
        let job = rustyray::queue::Job::<i64>::from_id(&waiter, job.id());
        async move { job.wait().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(other.cancel(job.id()).await.unwrap(), JobState::Cancelled);
    let state = within("the waiter to hear of the cancel", waiting).await.unwrap().unwrap();
    assert_eq!(state, JobState::Cancelled);
}
