//! The runtime handle, its builder, and the process default.
//!
//! A [`Runtime`] is a cheap handle (`Clone`) to one task manager, object store
//! and set of resources, living on a tokio runtime the application already
//! runs. Several may live in one process; code finds "its" runtime through
//! the current task, [`Runtime::scope`], or the default that [`init`] sets.

use std::any::Any;
use std::future::Future;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use dashmap::DashMap;
use parking_lot::Mutex;
use rustyray_core::context::{self, Scoped, TaskContext};
use rustyray_core::{
    ActorConfig, ActorId, ActorRef, Deps, Error, FunctionId, ObjectCell, ObjectId, ObjectRef, ObjectSize, Result,
    Runner, TaskId, TaskKind, TaskOptions, TaskSpec, WeakActorRef, call, object, registry,
};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{mpsc, oneshot};

use crate::directory::Directory;
use crate::events::EventStream;
use crate::executor;
use crate::executor::ActorSlot;
use crate::manager::{Claim, Core, Entry, Manager, Msg, NewActor, submit_call};
use crate::state::{ActorInfo, Stats, TaskFilter, TaskInfo};
use crate::store::Store;

/// What a runtime was built with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) num_cpus: f64,
    pub(crate) resources: Vec<(Arc<str>, f64)>,
    pub(crate) queue_limits: Vec<(Arc<str>, usize)>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_finished_records: usize,
    pub(crate) event_capacity: usize,
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> rustyray_core::Result<()> {
/// let rt = rustyray_runtime::Runtime::builder()
///     .num_cpus(2)
///     .queue_limit("io", 4)
///     .resource("gpu", 1.0)
///     .build()?;
/// assert_eq!(rt.num_cpus(), 2.0);
/// rt.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct Builder {
    num_cpus: Option<usize>,
    resources: Vec<(String, f64)>,
    queue_limits: Vec<(String, usize)>,
    max_in_flight: Option<usize>,
    max_finished_records: Option<usize>,
    event_capacity: Option<usize>,
    handle: Option<Handle>,
}

/// How many finished tasks `Runtime::tasks` keeps by default.
const DEFAULT_FINISHED_RECORDS: usize = 10_000;

impl Builder {
    /// CPU units plain tasks share (default: the machine's available parallelism).
    pub fn num_cpus(mut self, cpus: usize) -> Self {
        self.num_cpus = Some(cpus);
        self
    }

    /// Caps how many tasks of queue `name` run at once. Tasks name their queue
    /// with `.queue(name)`; naming a queue the runtime lacks fails the task.
    pub fn queue_limit(mut self, name: impl Into<String>, limit: usize) -> Self {
        self.queue_limits.push((name.into(), limit));
        self
    }

