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

/// A user type that derives `GetSize`: measured deeply once it is named in a
/// remote signature.
#[derive(Clone, serde::Serialize, serde::Deserialize, get_size2::GetSize)]
pub struct Image {
    name: String,
    pixels: Vec<u8>,
}

impl Image {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Image>() + self.name.capacity() + self.pixels.capacity()
    }
}

/// A type with no size: stored as usual, counted apart.
#[derive(Clone)]
struct Opaque;

#[rustyray::remote]
fn render(side: usize) -> Image {
    Image { name: String::from("square"), pixels: vec![0; side * side] }
}

#[rustyray::remote]
fn blob(len: usize) -> Vec<u8> {
    vec![1; len]
}

#[rustyray::remote]
fn broken(len: usize) -> Result<Vec<u8>, String> {
    Err(format!("cannot make {len} bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_counts_the_bytes_of_its_values_and_gives_them_back_when_freed() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let vec_bytes = std::mem::size_of::<Vec<u8>>();
        let data = rustyray::put(vec![0u8; 1 << 20]);
        assert_eq!(rt.object_bytes(), vec_bytes + (1 << 20), "a put value is measured at once");

        let image = render::remote(64);
        let image_bytes = image.get().await.unwrap().bytes();
        let made = blob::remote(4096);
        made.ready().await;
        let failed = broken::remote(4096);
        failed.ready().await;
        let stored_image = rustyray::put(Image { name: String::from("kept"), pixels: vec![1; 100] });
        let stored_image_bytes = stored_image.get().await.unwrap().bytes();
        let opaque = rustyray::put(Opaque);

        let stats = rt.stats();
        assert_eq!(
            stats.object_bytes,
            vec_bytes + (1 << 20) + image_bytes + vec_bytes + 4096 + stored_image_bytes,
            "results and puts of sized types are counted; a failed task's object holds no bytes"
        );
        assert_eq!(stats.unsized_objects, 1, "the opaque value is counted apart");
        assert_eq!(stats.objects, 6);

        drop((data, image, made, failed, stored_image, opaque));
        rt.wait_idle().await;
        let stats = rt.stats();
        assert_eq!((stats.objects, stats.object_bytes, stats.unsized_objects), (0, 0, 0));
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_value_moved_out_of_the_store_gives_its_bytes_back() {
    let rt = Runtime::builder().num_cpus(1).build().unwrap();
    rt.scope(async {
        let made = blob::remote(1000);
        made.ready().await;
        assert_eq!(rt.object_bytes(), std::mem::size_of::<Vec<u8>>() + 1000);
        let value = made.into_value().unwrap().unwrap();
        assert_eq!(value.len(), 1000);
        rt.wait_idle().await;
        assert_eq!(rt.object_bytes(), 0);
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_get_with_a_timeout_of_duration_max_waits_without_a_deadline() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        let r = inc::remote(41);
        let got = tokio::task::spawn_blocking(move || r.get_blocking_timeout(std::time::Duration::MAX)).await;
        assert_eq!(got.expect("no panic").unwrap(), 42);
    })
    .await;
}

/// Clones of [`Counted`] values, counted.
static COUNTED_CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Counted(u64);

impl Clone for Counted {
    fn clone(&self) -> Self {
        COUNTED_CLONES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted(self.0)
    }
}

#[rustyray::remote]
fn make_counted(n: u64) -> Counted {
    Counted(n)
}

#[rustyray::remote]
fn take_counted(value: Counted) -> u64 {
    value.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_whose_last_ref_a_task_holds_is_moved_to_it_not_cloned() {
    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    rt.scope(async {
        for n in 0..300 {
            // The producer's ref goes into the call: the dependent holds the last one.
            assert_eq!(take_counted::remote(make_counted::remote(n)).get().await.unwrap(), n);
        }
    })
    .await;
    assert_eq!(COUNTED_CLONES.load(std::sync::atomic::Ordering::SeqCst), 0, "every value was moved");
}
