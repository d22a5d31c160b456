//! [`Builder`]: checks a runtime's settings and starts its task manager.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;
use rustyray_core::{BuildError, Runner};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::Runtime;
use super::shared::Shared;
use crate::accounting::Store;
use crate::actor::Directory;
use crate::config::Config;
use crate::manager::{Core, Manager};
use crate::trim::Trimmer;

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
    keep_memory: bool,
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

    /// Whether to ask the allocator for its free pages back once every
    /// object of the runtime is gone (default `true`). glibc keeps the
    /// pages of freed memory mapped, so after a burst of a million tasks
    /// the process would stay hundreds of MiB resident while holding a few;
    /// the runtime then calls `malloc_trim` on a thread of its own, at most
    /// once a second, when glibc keeps more than 16 MiB free. It does
    /// nothing with another allocator or on another platform.
    pub fn trim_memory(mut self, trim: bool) -> Self {
        self.keep_memory = !trim;
        self
    }

    /// The tokio runtime to run on (default: the one `build` is called in).
    pub fn tokio_handle(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    fn config(&self) -> Result<Config, BuildError> {
        let invalid = |option: &'static str, reason: String| Err(BuildError::InvalidOption { option, reason });
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
            trim_memory: !self.keep_memory,
        })
    }

    /// Builds the runtime and starts its task manager on the tokio runtime.
    ///
    /// Fails with [`BuildError::NoTokioRuntime`] outside a tokio runtime (unless
    /// [`tokio_handle`](Self::tokio_handle) was given), and with
    /// [`BuildError::InvalidOption`] for out-of-range settings; `?` turns
    /// either into a [`rustyray_core::Error`]. The tokio runtime
    /// needs no timer (`enable_time`): the runtime's own deadlines (task
    /// timeouts, retry backoff, `wait`'s timeout) run on a timer of its own.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let config = self.config()?;
        let handle = match self.handle {
            Some(handle) => handle,
            None => Handle::try_current().map_err(|_| BuildError::NoTokioRuntime)?,
        };
        crate::panic::install_hook();
        let (tx, rx) = mpsc::unbounded_channel();
        let directory = Arc::new(Directory::default());
        let core = Arc::new(Mutex::new(Core::new(&config, directory.clone())));
        let weak_tx = tx.downgrade();
        let shared = Arc::new_cyclic(|this| Shared {
            this: this.clone(),
            tx,
            core: core.clone(),
            store: Store::new(Trimmer::new(config.trim_memory)),
            directory,
            handle: handle.clone(),
            config,
            shut_down: AtomicBool::new(false),
        });
        let runner: Arc<dyn Runner> = shared.clone();
        core.lock().set_owner(&runner);
        let weak_runner = Arc::downgrade(&runner);
        drop(runner);
        handle.spawn(Manager::new(core, rx, weak_runner, weak_tx, handle.clone()).run());
        tracing::info!(cpus = shared.config.num_cpus, "rustyray runtime started");
        Ok(Runtime { shared })
    }
}
