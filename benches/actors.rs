//! Actor calls, shaped like Ray's `ray microbenchmark` actor rows, each beside
//! a bare tokio actor: a task owning its state, fed by an mpsc channel,
//! answering through a oneshot per call.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustyray::prelude::*;
use tokio::sync::{mpsc, oneshot};

#[rustyray::actor]
pub struct Counter {
    n: u64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn small_value(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    pub async fn small_value_async(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    pub async fn read(&self) -> u64 {
        self.n
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// The baseline: an actor as a tokio task with an mpsc mailbox and a oneshot per reply.
fn bare_actor(tokio: &tokio::runtime::Runtime) -> mpsc::UnboundedSender<oneshot::Sender<u64>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<u64>>();
    tokio.spawn(async move {
        let mut n = 0u64;
        while let Some(reply) = rx.recv().await {
            n += 1;
            let _ = reply.send(n);
        }
    });
    tx
}

async fn bare_calls(actor: &mpsc::UnboundedSender<oneshot::Sender<u64>>, calls: usize) -> u64 {
    let replies: Vec<oneshot::Receiver<u64>> = (0..calls)
        .map(|_| {
            let (tx, rx) = oneshot::channel();
            let _ = actor.send(tx);
            rx
        })
        .collect();
    let mut last = 0;
    for reply in replies {
        last = reply.await.unwrap_or(0);
    }
    last
}

fn actors(c: &mut Criterion) {
    let tokio = common::tokio_runtime();
    let rt = common::rustyray_runtime(&tokio);
    let (counter, concurrent, many) = tokio.block_on(rt.scope(async {
        let counter = Counter::remote();
        let concurrent = Counter::options().max_concurrency(16).remote();
        let many: Vec<ActorHandle<Counter>> = (0..4).map(|_| Counter::remote()).collect();
        counter.ready().await.unwrap();
        concurrent.ready().await.unwrap();
        for a in &many {
            a.ready().await.unwrap();
        }
        (counter, concurrent, many)
    }));
    let bare = bare_actor(&tokio);
    let bares: Vec<_> = (0..4).map(|_| bare_actor(&tokio)).collect();

    let mut group = c.benchmark_group("1:1 actor calls sync");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| async { counter.small_value().get().await.unwrap() })
    });
    group.bench_function("baseline: mpsc + oneshot actor", |b| b.to_async(&tokio).iter(|| bare_calls(&bare, 1)));
    group.finish();

    let mut group = c.benchmark_group("1:1 actor calls async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| async {
            let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| counter.small_value()).collect();
            rustyray::get_all(&refs).await.unwrap()
        })
    });
    group.bench_function("baseline: mpsc + oneshot actor", |b| b.to_async(&tokio).iter(|| bare_calls(&bare, 1000)));
    group.finish();

    let mut group = c.benchmark_group("1:1 async-actor calls async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| async {
            let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| counter.small_value_async()).collect();
            rustyray::get_all(&refs).await.unwrap()
        })
    });
    group.bench_function("baseline: mpsc + oneshot actor", |b| b.to_async(&tokio).iter(|| bare_calls(&bare, 1000)));
    group.finish();

    let mut group = c.benchmark_group("1:1 actor calls concurrent");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| async {
            let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| concurrent.read()).collect();
            rustyray::get_all(&refs).await.unwrap()
        })
    });
    group.bench_function("baseline: mpsc + oneshot actor", |b| b.to_async(&tokio).iter(|| bare_calls(&bare, 1000)));
    group.finish();

    let mut group = c.benchmark_group("1:n actor calls async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| async {
            let refs: Vec<ObjectRef<u64>> = (0..1000).map(|i| many[i % many.len()].small_value()).collect();
            rustyray::get_all(&refs).await.unwrap()
        })
    });
    group.bench_function("baseline: mpsc + oneshot actors", |b| {
        b.to_async(&tokio).iter(|| async {
            let replies: Vec<oneshot::Receiver<u64>> = (0..1000)
                .map(|i| {
                    let (tx, rx) = oneshot::channel();
                    let _ = bares[i % bares.len()].send(tx);
                    rx
                })
                .collect();
            for reply in replies {
                let _ = reply.await;
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("n:n actor calls async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| async {
            let clients: Vec<_> = many
                .iter()
                .map(|actor| {
                    let actor = actor.clone();
                    tokio::spawn(async move {
                        let refs: Vec<ObjectRef<u64>> = (0..250).map(|_| actor.small_value()).collect();
                        rustyray::get_all(&refs).await.unwrap().len()
                    })
                })
                .collect();
            for client in clients {
                let _ = client.await;
            }
        })
    });
    group.bench_function("baseline: mpsc + oneshot actors", |b| {
        b.to_async(&tokio).iter(|| async {
            let clients: Vec<_> = bares
                .iter()
                .map(|actor| {
                    let actor = actor.clone();
                    tokio::spawn(async move { bare_calls(&actor, 250).await })
                })
                .collect();
            for client in clients {
                let _ = client.await;
            }
        })
    });
    group.finish();
    drop((counter, concurrent, many));
    tokio.block_on(rt.shutdown());
}

criterion_group! { name = benches; config = common::criterion(); targets = actors }
criterion_main!(benches);
