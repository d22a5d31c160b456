//! Tasks that submit tasks and wait for them: on a 2-CPU runtime, nested
//! waits must never deadlock the pool, whether the body is plain
//! (`get_blocking`) or async (`.get().await`), and plain nesting must not need
//! a thread per waiting task.

use rustyray::prelude::*;

#[rustyray::remote]
fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = fib::remote(n - 1);
    let b = fib::remote(n - 2);
    rustyray::get_blocking(&a).unwrap_or(0) + rustyray::get_blocking(&b).unwrap_or(0)
}

#[rustyray::remote]
async fn fib_async(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = fib_async::remote(n - 1);
    let b = fib_async::remote(n - 2);
    a.get().await.unwrap_or(0) + b.get().await.unwrap_or(0)
}

/// An async body that holds a CPU (as a plain body does) while it recurses:
/// waiting gives the CPU back.
#[rustyray::remote]
async fn fib_async_cpu(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = fib_async_cpu::options().num_cpus(1.0).remote(n - 1);
    let b = fib_async_cpu::options().num_cpus(1.0).remote(n - 2);
    let (ready, _) = rustyray::wait([&a, &b], 2, None).await;
    assert_eq!(ready.len(), 2);
    a.get().await.unwrap_or(0) + b.get().await.unwrap_or(0)
}

fn fib_plain(n: u64) -> u64 {
    if n < 2 { n } else { fib_plain(n - 1) + fib_plain(n - 2) }
}

/// Awaits `work`, failing the test (rather than hanging the test run) if a
/// lost wake-up keeps it from finishing.
async fn finishes<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(120), work).await.expect("the task graph finished")
}

/// The threads that ran a [`fib_counted`] body (this test's alone: other
/// tests run in the same process, with threads of their own).
static FIB_THREADS: std::sync::Mutex<Vec<std::thread::ThreadId>> = std::sync::Mutex::new(Vec::new());

/// [`fib`], noting each thread that runs a body.
#[rustyray::remote]
fn fib_counted(n: u64) -> rustyray::Result<u64> {
    let me = std::thread::current().id();
    if let Ok(mut threads) = FIB_THREADS.lock()
        && !threads.contains(&me)
    {
        threads.push(me);
    }
    if n < 2 {
        return Ok(n);
    }
    let a = fib_counted::remote(n - 1);
    let b = fib_counted::remote(n - 2);
    Ok(a.get_blocking()? + b.get_blocking()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_recursion_finishes_on_two_cpus_with_bounded_threads() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let result = finishes(rt.scope(async { fib_counted::remote(18).get().await })).await.unwrap();
    assert_eq!(result, fib_plain(18));
    let submitted = rt.stats().submitted;
    assert_eq!(submitted, 8361, "fib(18) is 8361 tasks");
    let inline = rt.tasks().iter().filter(|t| t.attempts.iter().any(|a| a.inline)).count();
    assert!(inline > 0, "queued children were run inline by their waiting parents");
    // Thousands of tasks waited; far fewer threads ran them.
    let threads = FIB_THREADS.lock().map(|threads| threads.len()).unwrap_or(usize::MAX);
    assert!(threads < 200, "{threads} threads ran {submitted} nested tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_recursion_finishes_on_two_cpus() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let result = finishes(rt.scope(async { fib_async::remote(16).get().await })).await.unwrap();
    assert_eq!(result, fib_plain(16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_recursion_holding_cpus_gives_them_back_while_waiting() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let result =
        finishes(rt.scope(async { fib_async_cpu::options().num_cpus(1.0).remote(12).get().await })).await.unwrap();
    assert_eq!(result, fib_plain(12));
}

#[tokio::test(flavor = "current_thread")]
async fn nested_plain_tasks_work_on_a_current_thread_runtime() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let result = finishes(rt.scope(async { fib::remote(10).get().await })).await;
    assert_eq!(result.unwrap(), 55);
}

#[tokio::test(flavor = "current_thread")]
async fn get_blocking_on_a_single_threaded_async_worker_is_an_error_not_a_deadlock() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let pending = never::remote();
        assert!(matches!(pending.get_blocking(), Err(Error::WouldBlock)));
        rustyray::cancel(&pending);
    })
    .await;
}

#[rustyray::remote]
async fn never() -> u8 {
    std::future::pending::<()>().await;
    0
}

/// Opened by the task that waits twice, once its first wait has ended.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[rustyray::remote]
async fn gate() -> u64 {
    GATE.notified().await;
    1
}

#[rustyray::remote]
fn one() -> u64 {
    1
}

#[rustyray::remote]
fn plus_one(x: u64) -> u64 {
    x + 1
}

/// Waits for two refs at once. The second can only become ready (and then
/// needs the only CPU) after the first wait has ended.
#[rustyray::remote]
async fn two_waits_at_once() -> u64 {
    let first = one::remote();
    let second = plus_one::remote(gate::remote());
    let first_then_open = async {
        let value = first.get().await;
        GATE.notify_one();
        value
    };
    let (a, b) = futures::join!(first_then_open, second.get());
    a.unwrap_or(0) + b.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_two_open_waits_keeps_its_cpu_given_back_until_both_end() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    let result = finishes(rt.scope(async { two_waits_at_once::options().num_cpus(1.0).remote().get().await })).await;
    assert_eq!(result.unwrap(), 3);
    // Every CPU is back once the task is done.
    rt.wait_idle().await;
    assert_eq!(rt.load().0, 1.0);
}
