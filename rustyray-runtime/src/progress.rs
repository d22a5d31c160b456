//! A progress bar while waiting on many refs (feature `progress`).
//!
//! [`get_all_with_progress`] is [`get_all`](crate::get_all) with an
//! `indicatif` bar on stderr that advances as each object is written. The
//! bar hides itself when stderr is not a terminal (logs, CI), so the same
//! code prints cleanly everywhere.

use std::any::Any;
use std::borrow::Cow;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use rustyray_core::{Error, ObjectRef, Result};

/// The bar's look: message, bar, count, rate and time left.
const TEMPLATE: &str = "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)";

/// Waits for every ref, showing a progress bar labelled `message`, and
/// returns the values in the order of `refs`, or the first error in that
/// order (as [`get_all`](crate::get_all) does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> rustyray_core::Result<()> {
/// let rt = rustyray_runtime::Runtime::builder().num_cpus(1).build()?;
/// let refs: Vec<_> = (0..10u64).map(|i| rt.put(i)).collect();
/// let values = rustyray_runtime::progress::get_all_with_progress(&refs, "squaring").await?;
/// assert_eq!(values.len(), 10);
/// # Ok(())
/// # }
/// ```
pub async fn get_all_with_progress<T: Any + Clone + Send + Sync>(
    refs: &[ObjectRef<T>],
    message: impl Into<Cow<'static, str>>,
) -> Result<Vec<T>> {
    let bar = ProgressBar::new(refs.len() as u64).with_message(message);
    if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut pending: FuturesUnordered<_> = refs.iter().map(|r| r.ready()).collect();
    while pending.next().await.is_some() {
        bar.inc(1);
    }
    let values: Result<Vec<T>> =
        refs.iter().map(|r| r.try_get().unwrap_or(Err(Error::NotReady { object: r.id() }))).collect();
    match &values {
        Ok(_) => bar.finish(),
        Err(_) => bar.abandon(),
    }
    values
}
