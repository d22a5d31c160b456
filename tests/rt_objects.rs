//! Object lifetime: an object lives while an `ObjectRef` or a pending task
//! holds it, and is freed when nothing can reach it.

use rustyray::prelude::*;

#[rustyray::remote]
fn inc(x: u64) -> u64 {
    x + 1
}

#[rustyray::remote]
async fn inc_async(x: u64) -> u64 {
    x + 1
}

#[rustyray::remote]
fn len(v: &[u64]) -> usize {
    v.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_tasks_complete_and_leave_no_objects_behind() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let refs: Vec<ObjectRef<u64>> =
            (0..100_000u64).map(|i| if i % 2 == 0 { inc::remote(i) } else { inc_async::remote(i) }).collect();
        let values = rustyray::get_all(&refs).await.unwrap();
        assert_eq!(values.len(), 100_000);
        assert!(values.iter().enumerate().all(|(i, v)| *v == i as u64 + 1));
        assert_eq!(rt.objects(), 100_000);
        drop(refs);
        rt.wait_idle().await;
        assert_eq!(rt.objects(), 0, "every object was freed with its last reference");
    })
    .await;
    let stats = rt.stats();
    assert_eq!(stats.submitted, 100_000);
    assert_eq!(stats.succeeded, 100_000);
    assert_eq!(stats.objects, 0);
}

#[tokio::test]
async fn pending_tasks_keep_their_inputs_alive() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let gate = gate::remote();
        let data = rustyray::put((0..1000u64).collect::<Vec<_>>());
        let waits = after::remote(&gate, &data);
        drop(data);
        // The pending task still holds `data` (and `gate`): both are alive,
        // with its own output.
        assert_eq!(rt.objects(), 3);
        open::remote(&gate);
        assert_eq!(waits.get().await.unwrap(), 1000);
        drop(gate);
    })
    .await;
    rt.wait_idle().await;
    // Only `waits`' own output went out of scope last; nothing is left.
    assert_eq!(rt.objects(), 0);
}

#[rustyray::remote]
async fn gate() -> u8 {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    1
}

#[rustyray::remote]
fn open(_gate: u8) {}

#[rustyray::remote]
fn after(_gate: u8, data: &[u64]) -> usize {
    data.len()
}

#[tokio::test]
async fn a_chain_of_temporaries_is_freed_as_it_goes() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let mut r = inc::remote(0);
        for _ in 0..1000 {
            r = inc::remote(r);
        }
        assert_eq!(r.get().await.unwrap(), 1001);
        rt.wait_idle().await;
        assert_eq!(rt.objects(), 1, "only the last link is still referenced");
        assert_eq!(len::remote(rustyray::put(vec![1u64; 10])).get().await.unwrap(), 10);
    })
    .await;
    rt.wait_idle().await;
    assert_eq!(rt.objects(), 0);
}
