//! The runtime handle, its builder, and the process default.
//!
//! A [`Runtime`] is a cheap handle (`Clone`) to one task manager, object store
//! and set of resources, living on a tokio runtime the application already
//! runs. Several may live in one process; code finds "its" runtime through
//! the current task, [`Runtime::scope`], or the default that [`init`] sets.

mod builder;
mod shared;

use std::any::Any;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use rustyray_core::context::{self, Scoped, TaskContext};
use rustyray_core::{
    BuildError, Deps, ObjectRef, Result, Runner, TaskId, TaskKind, TaskOptions, call, object, registry,
};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub use builder::Builder;
use shared::Shared;

use crate::events::EventStream;
use crate::protocol::Msg;
use crate::state::{ActorInfo, Stats, TaskFilter, TaskInfo};

/// A RustyRay runtime: a task manager, an object store and a set of
/// resources, running on tokio. Cheap to clone; all clones are one runtime.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("num_cpus", &self.shared.config.num_cpus)
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

impl PartialEq for Runtime {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Runtime {}

impl Runtime {
    /// A builder for a runtime with explicit settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The runtime free functions use here: the current task's or scope's,
    /// else the process default that [`init`] made.
    pub fn current() -> Option<Runtime> {
        context::current_runner().and_then(Runtime::from_runner)
    }

    /// The runtime behind a runner, if it is one.
    pub fn from_runner(runner: Arc<dyn Runner>) -> Option<Runtime> {
        runner.into_any().downcast::<Shared>().ok().map(|shared| Runtime { shared })
    }

    /// This runtime as a runner.
    pub fn runner(&self) -> Arc<dyn Runner> {
        self.shared.clone()
    }

    /// Runs `future` with this runtime as the current one: inside it, free
    /// functions (`f::remote`, `rustyray::put`, ...) use this runtime.
    /// Returns the future's output.
    pub async fn scope<F: Future>(&self, future: F) -> F::Output {
        Scoped::new(TaskContext::scope(self.runner()), future).await
    }

    /// Makes this runtime the current one on this thread until the guard is
    /// dropped (the synchronous counterpart of [`scope`](Self::scope)).
    pub fn enter(&self) -> context::EnterGuard {
        context::enter(TaskContext::scope(self.runner()))
    }

    /// Stops the runtime: unfinished tasks fail with
    /// [`Error::RuntimeShutdown`](rustyray_core::Error::RuntimeShutdown) (async bodies are dropped; plain bodies that
    /// are running cannot be interrupted and are abandoned), and later
    /// submissions fail with it at once.
    pub async fn shutdown(&self) {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let (reply, done) = oneshot::channel();
        if self.shared.send(Msg::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
        self.shared.directory.clear();
        tracing::info!("rustyray runtime shut down");
    }

    /// Waits until the runtime has no unfinished task (none pending, queued or
    /// running, and no abandoned body still running), with every finished
    /// task's inputs released. Returns at once after shutdown.
    pub async fn wait_idle(&self) {
        let (reply, idle) = oneshot::channel();
        if self.shared.send(Msg::WhenIdle(reply)).is_ok() {
            let _ = idle.await;
        }
    }

    /// Whether the runtime was shut down (or its tokio runtime is gone).
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_closed()
    }

    /// Stores `value` in this runtime's object store. After a shutdown the
    /// returned ref is failed with [`Error::RuntimeShutdown`](rustyray_core::Error::RuntimeShutdown), as every
    /// submission then is.
    pub fn put<T: Any + Send + Sync>(&self, value: T) -> ObjectRef<T> {
        object::put_in(self.runner(), value)
    }

