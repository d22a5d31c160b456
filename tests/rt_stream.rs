//! Streaming tasks: `#[remote(streaming)]` functions send items through a
//! `Yield<T>`; the caller reads them from an `ObjectStream<T>` as they come.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use futures::StreamExt;
use rustyray::prelude::*;
use rustyray::{ObjectStream, TaskState, Yield};
use tokio::sync::Notify;

#[rustyray::remote(streaming)]
async fn count(n: u64, out: Yield<u64>) -> rustyray::Result<()> {
    for i in 0..n {
        out.send(i).await?;
    }
    Ok(())
}

#[rustyray::remote(streaming)]
fn squares(n: u64, out: Yield<u64>) -> rustyray::Result<()> {
    for i in 0..n {
        out.send_blocking(i * i)?;
    }
    Ok(())
}

#[rustyray::remote(streaming)]
async fn fails_after(n: u64, out: Yield<u64>) -> Result<(), String> {
    for i in 0..n {
        out.send(i).await.map_err(|e| e.to_string())?;
    }
    Err(format!("broke after {n}"))
}

#[rustyray::remote(streaming)]
async fn endless(out: Yield<u64>) -> rustyray::Result<()> {
    let mut i = 0;
    loop {
        out.send(i).await?;
        i += 1;
    }
}

#[rustyray::remote]
fn first_of(n: u64) -> u64 {
    n
}

static SENT: AtomicUsize = AtomicUsize::new(0);

#[rustyray::remote(streaming)]
async fn counted(n: usize, out: Yield<usize>) -> rustyray::Result<()> {
    for i in 0..n {
        out.send(i).await?;
        SENT.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

static RETRY_CALLS: AtomicU32 = AtomicU32::new(0);
static SECOND_ATTEMPT: Notify = Notify::const_new();

#[rustyray::remote(streaming)]
async fn restarts(out: Yield<u32>) -> Result<(), String> {
    let call = RETRY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call == 1 {
        out.send(1).await.map_err(|e| e.to_string())?;
        out.send(2).await.map_err(|e| e.to_string())?;
        return Err("first attempt fails after two items".into());
    }
    SECOND_ATTEMPT.notify_one();
    for item in [10, 20, 30] {
        out.send(item).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

static NO_RETRY_CALLS: AtomicU32 = AtomicU32::new(0);
static FIRST_READ: Notify = Notify::const_new();

#[rustyray::remote(streaming)]
async fn fails_once_read(out: Yield<u32>) -> Result<(), String> {
    NO_RETRY_CALLS.fetch_add(1, Ordering::SeqCst);
    out.send(1).await.map_err(|e| e.to_string())?;
    FIRST_READ.notified().await;
    Err("failed after an item was read".into())
}

async fn values<T: Clone + Send + Sync + 'static>(stream: &mut ObjectStream<T>) -> rustyray::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.get().await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_arrive_in_order_and_the_stream_ends() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = count::remote(1000u64);
        assert_eq!(values(&mut stream).await.unwrap(), (0..1000).collect::<Vec<u64>>());
        assert!(stream.next().await.is_none(), "reading past the end returns None");
        assert!(stream.next().await.is_none());

        let plain: Vec<u64> =
            squares::options().buffer(2).remote(50u64).then(|r| async move { r.get().await.unwrap() }).collect().await;
        assert_eq!(plain, (0..50).map(|i| i * i).collect::<Vec<u64>>());
    })
    .await;
    rt.wait_idle().await;
    assert_eq!(rt.objects(), 0, "every item was freed with its ref");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_generator_waiting_on_a_full_buffer_gives_its_cpu_back() {
    // One CPU: the plain generator blocks on its full buffer; the consumer,
    // a plain task, needs that CPU to read.
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let mut stream = squares::options().buffer(1).remote(20u64);
        let mut seen = Vec::new();
        while let Some(item) = stream.next().await {
            seen.push(first_of::remote(item).get().await.unwrap());
        }
        assert_eq!(seen, (0..20).map(|i| i * i).collect::<Vec<u64>>());
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_items_never_exceed_the_buffer() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        const BUFFER: usize = 4;
        let mut stream = counted::options().buffer(BUFFER).remote(200usize);
        let mut read = 0;
        while let Some(item) = stream.next().await {
            read += 1;
            tokio::task::yield_now().await;
            let sent = SENT.load(Ordering::SeqCst);
            assert!(sent <= read + BUFFER, "{sent} sent with only {read} read and a buffer of {BUFFER}");
            assert_eq!(item.get().await.unwrap(), read - 1);
        }
        assert_eq!(read, 200);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_stream_is_the_last_item() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = fails_after::remote(3u64);
        for expected in 0..3u64 {
            assert_eq!(stream.next().await.unwrap().get().await.unwrap(), expected);
        }
        match stream.next().await.expect("the error comes as an item").get().await {
            Err(Error::TaskFailed { message, .. }) => assert_eq!(message, "broke after 3"),
            other => panic!("expected the generator's failure, got {other:?}"),
        }
        assert!(stream.next().await.is_none(), "the error ends the stream");
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_mid_way_cancels_the_generator() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let task = rt
        .scope(async {
            let mut stream = endless::remote();
            assert_eq!(stream.next().await.unwrap().get().await.unwrap(), 0);
            assert_eq!(stream.next().await.unwrap().get().await.unwrap(), 1);
            let task = stream.task().unwrap();
            drop(stream);
            task
        })
        .await;
    rt.wait_idle().await;
    assert_eq!(rt.task(task).unwrap().state, TaskState::Cancelled);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_stream_and_the_generator() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = endless::remote();
        assert_eq!(stream.next().await.unwrap().get().await.unwrap(), 0);
        stream.cancel();
        assert!(stream.next().await.is_none());
        rt.wait_idle().await;
        assert_eq!(rt.task(stream.task().unwrap()).unwrap().state, TaskState::Cancelled);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_before_any_read_retries_from_the_start() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = restarts::options().max_retries(1).buffer(8).remote();
        SECOND_ATTEMPT.notified().await;
        assert_eq!(values(&mut stream).await.unwrap(), vec![10, 20, 30], "the failed attempt's items are gone");
        assert_eq!(RETRY_CALLS.load(Ordering::SeqCst), 2);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_a_read_is_not_retried() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = fails_once_read::options().max_retries(3).remote();
        assert_eq!(stream.next().await.unwrap().get().await.unwrap(), 1);
        FIRST_READ.notify_one();
        match stream.next().await.expect("the error comes as an item").get().await {
            Err(Error::TaskFailed { message, attempts, .. }) => {
                assert_eq!(message, "failed after an item was read");
                assert_eq!(attempts, 1);
            }
            other => panic!("expected the generator's failure, got {other:?}"),
        }
        assert!(stream.next().await.is_none());
        assert_eq!(NO_RETRY_CALLS.load(Ordering::SeqCst), 1, "no retry once an item was read");
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_zero_buffer_is_an_invalid_option() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let mut stream = count::options().buffer(0).remote(3u64);
        let error = stream.next().await.unwrap().get().await.unwrap_err();
        assert!(matches!(error, Error::InvalidOption { option: "buffer", .. }), "{error}");
        assert!(stream.next().await.is_none());
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_of_usize_max_is_no_bound_and_no_panic() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = count::options().buffer(usize::MAX).remote(100u64);
        assert_eq!(values(&mut stream).await.unwrap(), (0..100).collect::<Vec<u64>>());
    })
    .await;
}

