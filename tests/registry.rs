//! Remote functions by name: listing, calling with encoded arguments, and the
//! errors for unknown names and malformed bytes.

use rustyray::codec;
use rustyray::prelude::*;
// Registration needs the crate linked: referring to one of its items (here,
// its functions' names) is what keeps it in the binary.
use rustyray_test_remote_lib::{Point, shout, translate};

#[rustyray::remote]
fn double(x: i64) -> i64 {
    x * 2
}

#[rustyray::remote]
fn fallible(x: i64) -> Result<i64, String> {
    if x < 0 { Err("negative".into()) } else { Ok(x) }
}

fn runtime() -> Runtime {
    Runtime::builder().num_cpus(2).build().unwrap()
}

#[test]
fn functions_register_under_their_module_path() {
    assert_eq!(double::NAME, "registry::double");
    assert_eq!(shout::NAME, "rustyray_test_remote_lib::shout");
    let names: Vec<&str> = rustyray::registry::functions().iter().map(|f| f.name()).collect();
    for name in ["registry::double", "registry::fallible", shout::NAME, translate::NAME] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let double = rustyray::registry::lookup("registry::double").unwrap();
    assert_eq!(double.signature(), "fn double(x: i64) -> i64");
    assert!(!double.is_async());
    assert!(rustyray::registry::lookup(translate::NAME).unwrap().is_async());
}

#[tokio::test]
async fn calls_by_name_with_encoded_arguments() {
    let rt = runtime();
    let out = rt.call_by_name("registry::double", &codec::encode(&(21i64,)).unwrap());
    assert_eq!(codec::decode::<i64>(&out.get().await.unwrap()).unwrap(), 42);

    let out = rt.call_by_name(shout::NAME, &codec::encode(&("hi".to_string(),)).unwrap());
    assert_eq!(codec::decode::<String>(&out.get().await.unwrap()).unwrap(), "HI");

    let args = codec::encode(&(Point { x: 1, y: 2 }, 10)).unwrap();
    let out = rt.call_by_name(translate::NAME, &args);
    assert_eq!(codec::decode::<Point>(&out.get().await.unwrap()).unwrap(), Point { x: 11, y: 12 });

    // A by-name call is a task like any other.
    let info = rt.task(out.task().unwrap()).unwrap();
    assert_eq!(info.function.name(), translate::NAME);
}

#[tokio::test]
async fn a_failing_call_by_name_fails_like_a_task() {
    let rt = runtime();
    let out = rt.call_by_name("registry::fallible", &codec::encode(&(-1i64,)).unwrap());
    let error = out.get().await.unwrap_err();
    assert!(matches!(&error, Error::TaskFailed { message, .. } if message == "negative"), "{error}");
}

#[tokio::test]
async fn an_unknown_name_is_not_found_with_near_matches() {
    let rt = runtime();
    let error = rt.call_by_name("registry::dubble", &[]).get().await.unwrap_err();
    match &error {
        Error::FunctionNotFound { name, near } => {
            assert_eq!(name, "registry::dubble");
            assert!(near.contains(&"registry::double"), "{near:?}");
        }
        other => panic!("expected FunctionNotFound, got {other:?}"),
    }
    assert!(error.to_string().contains("did you mean `registry::double`"), "{error}");
    let error = rt.call_by_name("nothing_like_it", &[]).get().await.unwrap_err();
    assert!(matches!(error, Error::FunctionNotFound { near, .. } if near.is_empty()));
}

#[tokio::test]
async fn malformed_arguments_are_a_codec_error() {
    let rt = runtime();
    for bytes in [&b""[..], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], &[2, 0, 0][..]] {
        let error = rt.call_by_name("registry::double", bytes).get().await.unwrap_err();
        match &error {
            Error::Codec { context, .. } => assert!(context.contains("registry::double"), "{context}"),
            other => panic!("expected a codec error for {bytes:?}, got {other:?}"),
        }
    }
    let error = rt.call_by_name(shout::NAME, &codec::encode(&(5u8,)).unwrap()).get().await.unwrap_err();
    assert!(matches!(error, Error::Codec { .. }), "{error}");
}

#[tokio::test]
async fn the_free_function_uses_the_current_runtime() {
    let rt = runtime();
    let out = rt.scope(async { rustyray::call_by_name("registry::double", &codec::encode(&(4i64,)).unwrap()) }).await;
    assert_eq!(codec::decode::<i64>(&out.get().await.unwrap()).unwrap(), 8);
    // Outside any runtime (this test binary never calls `init`).
    assert!(matches!(rustyray::call_by_name("registry::double", &[]).get().await, Err(Error::NoRuntime)));
}

#[tokio::test]
async fn a_type_from_a_signature_in_another_crate_is_measured_in_the_store() {
    // `Point` derives `GetSize` and appears in `translate`'s signature in its
    // own crate: that registration is what lets this crate's `put` measure it.
    let rt = runtime();
    let point = rt.put(Point { x: 1, y: 2 });
    assert_eq!(rt.stats().object_bytes, std::mem::size_of::<Point>());
    assert_eq!(rt.stats().unsized_objects, 0);
    drop(point);
    assert_eq!(rt.object_bytes(), 0);
    rt.shutdown().await;
}
