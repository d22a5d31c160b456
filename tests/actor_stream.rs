//! Streaming actor methods: a method whose last parameter is a `Yield<T>`
//! returns an `ObjectStream<T>` from its handle, with the backpressure,
//! error, cancellation and ordering of streaming functions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustyray::prelude::*;
use rustyray::{ObjectStream, TaskState, Yield};

#[rustyray::actor]
pub struct Source {
    base: u64,
    sent: Arc<AtomicU64>,
}

#[rustyray::actor(concurrency_groups(io = 2))]
impl Source {
    pub fn new(base: u64) -> Self {
        Source { base, sent: Arc::default() }
    }

    /// Plain, exclusive: holds the actor until it returns.
    pub fn count(&mut self, n: u64, out: Yield<u64>) -> rustyray::Result<()> {
        for i in 0..n {
            out.send_blocking(self.base + i)?;
        }
        self.base += n;
        Ok(())
    }

    /// Async, shared, in the `io` group: parks only this call while the
    /// buffer is full.
    #[rustyray::method(concurrency_group = "io")]
    pub async fn endless(&self, out: Yield<u64>) -> rustyray::Result<()> {
        let mut i = 0;
        loop {
            out.send(i).await?;
            self.sent.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
    }

    /// Async, shared, in the `io` group.
    #[rustyray::method(concurrency_group = "io")]
    pub async fn labelled(&self, prefix: String, n: u64, out: Yield<String>) -> rustyray::Result<()> {
        for i in 0..n {
            out.send(format!("{prefix}{i}")).await?;
        }
        Ok(())
    }

    /// Async, exclusive: fails after `n` items.
    pub async fn fails_after(&mut self, n: u64, out: Yield<u64>) -> Result<(), String> {
        for i in 0..n {
            out.send(i).await.map_err(|e| e.to_string())?;
        }
        Err(format!("broke after {n}"))
    }

    /// Async, shared, in the default group.
    pub async fn peek(&self) -> u64 {
        self.base
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

async fn values<T: Clone + Send + Sync + 'static>(stream: &mut ObjectStream<T>) -> rustyray::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.get().await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_arrive_in_order_and_calls_keep_the_actors_order() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let source = Source::remote(100u64);
        // More items than the buffer holds: the plain method waits for the
        // reader; the next call runs after it, on the state it left.
        let mut first = source.count(40u64);
        let base = source.base();
        let mut second = source.count(3u64);
        assert_eq!(values(&mut first).await.unwrap(), (100..140).collect::<Vec<u64>>());
        assert!(first.next().await.is_none(), "reading past the end returns None");
        assert_eq!(base.get().await.unwrap(), 140, "the call after a streaming call sees its effect");
        assert_eq!(values(&mut second).await.unwrap(), vec![140, 141, 142]);

        let mut labels = source.labelled("x".to_string(), 3u64);
        assert_eq!(values(&mut labels).await.unwrap(), vec!["x0", "x1", "x2"]);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_stream_is_the_last_item() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let source = Source::remote(0u64);
        let mut stream = source.fails_after(3u64);
        let mut seen = Vec::new();
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item.get().await {
                Ok(value) => seen.push(value),
                Err(e) => error = Some(e),
            }
        }
        assert_eq!(seen, vec![0, 1, 2]);
        let error = error.expect("the failure comes as the last item");
        assert!(error.to_string().contains("broke after 3"), "{error}");
        assert_eq!(source.base().get().await.unwrap(), 0, "the actor lives on and takes its next call");
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_parks_only_its_own_call() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let source = Source::remote(5u64);
        let mut stream = source.endless();
        let first = stream.next().await.unwrap();
        assert_eq!(first.get().await.unwrap(), 0);
        // The generator is parked on its full buffer; async calls of its own
        // group (within the limit) and of the default group still run.
        assert_eq!(source.peek().get().await.unwrap(), 5);
        let mut labels = source.labelled("y".to_string(), 2u64);
        assert_eq!(values(&mut labels).await.unwrap(), vec!["y0", "y1"]);
        drop(stream);
        // Once the stream is gone the generator ends, and plain calls run.
        let sent = source.sent().get().await.unwrap();
        assert!(sent <= 1 + 16, "the buffer bounds what was sent and not read: {sent}");
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_cancels_the_call_and_the_actor_takes_its_next() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let source = Source::remote(0u64);
        // An exclusive plain generator blocked on its full buffer holds the actor.
        let mut stream = source.count(1_000_000u64);
        let first = stream.next().await.unwrap();
        assert_eq!(first.get().await.unwrap(), 0);
        let task = stream.task().unwrap();
        drop(stream);
        // The generator's next send fails: it returns, and the actor answers.
        assert!(source.base().get().await.is_ok());
        rt.wait_idle().await;
        assert_eq!(rt.task(task).unwrap().state, TaskState::Cancelled);

        let mut endless = source.endless();
        let task = endless.task().unwrap();
        assert_eq!(endless.next().await.unwrap().get().await.unwrap(), 0);
        endless.cancel();
        assert!(endless.next().await.is_none(), "a cancelled stream ends");
        rt.wait_idle().await;
        assert_eq!(rt.task(task).unwrap().state, TaskState::Cancelled);
        assert_eq!(source.base().get().await.unwrap(), 0);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_actor_ends_a_waiting_streaming_call_with_actor_died() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let source = Source::remote(0u64);
        // The first call holds the actor, blocked on its full buffer; the
        // second waits behind it.
        let mut running = source.count(1_000u64);
        assert_eq!(running.next().await.unwrap().get().await.unwrap(), 0);
        let mut waiting = source.count(3u64);
        rustyray::kill(&source);
        let last = waiting.next().await.expect("the death comes as the stream's one item");
        assert!(matches!(last.get().await, Err(Error::ActorDied { .. })), "{:?}", last.get().await);
        assert!(waiting.next().await.is_none());
        drop(running);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_function_is_not_callable_by_name() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    let bytes = rustyray::codec::encode(&(3u64,)).unwrap();
    let name = numbers::NAME;
    let error = rt.call_by_name(name, &bytes).get().await.unwrap_err();
    assert!(matches!(error, Error::FunctionNotFound { .. }), "{error}");
    rt.shutdown().await;
}

#[rustyray::remote(streaming)]
async fn numbers(n: u64, out: Yield<u64>) -> rustyray::Result<()> {
    for i in 0..n {
        out.send(i).await?;
    }
    Ok(())
}
