//! Task graphs through the public API: values and refs as arguments, fan-in,
//! fan-out, failure propagation, panics, `&T` parameters, async and plain bodies.

use std::sync::Arc;
use std::time::Duration;

use rustyray::prelude::*;

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
async fn add_later(a: i64, b: i64) -> i64 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    a + b
}

#[rustyray::remote]
fn sum(values: Vec<i64>) -> i64 {
    values.iter().sum()
}

#[rustyray::remote]
fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 { Err(format!("cannot divide {a} by zero")) } else { Ok(a / b) }
}

#[rustyray::remote]
async fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
    text.parse::<i64>()
}

#[rustyray::remote]
fn explode(x: i64) -> i64 {
    if x >= 0 {
        panic!("exploded on {x}");
    }
    x
}

/// Suspends once (so its attempt goes on in a task of its own), then
/// panics for a positive `x`.
#[rustyray::remote]
async fn explode_after_suspending(x: i64) -> i64 {
    tokio::task::yield_now().await;
    if x > 0 {
        panic!("exploded after suspending on {x}");
    }
    x
}

#[rustyray::remote]
fn length(text: &str) -> usize {
    text.len()
}

#[rustyray::remote]
fn first_byte(bytes: &[u8]) -> u8 {
    bytes[0]
}

#[rustyray::remote]
#[allow(clippy::ptr_arg)] // `&Vec<T>` parameters are supported as written
async fn byte_at(bytes: &Vec<u8>, index: usize) -> u8 {
    bytes[index]
}

#[rustyray::remote]
fn unit() {}

#[rustyray::remote]
fn zero_args() -> &'static str {
    "none"
}

