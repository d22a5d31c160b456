//! Observability through the public API: Prometheus metrics, the timeline,
//! lifecycle events and argument redaction. (Spans are checked in
//! `tests/tracing_spans.rs`, which installs a process-wide subscriber.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rustyray::prelude::*;
use rustyray::{DeathReason, EventKind, TaskFilter};

#[rustyray::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[rustyray::remote]
fn sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[rustyray::remote]
fn always_fails(x: u64) -> Result<u64, String> {
    Err(format!("no luck with {x}"))
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

#[rustyray::remote]
fn fails_once() -> Result<u32, String> {
    if FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 { Err("first attempt fails".into()) } else { Ok(7) }
}

#[rustyray::remote]
async fn sleeper(millis: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    millis
}

#[rustyray::remote]
fn login(user: String, password: String) -> usize {
    user.len() + password.len()
}

#[rustyray::actor]
pub struct Tally {
    n: u64,
}

#[rustyray::actor]
#[allow(clippy::new_without_default)]
impl Tally {
    pub fn new() -> Self {
        Tally { n: 0 }
    }

    pub fn add(&mut self, by: u64) -> u64 {
        self.n += by;
        self.n
    }
}

fn runtime() -> Runtime {
    Runtime::builder().num_cpus(2).build().unwrap()
}

/// The samples of a scrape, keyed by metric name and sorted labels.
/// Samples by metric name and sorted labels.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn scrape(text: &str) -> Samples {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let mut labels: Vec<(String, String)> =
                sample.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.sort();
            Some(((sample.metric, labels), value))
        })
        .collect()
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    labels.sort();
    samples
        .get(&(name.to_string(), labels.clone()))
        .copied()
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_text_reports_tasks_actors_and_objects_by_prometheus_conventions() {
    let rt = runtime();
    rt.scope(async {
        let squares: Vec<ObjectRef<u64>> = (0..20).map(square::remote).collect();
        assert_eq!(rustyray::get_all(&squares).await.unwrap().len(), 20);
        let failed = always_fails::options().max_retries(1).remote(3u64);
        assert!(failed.get().await.is_err());
        let refused = square::options().queue("no-such-queue").remote(1u64);
        assert!(refused.get().await.is_err());
        let tally = Tally::remote();
        assert_eq!(tally.add(2).get().await.unwrap(), 2);
        rustyray::kill(&tally);
        let kept = rustyray::put(5u64);
        rt.wait_idle().await;

        let text = rt.metrics_text();
        assert!(text.contains("# TYPE rustyray_tasks counter"), "{text}");
        assert!(text.contains("# TYPE rustyray_task_run_seconds histogram"), "{text}");
        let samples = scrape(&text);
        let square_fn = "observability::square";
        let fails_fn = "observability::always_fails";
        // Submitted counts the refused call too; it finished as failed.
        assert_eq!(sample(&samples, "rustyray_tasks_submitted_total", &[("function", square_fn)]), 21.0);
        assert_eq!(sample(&samples, "rustyray_tasks_total", &[("function", square_fn), ("state", "succeeded")]), 20.0);
        assert_eq!(sample(&samples, "rustyray_tasks_total", &[("function", square_fn), ("state", "failed")]), 1.0);
        assert_eq!(
            sample(
                &samples,
                "rustyray_task_submission_failures_total",
                &[("function", square_fn), ("reason", "unknown_queue")]
            ),
            1.0
        );
        assert_eq!(sample(&samples, "rustyray_tasks_total", &[("function", fails_fn), ("state", "failed")]), 1.0);
        assert_eq!(sample(&samples, "rustyray_task_retries_total", &[("function", fails_fn)]), 1.0);
        assert_eq!(sample(&samples, "rustyray_tasks_queued", &[]), 0.0);
        assert_eq!(sample(&samples, "rustyray_tasks_running", &[]), 0.0);
        assert_eq!(sample(&samples, "rustyray_actors", &[("state", "dead")]), 1.0);
        assert_eq!(sample(&samples, "rustyray_actors", &[("state", "alive")]), 0.0);
        assert!(sample(&samples, "rustyray_objects", &[]) >= 1.0, "the put object is alive");
        // The twenty squares and the put value are alive, 8 bytes each.
        let stats = rt.stats();
        assert_eq!(stats.object_bytes, 21 * 8, "{stats:?}");
        assert_eq!(sample(&samples, "rustyray_object_store_bytes", &[]), stats.object_bytes as f64);
        assert_eq!(sample(&samples, "rustyray_objects_unsized", &[]), 0.0);
        drop(kept);

        // Histograms: one run-time observation per attempt (two for the retried task).
        let run_count = |function: &str| {
            let prefix = format!("rustyray_task_run_seconds_count{{function=\"{function}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no run-time count for {function} in {text}"))
        };
        assert_eq!(run_count(square_fn), 20);
        assert_eq!(run_count(fails_fn), 2);
        // Every queue wait is counted, in the `+Inf` bucket at least.
        let function_label = format!("function=\"{square_fn}\"");
        let inf_bucket = text.lines().find(|line| {
            line.starts_with("rustyray_task_queue_wait_seconds_bucket{")
                && line.contains("le=\"+Inf\"")
                && line.contains(&function_label)
        });
        assert!(inf_bucket.is_some_and(|line| line.ends_with(" 20")), "{inf_bucket:?}");
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_is_chrome_trace_json_with_lanes_slices_and_dependency_arrows() {
    let rt = runtime();
    rt.scope(async {
        let parts: Vec<ObjectRef<u64>> = (0..4).map(square::remote).collect();
        let collected = rustyray::get_all(&parts).await.unwrap();
        let total = sum::remote(collected);
        let chained = square::options().name("chained").remote(&total);
        assert_eq!(chained.get().await.unwrap(), 14 * 14);
        assert_eq!(sleeper::remote(1u64).get().await.unwrap(), 1);
    })
    .await;
    rt.wait_idle().await;
    let path = std::env::temp_dir().join(format!("rustyray-timeline-{}.json", std::process::id()));
    rt.write_timeline(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let json: serde_json::Value = serde_json::from_str(&written).expect("the timeline is JSON");
    let events = json["traceEvents"].as_array().expect("a traceEvents array");

    let slices: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(slices.len(), 7, "one slice per attempt");
    for slice in &slices {
        assert!(slice["ts"].is_f64() || slice["ts"].is_u64());
        assert!(slice["dur"].as_f64().is_some_and(|d| d >= 0.0));
        assert!(slice["tid"].as_u64().is_some());
    }
    let chained = slices.iter().find(|s| s["name"] == "chained").expect("named slices carry the name");
    assert_eq!(chained["args"]["function"], "observability::square");
    assert_eq!(chained["args"]["outcome"], "succeeded");

    let lanes: Vec<&str> =
        events.iter().filter(|e| e["name"] == "thread_name").filter_map(|e| e["args"]["name"].as_str()).collect();
    assert!(lanes.iter().any(|l| l.starts_with("cpu slot")), "{lanes:?}");
    assert!(lanes.iter().any(|l| l.starts_with("async")), "{lanes:?}");
    assert!(lanes.iter().filter(|l| l.starts_with("cpu slot")).count() <= 2, "no more CPU lanes than CPUs");

    // `chained` took `total` as its argument: one arrow from one to the other.
    let flows: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "dependency").collect();
    assert_eq!(flows.len(), 2, "{flows:?}");
    let start = flows.iter().find(|f| f["ph"] == "s").expect("an arrow start");
    let finish = flows.iter().find(|f| f["ph"] == "f").expect("an arrow end");
    assert_eq!(start["id"], finish["id"]);
    assert_eq!(finish["tid"], chained["tid"]);
    let sum_slice = slices.iter().find(|s| s["args"]["function"] == "observability::sum").expect("the sum slice");
    assert_eq!(start["tid"], sum_slice["tid"]);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_the_lifecycle_in_order() {
    let rt = runtime();
    let mut events = rt.subscribe();
    rt.scope(async {
        let flaky = fails_once::options().max_retries(1).remote();
        assert_eq!(flaky.get().await.unwrap(), 7);
        let slow = sleeper::remote(10_000u64);
        slow.cancel();
        let tally = Tally::remote();
        tally.ready().await.unwrap();
        // Events are the manager's view: let it hear of the construction
        // before the kill, or the actor dies without having started for it.
        rt.wait_idle().await;
        rustyray::kill(&tally);
    })
    .await;
    rt.wait_idle().await;
    rt.shutdown().await;
    let seen: Vec<EventKind> = events.by_ref().map(|e| e.kind).collect().await;

    let flaky: Vec<&str> = seen
        .iter()
        .filter_map(|kind| match kind {
            EventKind::TaskSubmitted { function, .. } if function.name().ends_with("fails_once") => Some("submitted"),
            EventKind::TaskStarted { function, .. } if function.name().ends_with("fails_once") => Some("started"),
            EventKind::TaskRetried { function, error, .. } if function.name().ends_with("fails_once") => {
                assert!(error.contains("first attempt fails"), "{error}");
                Some("retried")
            }
            EventKind::TaskSucceeded { function, attempts, .. } if function.name().ends_with("fails_once") => {
                assert_eq!(*attempts, 2);
                Some("succeeded")
            }
            _ => None,
        })
        .collect();
    assert_eq!(flaky, ["submitted", "started", "retried", "started", "succeeded"]);
    assert!(
        seen.iter()
            .any(|k| matches!(k, EventKind::TaskCancelled { function, .. } if function.name().ends_with("sleeper")))
    );
    assert!(seen.iter().any(|k| matches!(k, EventKind::ActorStarted { class, .. } if class.ends_with("Tally"))));
    assert!(seen.iter().any(
        |k| matches!(k, EventKind::ActorDied { class, reason, .. } if class.ends_with("Tally") && *reason == DeathReason::Killed)
    ));
    assert_eq!(events.missed(), 0);
}

#[tokio::test]
async fn an_event_capacity_past_the_most_is_refused_not_a_panic_at_subscribe() {
    for events in [usize::MAX, (1 << 24) + 1] {
        let error = Runtime::builder().event_capacity(events).build().map(|_| ()).unwrap_err();
        assert!(matches!(error, rustyray::BuildError::InvalidOption { option: "event_capacity", .. }), "{error}");
    }
    let rt = Runtime::builder().event_capacity(1 << 24).build().unwrap();
    drop(rt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_hold_the_runtime_back() {
    let rt = Runtime::builder().num_cpus(2).event_capacity(8).build().unwrap();
    let mut events = rt.subscribe();
    rt.scope(async {
        let refs: Vec<ObjectRef<u64>> = (0..1000).map(square::remote).collect();
        assert_eq!(rustyray::get_all(&refs).await.unwrap().len(), 1000);
    })
    .await;
    rt.wait_idle().await;
    let first = events.recv().await.map(|e| e.kind);
    let missed = match first {
        Some(EventKind::Lagged { missed }) => missed,
        other => panic!("expected a lag notice first, got {other:?}"),
    };
    assert!(missed > 1000, "3 events per task were sent, 8 kept: {missed}");
    assert_eq!(events.missed(), missed);
    #[cfg(feature = "metrics")]
    assert!(rt.metrics_text().contains(&format!("rustyray_events_dropped_total {missed}")));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_stay_out_of_state_events_and_timeline_unless_a_call_opts_in() {
    let rt = runtime();
    let mut events = rt.subscribe();
    let secret = "hunter2-secret";
    let (hidden, shown) = rt
        .scope(async {
            let hidden = login::options().name("hidden").remote("alice".to_string(), secret.to_string());
            let shown = login::options().name("shown").record_args(true).remote("bob".to_string(), "open".to_string());
            (hidden.get().await.unwrap(), shown.get().await.unwrap())
        })
        .await;
    assert_eq!((hidden, shown), (19, 7));
    rt.wait_idle().await;
    rt.shutdown().await;

    let tasks = rt.tasks_where(&TaskFilter { function: Some("observability::login".into()), ..Default::default() });
    assert_eq!(tasks.len(), 2);
    let hidden_info = tasks.iter().find(|t| t.name.as_deref() == Some("hidden")).unwrap();
    let shown_info = tasks.iter().find(|t| t.name.as_deref() == Some("shown")).unwrap();
    assert_eq!(hidden_info.args, None);
    assert!(!format!("{hidden_info:?}").contains(secret));
    assert_eq!(shown_info.args.as_deref(), Some(r#"("bob", "open")"#));

    let seen: Vec<String> = events.by_ref().map(|e| format!("{e:?}")).collect().await;
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|e| !e.contains(secret)));
    assert!(seen.iter().any(|e| e.contains(r#"(\"bob\", \"open\")"#)), "{seen:#?}");
    let timeline = rt.timeline();
    assert!(!timeline.contains(secret));
    assert!(timeline.contains(r#"(\"bob\", \"open\")"#));
}
