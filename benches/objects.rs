//! The object store: put, get, large objects, objects holding refs, wait,
//! and passing objects to `&T` parameters, each beside the cost of the plain
//! Rust operation it replaces.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustyray::prelude::*;

#[rustyray::remote]
async fn small_value() -> u64 {
    1
}

#[rustyray::remote]
fn first(bytes: &[u8]) -> u8 {
    bytes[0]
}

const HUNDRED_MB: usize = 100 << 20;

fn objects(c: &mut Criterion) {
    let tokio = common::tokio_runtime();
    let rt = common::rustyray_runtime(&tokio);

    let mut group = c.benchmark_group("single client put calls");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rustyray", |b| b.iter(|| rt.put(black_box(1u64))));
    group.bench_function("baseline: Arc::new", |b| b.iter(|| Arc::new(black_box(1u64))));
    group.finish();

    let mut group = c.benchmark_group("single client get calls");
    group.throughput(Throughput::Elements(1));
    let stored = rt.put(1u64);
    group.bench_function("rustyray", |b| b.to_async(&tokio).iter(|| async { stored.get().await.unwrap() }));
    let shared = Arc::new(1u64);
    group.bench_function("baseline: Arc clone + read", |b| b.iter(|| *black_box(shared.clone())));
    group.finish();

    let mut group = c.benchmark_group("single client put gigabytes");
    group.throughput(Throughput::Bytes(HUNDRED_MB as u64));
    group.sample_size(10);
    group.bench_function("rustyray (put moves the value in)", |b| {
        b.iter_batched(|| vec![7u8; HUNDRED_MB], |data| rt.put(data), criterion::BatchSize::PerIteration)
    });
    group.bench_function("baseline: one copy of 100 MB", |b| {
        let source = vec![7u8; HUNDRED_MB];
        b.iter_batched(
            || vec![0u8; HUNDRED_MB],
            |mut target| target.copy_from_slice(&source),
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("single client get object containing 10k refs");
    group.throughput(Throughput::Elements(1));
    let refs: Vec<ObjectRef<u64>> = (0..10_000).map(|i| rt.put(i)).collect();
    let holder = rt.put(refs.clone());
    group.bench_function("rustyray", |b| b.to_async(&tokio).iter(|| async { holder.get().await.unwrap().len() }));
    group.bench_function("baseline: clone a Vec of 10k Arcs", |b| {
        let arcs: Vec<Arc<u64>> = (0..10_000).map(Arc::new).collect();
        b.iter(|| black_box(arcs.clone()).len())
    });
    group.finish();

    let mut group = c.benchmark_group("single client wait 1k refs");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| {
            rt.scope(async {
                let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| small_value::remote()).collect();
                let (ready, _) = rustyray::wait(&refs, 1000, None).await;
                ready.len()
            })
        })
    });
    group.bench_function("baseline: tokio spawn + join all", |b| {
        b.to_async(&tokio).iter(|| async {
            let handles: Vec<_> = (0..1000).map(|_| tokio::spawn(async { 1u64 })).collect();
            futures::future::join_all(handles).await.len()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("pass an object to a &T parameter");
    group.throughput(Throughput::Elements(1));
    let small = rt.put(vec![1u8; 1 << 10]);
    let large = rt.put(vec![1u8; HUNDRED_MB]);
    group.bench_function("rustyray, 100 MB object", |b| {
        b.to_async(&tokio).iter(|| rt.scope(async { first::remote(&large).get().await.unwrap() }))
    });
    group.bench_function("baseline: rustyray, 1 KB object", |b| {
        b.to_async(&tokio).iter(|| rt.scope(async { first::remote(&small).get().await.unwrap() }))
    });
    group.finish();

    let mut group = c.benchmark_group("get a 100 MB object");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.bench_function("rustyray, get (a copy)", |b| {
        b.to_async(&tokio).iter(|| async { large.get().await.unwrap().len() })
    });
    group.bench_function("rustyray, get_shared (no copy)", |b| {
        b.to_async(&tokio).iter(|| async { large.get_shared().await.unwrap().len() })
    });
    group.bench_function("baseline: rustyray get_shared, 1 KB object", |b| {
        b.to_async(&tokio).iter(|| async { small.get_shared().await.unwrap().len() })
    });
    group.finish();
}

criterion_group! { name = benches; config = common::criterion(); targets = objects }
criterion_main!(benches);
