//! Cancellation is immediate and final for the ref: once `cancel` returns,
//! `get` fails with a cancelled error, even if the runtime had not yet seen
//! the task, and its dependents fail the same way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustyray::prelude::*;

static OPEN: AtomicBool = AtomicBool::new(false);
static RAN: AtomicUsize = AtomicUsize::new(0);

#[rustyray::remote]
async fn gate() -> bool {
    while !OPEN.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

#[rustyray::remote]
async fn dependent(key: u64, _gate: bool) -> u64 {
    RAN.fetch_add(1, Ordering::SeqCst);
    key
}

#[rustyray::remote]
fn plain_dependent(key: u64, _gate: bool) -> u64 {
    RAN.fetch_add(1, Ordering::SeqCst);
    key
}

#[rustyray::remote]
async fn filler(key: u64) -> u64 {
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_ref_stays_cancelled_even_if_its_input_arrives_first() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let g = gate::remote();
        let mut refs = Vec::new();
        let mut cancelled = Vec::new();
        for i in 0..3000u64 {
            let r = match i % 20 {
                0 => dependent::remote(i, &g),
                10 => plain_dependent::remote(i, &g),
                _ => filler::remote(i),
            };
            if i % 10 == 0 {
                cancelled.push(r.clone());
            }
            refs.push(r);
        }
        for r in &cancelled {
            rustyray::cancel(r);
            assert!(r.try_get().is_some_and(|v| v.is_err_and(|e| e.is_cancelled())), "cancelled at once");
        }
        let downstream: Vec<ObjectRef<u64>> = cancelled.iter().take(10).map(|r| filler::remote(r)).collect();
        OPEN.store(true, Ordering::Release);
        for r in &refs {
            let _ = r.get().await;
        }
        for r in &cancelled {
            assert!(r.get().await.unwrap_err().is_cancelled());
        }
        for r in &downstream {
            assert!(r.get().await.unwrap_err().is_cancelled());
        }
        rt.wait_idle().await;
        let stats = rt.stats();
        assert_eq!(stats.cancelled, cancelled.len() as u64 + downstream.len() as u64);
        assert_eq!(stats.succeeded + stats.failed + stats.cancelled, stats.submitted);
    })
    .await;
}

#[rustyray::remote]
async fn hang() -> u64 {
    std::future::pending::<()>().await;
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_error_names_the_task_by_its_given_name() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let r = hang::options().name("resize-images").remote();
        let downstream = filler::remote(&r);
        rustyray::cancel(&r);
        for got in [r.get().await, downstream.get().await] {
            let error = got.unwrap_err();
            match &error {
                Error::Cancelled { origin } => {
                    assert_eq!(origin.name.as_deref(), Some("resize-images"));
                    assert_eq!(origin.task, r.task().unwrap());
                }
                other => panic!("expected a cancelled error, got {other}"),
            }
            assert!(error.to_string().contains("resize-images"), "{error}");
        }
        // The ref reads cancelled at once, and the dependent may fail from
        // that before the manager has taken the cancellation in (it finds
        // its input written when it is submitted): the record is final once
        // the manager has.
        rt.wait_idle().await;
        let info = rt.task(r.task().unwrap()).unwrap();
        assert!(info.error.is_some_and(|error| error.to_string().contains("resize-images")));
    })
    .await;
}