    /// A custom resource (e.g. `gpu`) and how much of it there is; tasks ask
    /// for it with `.resource(name, amount)`.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources.push((name.into(), amount));
        self
    }

    /// Caps how many tasks run at once, all kinds together (default: no cap).
    pub fn max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = Some(limit);
        self
    }

    /// How many finished tasks `Runtime::tasks` keeps, oldest evicted first
    /// (default 10,000; 0 keeps none).
    pub fn max_finished_records(mut self, records: usize) -> Self {
        self.max_finished_records = Some(records);
        self
    }

    /// How many lifecycle events a subscriber may fall behind before it loses
    /// the oldest (default 4,096). See [`Runtime::subscribe`].
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = Some(events);
        self
    }

    /// The tokio runtime to run on (default: the one `build` is called in).
    pub fn tokio_handle(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    fn config(&self) -> Result<Config> {
        let invalid = |option: &'static str, reason: String| Err(Error::InvalidOption { option, reason });
        let num_cpus = match self.num_cpus {
            Some(cpus) => cpus,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        let mut resources: Vec<(Arc<str>, f64)> = Vec::new();
        for (name, amount) in &self.resources {
            if name.is_empty() {
                return invalid("resource", "a resource name must not be empty".into());
            }
            if name == rustyray_core::options::CPU {
                return invalid("resource", "set CPUs with `num_cpus`".into());
            }
            if let Err(reason) = rustyray_core::options::check_amount(*amount) {
                return invalid("resource", format!("`{name}`: {reason}"));
            }
            resources.retain(|(existing, _)| **existing != **name);
            resources.push((Arc::from(name.as_str()), *amount));
        }
        let mut queue_limits: Vec<(Arc<str>, usize)> = Vec::new();
        for (name, limit) in &self.queue_limits {
            if name.is_empty() {
                return invalid("queue_limit", "a queue name must not be empty".into());
            }
            if *limit == 0 {
                return invalid(
                    "queue_limit",
                    format!("queue `{name}` has a limit of 0, so none of its tasks could run"),
                );
            }
            queue_limits.retain(|(existing, _)| **existing != **name);
            queue_limits.push((Arc::from(name.as_str()), *limit));
        }
        let max_in_flight = match self.max_in_flight {
            Some(0) => return invalid("max_in_flight", "a limit of 0 would let no task run".into()),
            Some(limit) => limit,
            None => usize::MAX,
        };
        Ok(Config {
            num_cpus: num_cpus as f64,
            resources,
            queue_limits,
            max_in_flight,
            max_finished_records: self.max_finished_records.unwrap_or(DEFAULT_FINISHED_RECORDS),
            event_capacity: match self.event_capacity {
                Some(0) => return invalid("event_capacity", "subscribers need room for at least one event".into()),
                Some(events) => events,
                None => crate::events::DEFAULT_CAPACITY,
            },
        })
    }

    /// Builds the runtime and starts its task manager on the tokio runtime.
    ///
    /// Fails with [`Error::NoTokioRuntime`] outside a tokio runtime (unless
    /// [`tokio_handle`](Self::tokio_handle) was given), and with
    /// [`Error::InvalidOption`] for out-of-range settings. The tokio runtime
    /// needs no timer (`enable_time`): the runtime's own deadlines (task
    /// timeouts, retry backoff, `wait`'s timeout) run on a timer of its own.
    pub fn build(self) -> Result<Runtime> {
        let config = self.config()?;
        let handle = match self.handle {
            Some(handle) => handle,
            None => Handle::try_current().map_err(|_| Error::NoTokioRuntime)?,
        };
        crate::panic::install_hook();
        let (tx, rx) = mpsc::unbounded_channel();
        let core = Arc::new(Mutex::new(Core::new(&config)));
        let shared = Arc::new_cyclic(|this| Shared {
            this: this.clone(),
            tx,
            core: core.clone(),
            store: Store::default(),
            directory: Directory::default(),
            actor_slots: DashMap::new(),
            handle: handle.clone(),
            config,
            shut_down: AtomicBool::new(false),
        });
        core.lock().set_owner(&shared);
        handle.spawn(Manager::new(core, rx, Arc::downgrade(&shared)).run());
        tracing::info!(cpus = shared.config.num_cpus, "rustyray runtime started");
        Ok(Runtime { shared })
    }
}

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
    /// [`Error::RuntimeShutdown`] (async bodies are dropped; plain bodies that
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
    /// returned ref is failed with [`Error::RuntimeShutdown`], as every
    /// submission then is.
    pub fn put<T: Any + Send + Sync>(&self, value: T) -> ObjectRef<T> {
        object::put_in(self.runner(), value)
    }

    /// Calls a registered function by its stable name with codec-encoded
    /// arguments (the encoding of the parameter tuple); the result is the
    /// codec encoding of the function's return value.
    ///
    /// An unknown name fails with [`Error::FunctionNotFound`] (listing near
    /// matches) and malformed arguments with [`Error::Codec`]; both come back
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
                let function = FunctionId::new(function.name());
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
                let function = FunctionId::new(function.name());
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
        crate::metrics::MetricsCollector { shared: Arc::downgrade(&self.shared) }
    }
}

/// Serializes `init` calls.
static INIT: Mutex<()> = Mutex::new(());

/// Starts the process default runtime with default settings (all cores) on
/// the current tokio runtime. Free functions use it wherever no task or scope
/// names another runtime.
///
/// Fails with [`Error::AlreadyInitialized`] while a default runtime is alive
/// (use [`Runtime::current`], or build more with [`Runtime::builder`]); a
/// default that was shut down, or whose tokio runtime ended, is replaced.
pub fn init() -> Result<Runtime> {
    let _serialized = INIT.lock();
    if let Some(existing) = context::default_runner().and_then(Runtime::from_runner)
        && !existing.is_shut_down()
    {
        return Err(Error::AlreadyInitialized);
    }
    let runtime = Runtime::builder().build()?;
    context::set_default_runner(Some(runtime.runner()));
    Ok(runtime)
}

/// The runtime's shared state: what handles, tasks and object refs point to.
pub(crate) struct Shared {
    this: Weak<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    core: Arc<Mutex<Core>>,
    store: Store,
    directory: Directory,
    /// Each live actor's slot, where its callers may leave calls directly.
    actor_slots: DashMap<ActorId, Arc<ActorSlot>>,
    handle: Handle,
    config: Config,
    shut_down: AtomicBool,
}

impl Shared {
    /// What a metrics scrape reports, copied out under the manager's lock.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let usage = self.store.usage();
        self.core.lock().metrics_snapshot(usage)
    }

    /// The runtime stopped (its manager ended): later submissions fail at once.
    pub(crate) fn mark_shut_down(&self) {
        self.shut_down.store(true, Ordering::Release);
    }

    /// The actor is gone: callers no longer find its slot.
    pub(crate) fn forget_slot(&self, actor: ActorId) {
        self.actor_slots.remove(&actor);
    }

    pub(crate) fn send(&self, msg: Msg) -> std::result::Result<(), Msg> {
        self.tx.send(msg).map_err(|error| error.0)
    }

    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }

    fn is_closed(&self) -> bool {
        self.shut_down.load(Ordering::Acquire) || self.tx.is_closed()
    }

    fn is_current_runner(&self) -> bool {
        context::with_current(|ctx| {
            ctx.is_some_and(|ctx| std::ptr::addr_eq(Arc::as_ptr(&ctx.runner), self as *const Shared))
        })
    }
}

