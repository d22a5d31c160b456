//! Remote function calls, shaped like Ray's `ray microbenchmark` task rows,
//! each beside its raw tokio baseline.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustyray::prelude::*;

#[rustyray::remote]
async fn small_value() -> u64 {
    1
}

#[rustyray::remote]
fn small_value_plain() -> u64 {
    1
}

fn tasks(c: &mut Criterion) {
    let tokio = common::tokio_runtime();
    let rt = common::rustyray_runtime(&tokio);

    let mut group = c.benchmark_group("single client tasks sync");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| rt.scope(async { small_value::remote().get().await.unwrap() }))
    });
    group.bench_function("baseline: tokio spawn + await", |b| {
        b.to_async(&tokio).iter(|| async { tokio::spawn(async { 1u64 }).await.unwrap() })
    });
    group.finish();

    let mut group = c.benchmark_group("single client tasks async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| {
            rt.scope(async {
                let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| small_value::remote()).collect();
                rustyray::get_all(&refs).await.unwrap()
            })
        })
    });
    group.bench_function("baseline: tokio spawn + await", |b| {
        b.to_async(&tokio).iter(|| async {
            let handles: Vec<_> = (0..1000).map(|_| tokio::spawn(async { 1u64 })).collect();
            let mut out = Vec::with_capacity(1000);
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
    });
    group.finish();

    let mut group = c.benchmark_group("single client plain tasks async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| {
            rt.scope(async {
                let refs: Vec<ObjectRef<u64>> = (0..1000).map(|_| small_value_plain::remote()).collect();
                rustyray::get_all(&refs).await.unwrap()
            })
        })
    });
    group.bench_function("baseline: spawn_blocking + await", |b| {
        b.to_async(&tokio).iter(|| async {
            let handles: Vec<_> = (0..1000).map(|_| tokio::task::spawn_blocking(|| 1u64)).collect();
            let mut out = Vec::with_capacity(1000);
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
    });
    group.finish();

    let mut group = c.benchmark_group("multi client tasks async");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| {
            rt.scope(async {
                let clients: Vec<_> = (0..4)
                    .map(|_| {
                        let rt = rt.clone();
                        tokio::spawn(async move {
                            rt.scope(async {
                                let refs: Vec<ObjectRef<u64>> = (0..250).map(|_| small_value::remote()).collect();
                                rustyray::get_all(&refs).await.unwrap().len()
                            })
                            .await
                        })
                    })
                    .collect();
                let mut n = 0;
                for client in clients {
                    n += client.await.unwrap();
                }
                n
            })
        })
    });
    group.bench_function("baseline: tokio spawn + await", |b| {
        b.to_async(&tokio).iter(|| async {
            let clients: Vec<_> = (0..4)
                .map(|_| {
                    tokio::spawn(async {
                        let handles: Vec<_> = (0..250).map(|_| tokio::spawn(async { 1u64 })).collect();
                        let mut n = 0;
                        for h in handles {
                            n += h.await.unwrap() as usize;
                        }
                        n
                    })
                })
                .collect();
            let mut n = 0;
            for client in clients {
                n += client.await.unwrap();
            }
            n
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = common::criterion(); targets = tasks }
criterion_main!(benches);