/// Sends for ever from a plain body, which a timeout cannot interrupt.
#[rustyray::remote(streaming)]
fn ticks(out: Yield<u64>) -> rustyray::Result<()> {
    let mut i = 0;
    loop {
        out.send_blocking(i)?;
        i += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_plain_generator_ends_its_stream_with_the_timeout() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut stream = ticks::options().timeout(std::time::Duration::from_millis(100)).remote();
        // A consumer slower than the producer: the buffer is always full.
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            let mut last = None;
            while let Some(item) = stream.next().await {
                last = Some(item.get().await);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            last
        })
        .await
        .expect("the stream ended");
        let error = read.expect("items, then the error").unwrap_err();
        assert!(matches!(error, rustyray::Error::TimedOut { .. }), "{error}");
    })
    .await;
}

/// Sends two items once a moment has passed, so its consumer waits first.
#[rustyray::remote(streaming)]
async fn after_a_moment(out: Yield<u64>) -> rustyray::Result<()> {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    out.send(1).await?;
    out.send(2).await?;
    Ok(())
}

/// Reads the first item (waiting for it, its CPU lent out meanwhile), then
/// says how many CPUs are free while it computes.
#[rustyray::remote]
fn consume_then_compute() -> f64 {
    let mut stream = after_a_moment::remote();
    let first = futures::executor::block_on(stream.next()).expect("an item");
    assert_eq!(first.get_blocking().unwrap(), 1);
    let rt = Runtime::current().expect("a runtime");
    // The manager hears that the wait ended in a message of its own: look
    // until it has, within a bound.
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rt.load().0 != 1.0 && std::time::Instant::now() < bound {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    rt.load().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_consumer_holds_its_cpu_again_once_an_item_came() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        // Two CPUs, the consumer holds one while it computes.
        assert_eq!(consume_then_compute::remote().get().await.unwrap(), 1.0);
    })
    .await;
}
