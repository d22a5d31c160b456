//! Multiple results: `#[remote(num_returns = n)]` gives one `ObjectRef` per
//! element of a tuple result, each its own object.

use std::sync::atomic::{AtomicU32, Ordering};

use rustyray::prelude::*;

#[rustyray::remote(num_returns = 2)]
fn split(n: u64) -> (String, Vec<u64>) {
    (format!("{n} items"), (0..n).collect())
}

#[rustyray::remote(num_returns = 3)]
async fn three(x: i64) -> (i64, i64, bool) {
    (x - 1, x + 1, x > 0)
}

#[rustyray::remote(num_returns = 2)]
fn checked(x: i64) -> Result<(i64, i64), String> {
    if x < 0 { Err(format!("{x} is negative")) } else { Ok((x, x * 2)) }
}

#[rustyray::remote]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

#[rustyray::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rustyray::remote]
fn widen(x: u8) -> i64 {
    i64::from(x)
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[rustyray::remote(num_returns = 2)]
fn flaky() -> Result<(u32, u32), String> {
    let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call == 1 { Err("first attempt fails".into()) } else { Ok((call, call * 10)) }
}

#[rustyray::remote(num_returns = 2)]
async fn forever() -> (u8, u8) {
    std::future::pending::<()>().await;
    (0, 0)
}

#[tokio::test]
async fn each_element_is_its_own_typed_ref() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let (label, items): (ObjectRef<String>, ObjectRef<Vec<u64>>) = split::remote(4u64);
        assert_ne!(label.id(), items.id(), "two objects");
        assert_eq!(label.task(), items.task(), "made by one task");
        assert_eq!(label.get().await.unwrap(), "4 items");
        assert_eq!(items.get().await.unwrap(), vec![0, 1, 2, 3]);

        let (below, above, positive) = three::remote(5);
        assert_eq!((below.get().await.unwrap(), above.get().await.unwrap()), (4, 6));
        assert!(positive.get().await.unwrap());
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_consumer_of_one_element_gets_that_element() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let (_label, items) = split::remote(100u64);
        assert_eq!(total::remote(&items).get().await.unwrap(), 4950);
        let (low, high) = checked::remote(3);
        assert_eq!(add::remote(low, high).get().await.unwrap(), 9);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn dropping_one_element_frees_it_and_keeps_the_other() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let (label, items) = split::remote(100_000u64);
        items.ready().await;
        label.ready().await;
        rt.wait_idle().await;
        assert_eq!(rt.objects(), 2, "one object per element, no tuple kept");
        let with_both = rt.object_bytes();
        drop(items);
        assert_eq!(rt.objects(), 1);
        assert!(rt.object_bytes() + 100_000 * 8 <= with_both, "the large element's bytes were freed");
        assert_eq!(label.get().await.unwrap(), "100000 items");
        drop(label);
        assert_eq!(rt.objects(), 0);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_failure_fails_every_element_and_their_consumers() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let (low, high) = checked::remote(-1);
        let sum = add::remote(&low, 1);
        for r in [&low, &high, &sum] {
            match r.get().await {
                Err(Error::TaskFailed { message, .. }) => assert_eq!(message, "-1 is negative"),
                other => panic!("expected the task's failure, got {other:?}"),
            }
        }
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn options_apply_and_a_retry_writes_every_element_once() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let (a, b) = flaky::options().max_retries(1).name("flaky-pair").remote();
        assert_eq!(a.get().await.unwrap(), 2, "the second attempt's value");
        assert_eq!(b.get().await.unwrap(), 20);
        let info = rt.task(a.task().unwrap()).unwrap();
        assert_eq!(info.name.as_deref(), Some("flaky-pair"));
        assert_eq!(info.attempts.len(), 2);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn cancelling_one_element_cancels_the_task_and_every_element() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let (a, b) = forever::remote();
        let waiting = widen::remote(&b);
        a.cancel();
        assert!(a.get().await.unwrap_err().is_cancelled());
        assert!(b.get().await.unwrap_err().is_cancelled());
        assert!(waiting.get().await.unwrap_err().is_cancelled());
    })
    .await;
    rt.shutdown().await;
}

#[test]
fn without_a_runtime_every_element_is_failed() {
    let (a, b) = checked::remote(1);
    assert!(matches!(a.try_get(), Some(Err(Error::NoRuntime))));
    assert!(matches!(b.try_get(), Some(Err(Error::NoRuntime))));
}
