//! What every bench file shares: the tokio runtime both sides run on, the
//! RustyRay runtime, and criterion settings short enough for a full run in
//! minutes. Each group measures a RustyRay operation and its baseline in the
//! same process, one after the other, so their ratio is meaningful on a
//! shared, noisy machine.

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;

/// A two-worker multi-threaded tokio runtime, as on the 2-core machines the
/// figures are taken on.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// A RustyRay runtime on `tokio`, made the process default.
pub fn rustyray_runtime(tokio: &tokio::runtime::Runtime) -> rustyray::Runtime {
    let _entered = tokio.enter();
    let rt = rustyray::Runtime::builder().num_cpus(2).build().expect("a rustyray runtime");
    rustyray::registry::functions();
    rt
}

/// Criterion settings: short warm-up and measurement, enough samples for a median.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}