    /// Calls a registered function by its stable name with codec-encoded
    /// arguments (the encoding of the parameter tuple); the result is the
    /// codec encoding of the function's return value.
    ///
    /// An unknown name fails with [`Error::FunctionNotFound`](rustyray_core::Error::FunctionNotFound) (listing near
    /// matches) and malformed arguments with [`Error::Codec`](rustyray_core::Error::Codec); both come back
    /// from `get` like any task failure, as does everything else.
    #[track_caller]
    pub fn call_by_name(&self, name: &str, args: &[u8]) -> ObjectRef<Vec<u8>> {
        self.call_by_name_with(name, args, TaskOptions::default())
    }

    /// [`call_by_name`](Self::call_by_name) with task options.
    #[track_caller]
    pub fn call_by_name_with(&self, name: &str, args: &[u8], options: TaskOptions) -> ObjectRef<Vec<u8>> {
        let caller = Location::caller();
        // Decode (object refs among the arguments) and submit in this runtime.
        let _entered = (!self.shared.is_current_runner()).then(|| self.enter());
        let function = match registry::lookup(name) {
            Ok(function) => function,
            Err(error) => return ObjectRef::failed(error),
        };
        match function.body_from_encoded(args) {
            Ok(body) => {
                let function = function.id();
                let args = options.record_args.then(|| Arc::from(format!("<{} encoded bytes>", args.len())));
                call::submit(function, TaskKind::Normal, options, Deps::new(), body, caller, args)
            }
            Err(error) => ObjectRef::failed(error),
        }
    }

    /// Calls a registered function by name with JSON arguments (an array, one
    /// element per parameter); the output is the result as JSON. This is how
    /// the durable queue runs a job in this runtime.
    #[track_caller]
    pub fn call_by_name_json(
        &self,
        name: &str,
        args: &serde_json::Value,
        options: TaskOptions,
    ) -> ObjectRef<serde_json::Value> {
        let caller = Location::caller();
        let _entered = (!self.shared.is_current_runner()).then(|| self.enter());
        let function = match registry::lookup(name) {
            Ok(function) => function,
            Err(error) => return ObjectRef::failed(error),
        };
        match function.body_from_json(args) {
            Ok(body) => {
                let function = function.id();
                let args = options.record_args.then(|| Arc::from(args.to_string()));
                call::submit(function, TaskKind::Normal, options, Deps::new(), body, caller, args)
            }
            Err(error) => ObjectRef::failed(error),
        }
    }

    /// Every task the runtime knows: finished ones still kept (oldest first),
    /// then live ones.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.tasks_where(&TaskFilter::default())
    }

    /// The tasks `filter` selects.
    pub fn tasks_where(&self, filter: &TaskFilter) -> Vec<TaskInfo> {
        self.shared.core.lock().tasks(filter)
    }

    /// Every actor: live ones, then recently dead ones.
    pub fn actors(&self) -> Vec<ActorInfo> {
        self.shared.core.lock().actors()
    }

    /// One task, if it is live or still kept.
    pub fn task(&self, id: TaskId) -> Option<TaskInfo> {
        self.shared.core.lock().task(id)
    }

    /// Totals, run-time percentiles, and the objects alive and their bytes.
    pub fn stats(&self) -> Stats {
        let usage = self.shared.store.usage();
        self.shared.core.lock().stats(usage)
    }

    /// Objects alive in the object store now.
    pub fn objects(&self) -> usize {
        self.shared.store.live()
    }

