//! A streaming task delivering 100,000 small items to one consumer, beside a
//! bare tokio mpsc channel of the same bound (a producer task sending, the
//! bench reading), in the same run.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustyray::Yield;

const ITEMS: u64 = 100_000;
/// The stream's default buffer, used for the baseline channel too.
const BOUND: usize = 16;

#[rustyray::remote(streaming)]
async fn numbers(n: u64, out: Yield<u64>) -> rustyray::Result<()> {
    for i in 0..n {
        out.send(i).await?;
    }
    Ok(())
}

fn stream(c: &mut Criterion) {
    let tokio = common::tokio_runtime();
    let rt = common::rustyray_runtime(&tokio);

    let mut group = c.benchmark_group("stream 100,000 small items");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);
    group.bench_function("rustyray", |b| {
        b.to_async(&tokio).iter(|| {
            rt.scope(async {
                let mut items = numbers::options().buffer(BOUND).remote(ITEMS);
                let mut sum = 0u64;
                while let Some(item) = items.next().await {
                    sum += item.get().await.unwrap();
                }
                sum
            })
        })
    });
    group.bench_function("baseline: tokio mpsc (same bound)", |b| {
        b.to_async(&tokio).iter(|| async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(BOUND);
            tokio::spawn(async move {
                for i in 0..ITEMS {
                    if tx.send(i).await.is_err() {
                        break;
                    }
                }
            });
            let mut sum = 0u64;
            while let Some(item) = rx.recv().await {
                sum += item;
            }
            sum
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = stream
}
criterion_main!(benches);