/// Asserts that `error` is a caught panic whose message holds `text`.
fn assert_panicked_with(error: &Error, text: &str) {
    match error {
        Error::TaskPanicked { message, .. } => assert!(message.contains(text), "{message}"),
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
}

fn runtime(cpus: usize) -> Runtime {
    Runtime::builder().num_cpus(cpus).build().expect("a runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_chain_into_graphs() -> rustyray::Result<()> {
    let rt = runtime(2);
    rt.scope(async {
        let a: ObjectRef<i64> = add::remote(1, 2);
        let b = add::remote(&a, 10);
        let c = add::remote(a, b.clone());
        assert_eq!(rustyray::get(&b).await?, 13);
        assert_eq!(c.get().await?, 16);
        let d = add_later::remote(&c, add_later::remote(1, 1));
        assert_eq!(d.get().await?, 18);
        // The plain function stays callable.
        assert_eq!(add(2, 3), 5);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_and_fan_in() -> rustyray::Result<()> {
    let rt = runtime(2);
    rt.scope(async {
        let root = rustyray::put(5i64);
        let leaves: Vec<ObjectRef<i64>> = (0..100).map(|i| add::remote(&root, i)).collect();
        let values = rustyray::get_all(&leaves).await?;
        assert_eq!(values, (0..100).map(|i| i + 5).collect::<Vec<_>>());
        let total = sum::remote(values);
        assert_eq!(total.get().await?, (0..100).map(|i| i + 5).sum::<i64>());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn results_fail_the_task_with_the_error_message() {
    let rt = runtime(2);
    rt.scope(async {
        assert_eq!(checked_div::remote(9, 3).get().await.unwrap(), 3);
        let failed = checked_div::remote(1, 0);
        let error = failed.get().await.unwrap_err();
        match &error {
            Error::TaskFailed { origin, message, attempts, .. } => {
                assert_eq!(message, "cannot divide 1 by zero");
                assert_eq!(origin.function.name(), "rt_graph::checked_div");
                assert_eq!(Some(origin.task), failed.task());
                assert_eq!(*attempts, 1);
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        let parsed = parse::remote("x1".to_string()).get().await.unwrap_err();
        assert!(parsed.to_string().contains("invalid digit"), "{parsed}");
        assert!(matches!(parsed, Error::TaskFailed { error_type, .. } if error_type.contains("ParseIntError")));
        // An error type that implements std::error::Error is kept as the source;
        // a String error has only its text.
        let source = std::error::Error::source(&parsed).expect("the ParseIntError is kept as the source");
        let kept = source.downcast_ref::<std::num::ParseIntError>().expect("the source is the body's own error");
        assert_eq!(kept, &"x1".parse::<i64>().unwrap_err());
        assert!(std::error::Error::source(&error).is_none(), "a String error has no source");
    })
    .await;
}

#[tokio::test]
async fn a_failure_reaches_every_dependent_naming_its_origin() {
    let rt = runtime(2);
    rt.scope(async {
        let bad = checked_div::remote(1, 0);
        let origin = bad.task().unwrap();
        let child = add::remote(&bad, 1);
        let grandchild = add::remote(&child, add::remote(1, 1));
        for r in [&child, &grandchild] {
            let error = r.get().await.unwrap_err();
            assert_eq!(error.origin().map(|o| o.task), Some(origin), "{error}");
            assert!(error.to_string().contains("checked_div"), "{error}");
        }
        // A dependent submitted after the failure fails at once, the same way.
        let late = add::remote(&bad, 2);
        assert_eq!(late.get().await.unwrap_err().origin().map(|o| o.task), Some(origin));
        let stats = rt.stats();
        assert_eq!(stats.failed, 4);
    })
    .await;
}

#[tokio::test]
async fn an_async_body_that_panics_after_suspending_fails_with_its_panic() {
    let rt = runtime(2);
    rt.scope(async {
        let error = explode_after_suspending::remote(4).get().await.unwrap_err();
        assert_panicked_with(&error, "exploded after suspending on 4");
        assert_eq!(explode_after_suspending::remote(-2).get().await.unwrap(), -2);
    })
    .await;
}

#[tokio::test]
async fn a_panic_becomes_the_task_error_and_the_runtime_lives_on() {
    let rt = runtime(2);
    rt.scope(async {
        let error = explode::remote(3).get().await.unwrap_err();
        assert_panicked_with(&error, "exploded on 3");
        assert_eq!(explode::remote(-1).get().await.unwrap(), -1);
        assert_eq!(add::remote(1, 1).get().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn reference_parameters_read_the_stored_object() {
    let rt = runtime(2);
    rt.scope(async {
        assert_eq!(length::remote("hello".to_string()).get().await.unwrap(), 5);
        let bytes = rustyray::put(vec![9u8, 8, 7]);
        assert_eq!(first_byte::remote(&bytes).get().await.unwrap(), 9);
        assert_eq!(byte_at::remote(&bytes, 2).get().await.unwrap(), 7);
        // The object is shared, not copied: the task saw the stored vector.
        let shared = bytes.get_shared().await.unwrap();
        let again = bytes.get_shared().await.unwrap();
        assert!(Arc::ptr_eq(&shared, &again));
    })
    .await;
}

#[tokio::test]
async fn unit_and_zero_argument_functions() {
    let rt = runtime(1);
    rt.scope(async {
        unit::remote().get().await.unwrap();
        assert_eq!(zero_args::remote().get().await.unwrap(), "none");
    })
    .await;
}

#[tokio::test]
async fn wait_returns_ready_and_pending_in_order() {
    let rt = runtime(2);
    rt.scope(async {
        let slow = add_later::options().remote(1, 1);
        let gate = rustyray::put(0i64);
        let fast: Vec<_> = (0..3).map(|i| add::remote(&gate, i)).collect();
        let mut all = fast.clone();
        all.insert(1, slow.clone());
        let (ready, pending) = rustyray::wait(&all, 3, None).await;
        assert_eq!(ready.len(), 3);
        assert_eq!(ready.len() + pending.len(), 4);
        let (ready, pending) = rustyray::wait(&all, 10, Some(Duration::from_secs(10))).await;
        assert_eq!(ready, all);
        assert!(pending.is_empty());
    })
    .await;
}

#[tokio::test]
async fn wait_gives_up_at_its_timeout() {
    let rt = runtime(1);
    rt.scope(async {
        let never: ObjectRef<i64> = add::remote(rustyray::put(1i64), 1);
        let parked = add_later::options().remote(&never, 1);
        rustyray::cancel(&never);
        let forever = slow_forever::remote();
        let (ready, pending) = rustyray::wait([&forever], 1, Some(Duration::from_millis(20))).await;
        assert!(ready.is_empty());
        assert_eq!(pending, vec![forever.clone()]);
        assert!(parked.get().await.unwrap_err().is_cancelled());
        rustyray::cancel(&forever);
    })
    .await;
}

#[rustyray::remote]
async fn slow_forever() -> i64 {
    std::future::pending::<()>().await;
    0
}

#[tokio::test]
async fn tasks_report_their_state() {
    let rt = runtime(2);
    rt.scope(async {
        let r = add::options().name("adder").remote(1, 2);
        r.get().await.unwrap();
        let info = rt.task(r.task().unwrap()).expect("kept");
        assert_eq!(info.state, rustyray::TaskState::Succeeded);
        assert_eq!(info.name.as_deref(), Some("adder"));
        assert_eq!(info.function.name(), "rt_graph::add");
        assert_eq!(info.attempts.len(), 1);
        assert!(info.error.is_none());
    })
    .await;
}

#[test]
fn submitting_without_a_runtime_fails_from_get_not_at_the_call() {
    let r = add::remote(1, 2);
    assert!(matches!(r.get_blocking(), Err(Error::NoRuntime)));
    assert!(matches!(rustyray::put(1u8).get_blocking(), Err(Error::NoRuntime)));
}

#[tokio::test]
async fn shutdown_fails_unfinished_and_later_work() {
    let rt = runtime(1);
    let (pending, done) = rt
        .scope(async {
            let done = add::remote(1, 1);
            done.get().await.unwrap();
            (slow_forever::remote(), done)
        })
        .await;
    rt.shutdown().await;
    assert!(rt.is_shut_down());
    assert!(matches!(pending.get().await, Err(Error::RuntimeShutdown)));
    assert_eq!(done.get().await.unwrap(), 2, "finished results stay readable");
    let later = rt.scope(async { add::remote(1, 1) }).await;
    assert!(matches!(later.get().await, Err(Error::RuntimeShutdown)));
    rt.shutdown().await;
}

#[tokio::test]
async fn put_after_shutdown_fails_like_every_other_submission() {
    let rt = runtime(1);
    let before = rt.put(7u8);
    rt.shutdown().await;
    assert_eq!(before.get().await.unwrap(), 7, "a value put before stays readable");
    assert!(matches!(rt.put(8u8).get().await, Err(Error::RuntimeShutdown)));
    let free = rt.scope(async { rustyray::put(9u8) }).await;
    assert!(matches!(free.get().await, Err(Error::RuntimeShutdown)));
    let call = rt.scope(async { add::remote(1, 1) }).await;
    assert!(matches!(call.get().await, Err(Error::RuntimeShutdown)));
}

#[tokio::test]
async fn runtimes_in_one_process_are_independent() {
    let first = runtime(1);
    let second = runtime(1);
    let a = first.scope(async { add::remote(1, 2) }).await;
    // A ref of one runtime may feed a task of another.
    let b = second.scope(async { add::remote(&a, 3) }).await;
    assert_eq!(b.get().await.unwrap(), 6);
    assert_eq!(first.stats().submitted, 1);
    assert_eq!(second.stats().submitted, 1);
    second.shutdown().await;
    assert!(!first.is_shut_down());
    assert_eq!(first.scope(async { add::remote(2, 2).get().await }).await.unwrap(), 4);
}

#[tokio::test]
async fn current_follows_the_scope_and_the_task() {
    let rt = runtime(1);
    assert!(Runtime::current().is_none_or(|current| current != rt));
    rt.scope(async {
        assert_eq!(Runtime::current(), Some(rt.clone()));
        let inside = where_am_i::remote().get().await.unwrap();
        assert!(inside, "a task's free functions use its own runtime");
    })
    .await;
}

#[rustyray::remote]
fn where_am_i() -> bool {
    Runtime::current().is_some() && rustyray::current_task().is_some()
}

/// An argument whose `Drop` panics.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a user's Drop that panics");
        }
    }
}

#[rustyray::remote]
fn with_grenade(x: i64, _grenade: Grenade) -> i64 {
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_of_arguments_that_never_ran_leaves_the_runtime_alive() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        // Its input fails, so its body never runs: the runtime drops its arguments.
        let never = with_grenade::remote(explode::remote(1), Grenade);
        assert!(never.get().await.is_err());
        // A task submitted after it still runs.
        assert_eq!(parse::remote("7".to_string()).get().await.unwrap(), 7);
    })
    .await;
    assert!(!rt.is_shut_down(), "the runtime lives on");
}
