//! A CPU-bound parallel map: plain remote tasks against rayon's `par_iter`
//! on the same items, in the same process.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use rustyray::prelude::*;

/// Spins on arithmetic for about `micros` microseconds (calibrated below),
/// returning something that depends on every step.
fn work(iterations: u64, seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iterations {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
    }
    x
}

#[rustyray::remote]
fn item(iterations: u64, seed: u64) -> u64 {
    work(iterations, seed)
}

/// How many iterations of `work` take `target` on this machine.
fn calibrate(target: Duration) -> u64 {
    let probe = 1_000_000;
    let started = Instant::now();
    black_box(work(probe, 1));
    let per = started.elapsed().as_secs_f64() / probe as f64;
    ((target.as_secs_f64() / per) as u64).max(1)
}

fn cpu_map(c: &mut Criterion) {
    let tokio = common::tokio_runtime();
    let rt = common::rustyray_runtime(&tokio);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a rayon pool");

    for (label, target, items) in
        [("1 ms", Duration::from_millis(1), 64u64), ("10 us", Duration::from_micros(10), 2000)]
    {
        let iterations = calibrate(target);
        let mut group = c.benchmark_group(format!("parallel map of {items} items of {label}"));
        group.throughput(Throughput::Elements(items));
        group.sample_size(20);
        group.bench_function("rustyray", |b| {
            b.to_async(&tokio).iter(|| {
                rt.scope(async {
                    let refs: Vec<ObjectRef<u64>> = (0..items).map(|seed| item::remote(iterations, seed)).collect();
                    rustyray::get_all(&refs).await.unwrap().len()
                })
            })
        });
        group.bench_function("baseline: rayon par_iter", |b| {
            b.iter(|| {
                pool.install(|| (0..items).into_par_iter().map(|seed| work(iterations, seed)).collect::<Vec<_>>()).len()
            })
        });
        group.finish();
    }
}

criterion_group! { name = benches; config = common::criterion(); targets = cpu_map }
criterion_main!(benches);