    /// Bytes the values of the live objects take, counting those whose type
    /// has a known size (see [`Stats::object_bytes`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rustyray_core::Result<()> {
    /// let rt = rustyray_runtime::Runtime::builder().num_cpus(1).build()?;
    /// let before = rt.object_bytes();
    /// let data = rt.put(vec![0u8; 1 << 20]);
    /// assert!(rt.object_bytes() >= before + (1 << 20));
    /// drop(data);
    /// assert_eq!(rt.object_bytes(), before);
    /// rt.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn object_bytes(&self) -> usize {
        self.shared.store.usage().bytes
    }

    /// The tokio runtime this runtime runs on.
    pub fn tokio_handle(&self) -> &Handle {
        &self.shared.handle
    }

    /// CPU units the runtime was built with.
    pub fn num_cpus(&self) -> f64 {
        self.shared.config.num_cpus
    }

    /// CPU units free now, and attempts in flight (released by the scheduler and still running).
    pub fn load(&self) -> (f64, usize) {
        let ((free, _), in_flight) = self.shared.core.lock().load();
        (free, in_flight)
    }

    /// The runtime's lifecycle events from now on: tasks submitted, started,
    /// succeeded, failed, retried and cancelled; actors started, restarted and
    /// dead. The stream is bounded and never slows the runtime: a subscriber
    /// that falls behind by more than [`Builder::event_capacity`] events loses
    /// the oldest and receives an [`EventKind::Lagged`](crate::EventKind::Lagged)
    /// saying how many. It ends when the runtime shuts down.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> rustyray_core::Result<()> {
    /// use rustyray_runtime::{EventKind, Runtime};
    /// let rt = Runtime::builder().num_cpus(1).build()?;
    /// let mut events = rt.subscribe();
    /// rt.shutdown().await;
    /// while let Some(event) = events.recv().await {
    ///     if let EventKind::TaskFailed { task, error, .. } = event.kind {
    ///         eprintln!("{task} failed: {error}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> EventStream {
        let mut core = self.shared.core.lock();
        let mut stream = core.subscribe();
        if core.is_shut_down() {
            // Nothing more will happen: the stream ends at once.
            core.close_events();
            stream.close();
        }
        stream
    }

    /// The timeline of the tasks the runtime knows (finished ones still kept,
    /// see [`Builder::max_finished_records`], and live ones) as Chrome
    /// trace-event JSON, the format `ray timeline` writes: open it in
    /// [Perfetto](https://ui.perfetto.dev) or `chrome://tracing`. One lane
    /// per worker slot, a slice per attempt, an arrow per dependency.
    pub fn timeline(&self) -> String {
        // Copy under the manager's lock; build the JSON after releasing it.
        let snapshot = self.shared.core.lock().timeline();
        snapshot.render()
    }

    /// Writes [`timeline`](Self::timeline) to `path`.
    pub fn write_timeline(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        std::fs::write(path, self.timeline())
    }

    /// The runtime's metrics in the Prometheus text exposition format
    /// (OpenMetrics), to serve from your own HTTP endpoint:
    /// `rustyray_tasks_total{function,state}`, `rustyray_task_run_seconds`, ...
    /// (see `docs/semantics.md` for the list).
    #[cfg(feature = "metrics")]
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.metrics_collector()));
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::warn!("encoding metrics failed: {error}");
        }
        text
    }

    /// A `prometheus-client` collector of the runtime's metrics, to register
    /// in an application's own registry.
    #[cfg(feature = "metrics")]
    pub fn metrics_collector(&self) -> crate::metrics::MetricsCollector {
        let source: Arc<dyn crate::metrics::Source> = self.shared.clone();
        crate::metrics::MetricsCollector { source: Arc::downgrade(&source) }
    }
}

/// Serializes `init` calls.
static INIT: Mutex<()> = Mutex::new(());

/// Starts the process default runtime with default settings (all cores) on
/// the current tokio runtime. Free functions use it wherever no task or scope
/// names another runtime.
///
/// Fails with [`BuildError::AlreadyInitialized`] while a default runtime is alive
/// (use [`Runtime::current`], or build more with [`Runtime::builder`]); a
/// default that was shut down, or whose tokio runtime ended, is replaced.
pub fn init() -> Result<Runtime, BuildError> {
    let _serialized = INIT.lock();
    if let Some(existing) = context::default_runner().and_then(Runtime::from_runner)
        && !existing.is_shut_down()
    {
        return Err(BuildError::AlreadyInitialized);
    }
    let runtime = Runtime::builder().build()?;
    context::set_default_runner(Some(runtime.runner()));
    Ok(runtime)
}
