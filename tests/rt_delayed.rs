//! Delayed tasks: `f::options().run_after(d)` / `.run_at(t)` hold a task in
//! the runtime's timer queue, in state `Delayed`, until its start time.

use std::time::{Duration, SystemTime};

use rustyray::prelude::*;
use rustyray::{TaskId, TaskState};

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
async fn add_async(a: i64, b: i64) -> i64 {
    a + b
}

/// Waits until the runtime has taken `task` in and it is in `state`.
async fn until_state(rt: &Runtime, task: TaskId, state: TaskState) {
    while rt.task(task).is_none_or(|info| info.state != state) {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_task_waits_in_its_own_state_and_can_be_cancelled() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let held = add::options().run_after(Duration::from_secs(3600)).remote(1, 2);
        let dependent = add::remote(&held, 1);
        let task = held.task().unwrap();
        until_state(&rt, task, TaskState::Delayed).await;
        assert!(!held.is_ready());
        assert_eq!(rt.task(task).unwrap().state.as_str(), "DELAYED");
        // The dependent waits for the held task's object, in its own state.
        until_state(&rt, dependent.task().unwrap(), TaskState::PendingArgs).await;

        rustyray::cancel(&held);
        assert!(held.get().await.unwrap_err().is_cancelled());
        assert!(dependent.get().await.unwrap_err().is_cancelled());
        rt.wait_idle().await;
        let info = rt.task(task).unwrap();
        assert_eq!(info.state, TaskState::Cancelled);
        assert!(info.attempts.is_empty(), "it never ran");
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_task_runs_no_earlier_than_its_start_time() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let delay = Duration::from_millis(100);
        let plain = add::options().run_after(delay).remote(1, 2);
        let at = SystemTime::now() + delay;
        let timed = add_async::options().run_at(at).remote(&plain, 10);
        assert_eq!(timed.get().await.unwrap(), 13);
        let info = rt.task(plain.task().unwrap()).unwrap();
        assert!(info.attempts[0].started_at >= info.submitted_at + delay, "it did not start early");
        let info = rt.task(timed.task().unwrap()).unwrap();
        assert_eq!(info.attempts.len(), 1);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_start_time_already_past_runs_at_once() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let past = SystemTime::now() - Duration::from_secs(60);
        let r = add::options().run_at(past).remote(2, 3);
        assert_eq!(r.get().await.unwrap(), 5);
        let zero = add::options().run_after(Duration::ZERO).remote(2, 2);
        assert_eq!(zero.get().await.unwrap(), 4);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_a_task_still_held() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    let held = rt.scope(async { add::options().run_after(Duration::from_secs(3600)).remote(1, 1) }).await;
    until_state(&rt, held.task().unwrap(), TaskState::Delayed).await;
    rt.shutdown().await;
    assert!(matches!(held.get().await, Err(Error::RuntimeShutdown)));
}
