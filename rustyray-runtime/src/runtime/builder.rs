//! [`Builder`]: checks a runtime's settings and starts its task manager.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;
#[cfg(feature = "deterministic")]
use std::future::Future;

#[cfg(feature = "deterministic")]
use rustyray_core::Error;
use rustyray_core::{BuildError, Runner};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::Runtime;
use super::shared::Shared;
use crate::accounting::Store;
use crate::actor::Directory;
use crate::config::Config;
use crate::deterministic::Det;
use crate::manager::{Core, Manager};
#[cfg(feature = "deterministic")]
use crate::timer::VirtualTime;
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
    /// The seed of a deterministic run, if this is one.
    seed: Option<u64>,
}

/// How many CPU units a deterministic runtime has unless told: a constant,
/// not the machine's count, so a seed replays alike on any machine.
const DETERMINISTIC_CPUS: usize = 4;

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
    /// (default 10,000). 0 keeps none, and then no record of a finished
    /// task is even built: statistics, metrics and events are kept as
    /// before, and a task costs 5-10% less work (see `BENCHMARKS.md`).
    pub fn max_finished_records(mut self, records: usize) -> Self {
        self.max_finished_records = Some(records);
        self
    }

    /// How many lifecycle events a subscriber may fall behind before it loses
    /// the oldest (default 4,096, at most 2^24: the room is allocated whole).
    /// See [`Runtime::subscribe`].
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
        let num_cpus = match (self.num_cpus, self.seed) {
            (Some(cpus), _) => cpus,
            (None, Some(_)) => DETERMINISTIC_CPUS,
            (None, None) => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
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
                // Every slot is allocated when the first subscriber comes.
                Some(events) if events > crate::events::MAX_CAPACITY => {
                    let most = crate::events::MAX_CAPACITY;
                    return invalid("event_capacity", format!("{events} events is more than the most, {most}"));
                }
                Some(events) => events,
                None => crate::events::DEFAULT_CAPACITY,
            },
            trim_memory: !self.keep_memory,
            det: self.seed.map(|seed| Arc::new(Det::new(seed))),
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
    /// A [`deterministic`](Self::deterministic) runtime is not built here but
    /// by [`run`](Self::run), which drives it (`InvalidOption` otherwise).
    pub fn build(self) -> Result<Runtime, BuildError> {
        if self.seed.is_some() {
            return Err(BuildError::InvalidOption {
                option: "deterministic",
                reason: "a deterministic runtime runs on a thread of its own: start it with `Builder::run`".into(),
            });
        }
        let handle = match self.handle.clone() {
            Some(handle) => handle,
            None => Handle::try_current().map_err(|_| BuildError::NoTokioRuntime)?,
        };
        self.start(handle)
    }

    /// Checks the settings and starts the manager on `handle` (on a
    /// deterministic run, as a local task of its one thread).
    fn start(self, handle: Handle) -> Result<Runtime, BuildError> {
        let config = self.config()?;
        crate::panic::install_hook();
        let (tx, rx) = mpsc::unbounded_channel();
        let directory = Arc::new(Directory::default());
        let core = Arc::new(Mutex::new(Core::new(&config, directory.clone())));
        let weak_tx = tx.downgrade();
        let det = config.det.clone();
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
        let manager = Manager::new(core, rx, weak_runner, weak_tx, handle.clone(), det.clone());
        if det.is_some() {
            drop(crate::deterministic::spawn(manager.run()));
        } else {
            handle.spawn(manager.run());
        }
        tracing::info!(cpus = shared.config.num_cpus, "rustyray runtime started");
        Ok(Runtime { shared })
    }

    /// Deterministic test mode with this seed: the runtime runs every task,
    /// actor call, timer and retry's jitter on one thread, in an order the
    /// seed picks, on virtual time; the same seed replays the same run
    /// (interleaving, outputs, the [`tasks`](Runtime::tasks) history and its
    /// ids). Start it with [`run`](Self::run); [`deterministic::check`]
    /// runs a test under many seeds. Unless set, `num_cpus` is 4 in this mode
    /// (not the machine's count). See the [`deterministic`] module.
    ///
    /// [`deterministic`]: crate::deterministic
    /// [`deterministic::check`]: crate::deterministic::check
    pub fn deterministic(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs `body` on a [`deterministic`](Self::deterministic) runtime and
    /// returns its output, then shuts the runtime down.
    ///
    /// The run owns a tokio current-thread runtime with a paused clock
    /// (virtual time: timeouts, backoff and delayed starts advance at once
    /// when nothing else can run) and drives `body` on its one thread, with
    /// the new runtime as the current one. Call it from synchronous code (a
    /// plain `#[test]`), not inside a tokio runtime.
    ///
    /// Fails with [`Error::Build`] if the settings are invalid or this is
    /// not a deterministic builder, and with [`Error::Deadlock`] if `body`
    /// waits for something no task or timer can bring about. A deadlock
    /// first fails every waiting task with [`Error::Deadlock`], naming
    /// them all, so a body that awaits one of them sees it as an `Err`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rustyray_runtime::Runtime;
    ///
    /// let out = Runtime::builder()
    ///     .deterministic(7)
    ///     .run(|rt| async move {
    ///         let value = rt.put(20u32);
    ///         // Virtual time: an hour passes at once.
    ///         rustyray_runtime::wait(&[value.clone()], 1, Some(Duration::from_secs(3600))).await;
    ///         value.get().await.map(|v| v + 1)
    ///     })
    ///     .expect("the run completes");
    /// assert_eq!(out.expect("the value is there"), 21);
    /// ```
    #[cfg(feature = "deterministic")]
    pub fn run<F, Fut>(self, body: F) -> Result<Fut::Output, Error>
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: Future,
    {
        let Some(seed) = self.seed else {
            return Err(Error::Build(BuildError::InvalidOption {
                option: "deterministic",
                reason: "`run` drives a deterministic runtime: call `.deterministic(seed)` first".into(),
            }));
        };
        if Handle::try_current().is_ok() {
            return Err(Error::Build(BuildError::InvalidOption {
                option: "deterministic",
                reason: "`run` starts a tokio runtime of its own: call it outside any tokio runtime (a plain #[test])"
                    .into(),
            }));
        }
        // Task stamps count from an origin taken before the virtual clock starts.
        crate::task::stamp_origin();
        let tokio = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().map_err(
            |error| BuildError::InvalidOption {
                option: "deterministic",
                reason: format!("its tokio runtime could not start: {error}"),
            },
        )?;
        let _virtual = VirtualTime::enter();
        let _ids = rustyray_core::ids::ThreadIds::start();
        let local = tokio::task::LocalSet::new();
        let outcome = local.block_on(&tokio, async move {
            let rt = self.start(Handle::current())?;
            let outcome = {
                let body = std::pin::pin!(rt.scope(body(rt.clone())));
                let watchdog = std::pin::pin!(watch(&rt, seed));
                match futures::future::select(body, watchdog).await {
                    futures::future::Either::Left((output, _)) => Ok(output),
                    futures::future::Either::Right((error, _)) => Err(error),
                }
            };
            rt.shutdown().await;
            outcome
        });
        // The run's tasks are dropped here, on virtual time still.
        drop(local);
        drop(tokio);
        outcome
    }
}

/// Watches a deterministic run for a deadlock: this sleep ends only when
/// nothing can run and no timer is due for a virtual century. Every
/// unfinished task then fails with a deadlock report; if there was none,
/// the body waits for something outside the runtime, and the run ends with
/// the report.
#[cfg(feature = "deterministic")]
async fn watch(rt: &Runtime, seed: u64) -> Error {
    loop {
        tokio::time::sleep(crate::deterministic::DEADLOCK_AFTER).await;
        let (reply, failed) = tokio::sync::oneshot::channel();
        if rt.shared.send(crate::protocol::Msg::Deadlock(seed, reply)).is_err() {
            return Error::RuntimeShutdown;
        }
        if failed.await.unwrap_or(0) == 0 {
            let error = crate::deterministic::deadlock(seed, &[]);
            tracing::error!("{error}");
            return error;
        }
    }
}