impl Runner for Shared {
    fn submit(&self, spec: TaskSpec) {
        if self.shut_down.load(Ordering::Acquire) {
            spec.output.complete(Err(Error::RuntimeShutdown));
            return;
        }
        let mut entry = Entry::new(spec);
        if let Some(actor) = entry.called_actor() {
            let slot = self.actor_slots.get(&actor).map(|slot| slot.value().clone());
            if let Some(slot) = slot {
                match submit_call(self, &slot, entry) {
                    Some(routed) => entry = routed,
                    None => return,
                }
            }
        }
        if let Err(Msg::Submit(entry)) = self.send(Msg::Submit(entry)) {
            entry.output().complete(Err(Error::RuntimeShutdown));
        }
    }

    fn cancel(&self, task: TaskId) {
        let _ = self.send(Msg::Cancel(task));
    }

    fn create_actor(&self, spec: TaskSpec, config: ActorConfig, actor: WeakActorRef) {
        let rejected = if self.shut_down.load(Ordering::Acquire) {
            Some(Error::RuntimeShutdown)
        } else {
            self.directory.register(config.id, config.options.name.as_deref(), &actor).err()
        };
        let entry = Entry::new(spec);
        let slot = ActorSlot::new(config.options.max_concurrency, config.options.max_task_retries, entry.holds_cpus());
        if rejected.is_none() {
            self.actor_slots.insert(config.id, slot.clone());
        }
        let msg = Msg::CreateActor(Box::new(NewActor { entry, slot, config, rejected }));
        if let Err(Msg::CreateActor(new)) = self.send(msg) {
            new.entry.output().complete(Err(Error::RuntimeShutdown));
        }
    }

    fn release_actor(&self, actor: ActorId) {
        let _ = self.send(Msg::ReleaseActor(actor));
    }

    fn kill_actor(&self, actor: ActorId) {
        // Before `kill` returns: a call made after it must not reach the actor
        // by the direct path while the manager has yet to hear of the kill
        // (calls through the manager are sent after the kill, so it fails them).
        if let Some(slot) = self.actor_slots.get(&actor) {
            slot.mark_killed();
        }
        let _ = self.send(Msg::KillActor(actor));
    }

    fn lookup_actor(&self, actor: ActorId) -> Result<ActorRef> {
        self.directory.lookup(actor)
    }

    fn named_actor(&self, name: &str) -> Result<ActorRef> {
        self.directory.named(name)
    }

    fn object_created(&self, _id: ObjectId, size: ObjectSize) {
        self.store.created(size);
    }

    fn object_stored(&self, _id: ObjectId, size: ObjectSize) {
        self.store.stored(size);
    }

    fn object_released(&self, id: ObjectId, size: ObjectSize) {
        self.store.released(id, size);
    }

    fn export_object(&self, cell: &Arc<ObjectCell>) {
        self.store.export(cell);
    }

    fn lookup_object(&self, id: ObjectId) -> Result<Arc<ObjectCell>> {
        self.store.lookup(id)
    }

    fn task_blocked(&self, task: TaskId) {
        executor::flush_held_reports(self);
        let _ = self.send(Msg::Blocked(task));
    }

    fn task_unblocked(&self, task: TaskId) {
        let _ = self.send(Msg::Unblocked(task));
    }

    fn run_inline(&self, task: TaskId) -> bool {
        // Only a plain task of this runtime lends its thread (and its CPU).
        if !context::on_blocking_thread() || !self.is_current_runner() {
            return false;
        }
        let Some(this) = self.this.upgrade() else { return false };
        let waiter = context::current_task();
        // A plain channel, not tokio's: this thread may be inside the tokio
        // runtime's context (an async actor method that blocks), where
        // tokio's blocking receive refuses to wait.
        let (reply, claimed) = std::sync::mpsc::channel();
        executor::flush_held_reports(self);
        if self.send(Msg::Claim(Box::new(Claim { task, waiter, reply }))).is_err() {
            return false;
        }
        let Ok(Some(start)) = claimed.recv() else { return false };
        executor::run_inline(&this, start);
        if let Some(waiter) = waiter {
            let _ = self.send(Msg::Unblocked(waiter));
        }
        true
    }

    fn block_on_object(&self, cell: &ObjectCell, deadline: Option<Instant>) -> Result<bool> {
        let wait = || cell.ready_blocking(deadline).is_some();
        if context::on_blocking_thread() {
            return Ok(wait());
        }
        match Handle::try_current() {
            Err(_) => Ok(wait()),
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(wait))
            }
            Ok(_) => Err(Error::WouldBlock),
        }
    }

    fn is_shut_down(&self) -> bool {
        self.is_closed()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
