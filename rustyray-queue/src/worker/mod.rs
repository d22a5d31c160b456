//! [`Worker`]: claims jobs, hands each attempt to a runner, heartbeats,
//! recovers lost attempts and records outcomes.
//!
//! One task per worker owns the loop: claim while there are free slots,
//! start each attempt, collect finished ones, stop cancelled ones. Beside it
//! a lease task renews the worker's lease and its attempts' heartbeats every
//! `heartbeat` and runs the reconciler, and a recorder task writes outcomes
//! in batches (retrying while the database is away, so an outcome is never
//! dropped: its attempt keeps heartbeating until it is written; one holding
//! a value the database refuses is written as a plain failure instead).

mod record;
pub mod remote;
pub mod runner;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use rustyray_runtime::Runtime;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::{QueueError, Result};
use crate::model::{AttemptState, JobId, JobState};
use crate::queue::Queue;
use crate::signal::Signal;
use crate::store::{self, claim::Claimed, claim::Claimer};
use record::{Recorder, Writer};
use runner::{Attempt, LocalRunner, Outcome, Runner, Stop};

/// The longest heartbeat, stuck timeout, grace period or poll interval a
/// worker takes: a year. Longer ones are taken as a year, which is for ever
/// in effect, and keeps every deadline computed from them representable.
pub const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How to start a [`Worker`]: `Worker::builder(&q)....start().await`.
#[derive(Debug)]
#[must_use = "a builder does nothing until `.start()` is awaited"]
pub struct WorkerBuilder {
    queue: Queue,
    queues: Vec<String>,
    concurrency: usize,
    limits: Vec<(String, Option<u32>)>,
    runner: Option<Arc<dyn Runner>>,
    runtime: Option<Runtime>,
    heartbeat: Duration,
    stuck_timeout: Duration,
    grace: Duration,
    id: Option<String>,
}

impl WorkerBuilder {
    /// The queues to claim from (default: `default`).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// How many attempts this worker runs at once (default: the CPU count).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Limits how many jobs of `queue` run at once across every worker of
    /// the database (written to the database when the worker starts).
    pub fn queue_limit(mut self, queue: impl Into<String>, max_running: u32) -> Self {
        self.limits.push((queue.into(), Some(max_running)));
        self
    }

    /// Limits how many jobs run at once across every worker, all queues together.
    pub fn global_limit(mut self, max_running: u32) -> Self {
        self.limits.push((store::claim::GLOBAL_LIMIT.to_string(), Some(max_running)));
        self
    }

    /// The runner (default: [`LocalRunner`] on the current RustyRay runtime,
    /// or a new one).
    pub fn runner(mut self, runner: impl Runner) -> Self {
        self.runner = Some(Arc::new(runner));
        self
    }

    /// The in-process runtime the default runner uses.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// How often the lease and running attempts are renewed (default 1 s;
    /// at least 10 ms and at most [`LONGEST_WAIT`]).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.clamp(Duration::from_millis(10), LONGEST_WAIT);
        self
    }

    /// How long an attempt may go without a heartbeat before it is LOST
    /// (default 30 s; keep it several heartbeats long; at least 50 ms and at
    /// most [`LONGEST_WAIT`]).
    pub fn stuck_timeout(mut self, timeout: Duration) -> Self {
        self.stuck_timeout = timeout.clamp(Duration::from_millis(50), LONGEST_WAIT);
        self
    }

    /// How long `shutdown` lets running attempts finish before releasing
    /// them back to QUEUED (default 30 s; `Duration::MAX` or anything past
    /// [`LONGEST_WAIT`] waits that long, in effect for ever).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace.min(LONGEST_WAIT);
        self
    }

    /// The worker's id (default: host, pid and a random suffix; it must be
    /// unique per process).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Registers the worker's lease and starts claiming.
    pub async fn start(self) -> Result<Worker> {
        if self.queues.is_empty() {
            return Err(QueueError::Worker("a worker needs at least one queue".into()));
        }
        let runner: Arc<dyn Runner> = match self.runner {
            Some(runner) => runner,
            None => {
                let runtime = match self.runtime.or_else(Runtime::current) {
                    Some(runtime) => runtime,
                    None => Runtime::builder()
                        .build()
                        .map_err(|error| QueueError::Worker(format!("cannot start the in-process runtime: {error}")))?,
                };
                Arc::new(LocalRunner::new(runtime))
            }
        };
        #[cfg(feature = "metrics")]
        if let Some(runtime) = runner.runtime() {
            self.queue.note_runtime(runtime);
        }
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let pid = std::process::id();
        let id = self.id.unwrap_or_else(|| {
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}-{pid}-{}", &suffix[..8])
        });
        for (queue, limit) in &self.limits {
            self.queue.set_queue_limit(queue, *limit).await?;
        }
        let lease = store::lease::Lease {
            id: &id,
            host: &host,
            pid: i64::from(pid),
            queues: &self.queues,
            concurrency: u32::try_from(self.concurrency).unwrap_or(u32::MAX),
            runner: runner.name(),
        };
        store::lease::register(self.queue.db(), &lease).await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let config = Config {
            id: Arc::from(id.as_str()),
            queues: self.queues,
            concurrency: self.concurrency,
            heartbeat: self.heartbeat,
            stuck_timeout: self.stuck_timeout,
            grace: self.grace,
        };
        tracing::info!(worker = %config.id, queues = ?config.queues, concurrency = config.concurrency, runner = runner.name(), "worker started");
        let main = tokio::spawn(run(self.queue.clone(), runner, config, shutdown_rx));
        Ok(Worker { id, shutdown, main: Some(main) })
    }
}

/// One attempt this worker runs: its job, and how to ask it to stop.
struct Slot {
    job: JobId,
    stop: watch::Sender<Option<Stop>>,
    /// When the worker took it (its row existed by then).
    since: tokio::time::Instant,
}

/// What a heartbeat found still live, and when it looked: the attempts of
/// this process (run by a runner that does not adopt orphans) taken before
/// then and not among them were found LOST.
struct Live {
    looked: tokio::time::Instant,
    /// The attempts the heartbeat renewed: only these can be judged. One
    /// claimed after the worker last told the lease loop what it holds was
    /// not asked about, and is not missing from `attempts`.
    asked: std::collections::HashSet<uuid::Uuid>,
    attempts: std::collections::HashSet<uuid::Uuid>,
}

struct Config {
    id: Arc<str>,
    queues: Vec<String>,
    concurrency: usize,
    heartbeat: Duration,
    stuck_timeout: Duration,
    grace: Duration,
}

/// A running worker. [`shutdown`](Self::shutdown) stops it gracefully;
/// dropping it asks for the same without waiting.
#[derive(Debug)]
pub struct Worker {
    id: String,
    shutdown: watch::Sender<bool>,
    main: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// A builder for a worker of `queue`.
    pub fn builder(queue: &Queue) -> WorkerBuilder {
        WorkerBuilder {
            queue: queue.clone(),
            queues: vec![crate::model::DEFAULT_QUEUE.to_string()],
            concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            limits: Vec::new(),
            runner: None,
            runtime: None,
            heartbeat: Duration::from_secs(1),
            stuck_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            id: None,
        }
    }

    /// The worker's id, as its lease and attempts record it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops claiming, lets running attempts finish within the grace period,
    /// releases the rest back to QUEUED without charging them, writes every
    /// outcome, and marks the lease STOPPED.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.wait().await;
    }

    /// Waits until the worker has stopped (after a shutdown asked elsewhere).
    pub async fn join(mut self) {
        self.wait().await;
    }

    async fn wait(&mut self) {
        if let Some(main) = self.main.take()
            && let Err(error) = main.await
        {
            // Its attempts are then found lost once their heartbeats stop.
            tracing::error!(worker = %self.id, %error, "the worker's loop ended abnormally");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The worker's loop.
async fn run(queue: Queue, runner: Arc<dyn Runner>, config: Config, mut shutdown: watch::Receiver<bool>) {
    let mut signals = queue.signals();
    let writer = Writer::start(queue.clone());
    let (cancels_tx, mut cancels) = mpsc::unbounded_channel();
    let (adopted_tx, mut adopted) = mpsc::unbounded_channel();
    if runner.adopts_orphans() {
        // Cluster attempts an earlier process under this worker id left
        // running: followed here again, as a silent worker's would be by
        // another (which skips them while this id's lease is fresh).
        match store::attempt::own_orphans(queue.db(), &config.id, runner.name()).await {
            Ok(orphans) => {
                for claimed in orphans {
                    let _ = adopted_tx.send(claimed);
                }
            }
            Err(error) => tracing::warn!(worker = %config.id, %error, "cannot look for this worker's earlier attempts"),
        }
    }
    let adopt = runner.adopts_orphans().then(|| Adopt { runner: runner.name(), found: adopted_tx });
    // An attempt stops here once it is found LOST (its retry may run
    // elsewhere), if its runner's outcomes are this worker's alone to write:
    // then an attempt no longer live while it still runs was found lost.
    let (live_tx, mut lives) = mpsc::unbounded_channel::<Live>();
    let live_tx = runner.outcomes_written_by_worker().then_some(live_tx);
    // The attempts this worker holds, for the lease loop to heartbeat.
    let (held, holds) = watch::channel(Vec::new());
    // Attempts a runner starts SUBMITTED are begun, and from then on
    // heartbeated, by a process of their own (a cluster job).
    let beats_running = runner.initial_state() == AttemptState::Running;
    let links =
        LeaseLinks { holds, unwritten: writer.unwritten(), beats_running, cancels: cancels_tx, lives: live_tx, adopt };
    // In a set, so that the lease task ends with this one however it ends:
    // a lease renewed for attempts that no longer run would keep them from
    // being found lost.
    let mut lease = JoinSet::new();
    lease.spawn(lease_loop(queue.clone(), config.id.clone(), config.heartbeat, config.stuck_timeout, links));
    let claimer_queues = config.queues.clone();
    // Each attempt's task ends by returning its attempt's id, so the set both
    // runs the attempts and says which slot became free. Slots are keyed by
    // attempt, not job: a failed attempt's retry may be claimed here before
    // the failed attempt's task has been joined, and joining the old one
    // must not free (and so drop the stop handle of) the new one.
    let mut in_flight: JoinSet<uuid::Uuid> = JoinSet::new();
    let mut running: HashMap<uuid::Uuid, Slot> = HashMap::new();
    // Each attempt task's attempt, for a task that ends without returning it.
    let mut tasks: HashMap<tokio::task::Id, uuid::Uuid> = HashMap::new();
    let poll = if queue.is_sqlite() { queue.inner.poll_interval } else { queue.inner.poll_interval.saturating_mul(5) };
    let mut backoff = Duration::from_millis(50);
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut released = false;
    let batch_floor = (config.concurrency / 4).max(1);
    let mut drained = true;
    loop {
        let mut wait = poll;
        // Claim in batches while busy: a claim is a round trip whatever its
        // size. When the queue ran dry last time, claim for any free slot at
        // once, so a lone new job starts within milliseconds.
        let free = config.concurrency.saturating_sub(running.len());
        let accepting = runner.accepting();
        if !accepting {
            // The runner's cluster is away: leave the jobs QUEUED and ask again soon.
            wait = poll.max(Duration::from_millis(100));
        }
        if accepting && stopping.is_none() && free > 0 && (drained || free >= batch_floor) {
            let claimer = Claimer {
                worker_id: &config.id,
                runner: runner.name(),
                initial: runner.initial_state(),
                queues: &claimer_queues,
            };
            match store::claim::claim(queue.db(), &claimer, free).await {
                Ok(claimed) => {
                    backoff = Duration::from_millis(50);
                    let got = claimed.len();
                    drained = got < free;
                    for claimed in claimed {
                        let (stop, stop_rx) = watch::channel(None);
                        let since = tokio::time::Instant::now();
                        running.insert(claimed.attempt_id, Slot { job: claimed.job_id, stop, since });
                        let attempt = claimed.attempt_id;
                        let task = start(&mut in_flight, &queue, &runner, writer.recorder(), &config, claimed, stop_rx);
                        tasks.insert(task, attempt);
                    }
                    publish_held(&held, &running);
                    if got > 0 && drained {
                        // Fewer than asked: the queue may hold more that became ready meanwhile.
                        wait = Duration::ZERO;
                    }
                }
                Err(error) => {
                    tracing::warn!(worker = %config.id, %error, retry_in = ?backoff, "cannot claim jobs");
                    wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        if stopping.is_some() && running.is_empty() {
            break;
        }
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        let grace_over = async {
            match stopping {
                Some(deadline) if !released => tokio::time::sleep_until(deadline).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some(finished) = in_flight.join_next_with_id() => {
                ended(finished, &mut tasks, &mut running, &config.id);
                while let Some(finished) = in_flight.try_join_next_with_id() {
                    ended(finished, &mut tasks, &mut running, &config.id);
                }
                publish_held(&held, &running);
            }
            Some(claimed) = adopted.recv(), if stopping.is_none() => {
                // A dead worker's cluster attempt: follow it here. Its job runs
                // already, so it takes a slot even when none is free.
                let claimed: Claimed = claimed;
                if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(claimed.attempt_id) {
                    tracing::info!(worker = %config.id, job = %claimed.job_id, attempt = %claimed.attempt_id, "adopted an attempt of a silent worker (or of this worker's earlier process)");
                    let (stop, stop_rx) = watch::channel(None);
                    slot.insert(Slot { job: claimed.job_id, stop, since: tokio::time::Instant::now() });
                    let attempt = claimed.attempt_id;
                    let task = start(&mut in_flight, &queue, &runner, writer.recorder(), &config, claimed, stop_rx);
                    tasks.insert(task, attempt);
                    publish_held(&held, &running);
                }
            }
            Some((_job, attempt)) = cancels.recv() => {
                if let Some(slot) = running.get(&attempt) {
                    let _ = slot.stop.send(Some(Stop::Cancel));
                }
            }
            Some(live) = lives.recv() => {
                for (attempt, slot) in &running {
                    let lost = live.asked.contains(attempt) && !live.attempts.contains(attempt);
                    if slot.since < live.looked && lost && slot.stop.borrow().is_none() {
                        tracing::warn!(
                            worker = %config.id,
                            job = %slot.job,
                            %attempt,
                            "attempt found LOST (no heartbeat within the stuck timeout) while it still ran here: \
                             stopping it, its retry may run elsewhere"
                        );
                        let _ = slot.stop.send(Some(Stop::Cancel));
                    }
                }
            }
            signal = signals.recv() => match signal {
                Ok(Signal::CancelRequested(job)) => {
                    for slot in running.values().filter(|slot| slot.job == job) {
                        let _ = slot.stop.send(Some(Stop::Cancel));
                    }
                }
                Ok(Signal::Ready) | Err(broadcast::error::RecvError::Lagged(_)) => drained = true,
                Ok(Signal::Moved(..) | Signal::Events) => {}
                Err(broadcast::error::RecvError::Closed) => sleep.await,
            },
            changed = shutdown.changed(), if stopping.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    tracing::info!(worker = %config.id, running = running.len(), grace = ?config.grace, "worker stopping");
                    let now = tokio::time::Instant::now();
                    // `grace` is at most a year: past that the grace would end at once.
                    stopping = Some(now.checked_add(config.grace).unwrap_or(now));
                }
            }
            _ = grace_over => {
                tracing::info!(worker = %config.id, released = running.len(), "grace period over; releasing running attempts");
                for slot in running.values() {
                    let _ = slot.stop.send(Some(Stop::Release));
                }
                released = true;
            }
            // Time to look again: for any free slot, not only a batch's
            // worth (jobs enqueued by another process on SQLite send no
            // signal, and slots must not stay idle while jobs wait).
            _ = &mut sleep => drained = true,
        }
    }
    writer.close().await;
    lease.abort_all();
    if let Err(error) = store::lease::stop(queue.db(), &config.id).await {
        tracing::warn!(worker = %config.id, %error, "cannot mark the lease stopped");
    }
    tracing::info!(worker = %config.id, "worker stopped");
}

/// Frees the slot of an attempt whose task ended. Attempts catch their own
/// panics and none is aborted, so a task ends with an error only where the
/// worker's own code panicked: its slot is freed all the same (the worker
/// would otherwise run one attempt fewer and never finish a shutdown), and
/// as its outcome was not written and it is no longer heartbeated, it is
/// found LOST and its job moves on.
fn ended(
    finished: Result<(tokio::task::Id, uuid::Uuid), tokio::task::JoinError>,
    tasks: &mut HashMap<tokio::task::Id, uuid::Uuid>,
    running: &mut HashMap<uuid::Uuid, Slot>,
    worker: &str,
) {
    let task = match &finished {
        Ok((task, _)) => *task,
        Err(error) => error.id(),
    };
    let Some(attempt) = tasks.remove(&task) else { return };
    if let Err(error) = finished {
        let job = running.get(&attempt).map(|slot| slot.job);
        tracing::error!(%worker, ?job, %attempt, %error, "an attempt's task failed before its outcome was written; it will be found LOST");
    }
    running.remove(&attempt);
}

/// Tells the lease loop which attempts the worker holds now.
fn publish_held(held: &watch::Sender<Vec<uuid::Uuid>>, running: &HashMap<uuid::Uuid, Slot>) {
    held.send_replace(running.keys().copied().collect());
}

/// Starts one attempt: runs it through the runner (or fails it at once when
/// its stored row could not be read), then records its outcome.
fn start(
    in_flight: &mut JoinSet<uuid::Uuid>,
    queue: &Queue,
    runner: &Arc<dyn Runner>,
    recorder: &Recorder,
    config: &Config,
    claimed: Claimed,
    stop: watch::Receiver<Option<Stop>>,
) -> tokio::task::Id {
    let worker_id = &config.id;
    let job_id = claimed.job_id;
    let span = tracing::info_span!(
        "job_attempt",
        job = %job_id,
        attempt = claimed.attempt,
        function = %claimed.function,
        queue = %claimed.queue,
        worker = %worker_id,
        runner = runner.name(),
    );
    let recorder = recorder.clone();
    let outcome = match claimed.unreadable.clone() {
        Some(problem) => futures::future::ready(Outcome::failed("Codec", problem)).boxed(),
        None => {
            let attempt = Attempt {
                claimed: claimed.clone(),
                queue: queue.clone(),
                worker_id: worker_id.to_string(),
                heartbeat: config.heartbeat,
                stop,
            };
            AssertUnwindSafe(runner.run(attempt))
                .catch_unwind()
                .map(|outcome| {
                    outcome
                        .unwrap_or_else(|_| Outcome::failed("Panic", "the runner panicked while running the attempt"))
                })
                .boxed()
        }
    };
    let run_time = queue.inner.counters.run_time.clone();
    in_flight
        .spawn(
            async move {
                let began = std::time::Instant::now();
                let outcome = outcome.await;
                run_time.observe(began.elapsed().as_secs_f64());
                recorder.record(&claimed, outcome).await;
                claimed.attempt_id
            }
            .instrument(span),
        )
        .id()
}

/// Where the lease loop sends the attempts it adopts, for runners that adopt.
struct Adopt {
    runner: &'static str,
    found: mpsc::UnboundedSender<Claimed>,
}

/// What joins the lease loop to the worker's loop: the attempts the worker
/// holds (to heartbeat), and where the lease loop reports cancels, the
/// attempts still live, and attempts it adopts.
struct LeaseLinks {
    holds: watch::Receiver<Vec<uuid::Uuid>>,
    /// Attempts whose outcome waits for the writer.
    unwritten: record::Unwritten,
    /// Whether the worker heartbeats its RUNNING attempts too (else only
    /// SUBMITTED ones: RUNNING ones heartbeat themselves).
    beats_running: bool,
    cancels: mpsc::UnboundedSender<(JobId, uuid::Uuid)>,
    lives: Option<mpsc::UnboundedSender<Live>>,
    adopt: Option<Adopt>,
}

/// Whether this worker's own view of the database is steady enough to
/// judge other workers silent: not while its own heartbeats fail or stall,
/// nor for one stuck timeout after (the others were most likely cut off
/// or stalled the same way, and have yet to heartbeat again).
#[derive(Debug, Default)]
struct Steadiness {
    unsteady_since: Option<tokio::time::Instant>,
}

impl Steadiness {
    /// Takes in one heartbeat: whether it failed, and how long it took.
    fn beat(&mut self, ok: bool, took: Duration, stuck: Duration, now: tokio::time::Instant) {
        if !ok || took > stuck / 4 {
            self.unsteady_since = Some(now);
        }
    }

    /// Whether other workers may be judged now.
    fn may_judge(&self, stuck: Duration, now: tokio::time::Instant) -> bool {
        self.unsteady_since.is_none_or(|since| now.saturating_duration_since(since) >= stuck)
    }
}

/// Renews the lease and heartbeats the attempts the worker holds, forwards
/// cancels, adopts the cluster attempts of silent workers (before they
/// would be found lost), recovers lost attempts. It judges other workers
/// silent only while its own heartbeats are steady (see [`Steadiness`]).
async fn lease_loop(queue: Queue, id: Arc<str>, every: Duration, stuck: Duration, links: LeaseLinks) {
    let LeaseLinks { holds, unwritten, beats_running, cancels, lives, adopt } = links;
    // A worker may start as the database comes back from an outage (its
    // supervisor restarted it when it could not connect): it judges others
    // only a stuck timeout after it started, as after an outage it saw.
    let mut steadiness = Steadiness { unsteady_since: Some(tokio::time::Instant::now()) };
    // A worker silent for half the stuck timeout has its cluster attempts
    // adopted; the reconciler would call them lost only at the full timeout.
    let silent_us = i64::try_from((stuck / 2).max(every.saturating_mul(3)).as_micros()).unwrap_or(i64::MAX);
    let stuck_us = i64::try_from(stuck.as_micros()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Reconciling a few times per stuck timeout is enough, and keeps the
    // writer lock (SQLite) free for claims.
    let reconcile_every = (stuck.as_micros() / every.as_micros().max(1) / 4).clamp(1, 10) as u64;
    for ticks in 0u64.. {
        tick.tick().await;
        let looked = tokio::time::Instant::now();
        // What it runs, and what ended but waits for the writer: an outcome
        // not yet written keeps its attempt alive.
        let mut held = holds.borrow().clone();
        held.extend(unwritten.attempts());
        let beat = store::lease::heartbeat(queue.db(), &id, &held, beats_running).await;
        let now = tokio::time::Instant::now();
        steadiness.beat(beat.is_ok(), now.saturating_duration_since(looked), stuck, now);
        match beat {
            Ok(beat) => {
                for cancel in beat.cancels {
                    let _ = cancels.send(cancel);
                }
                if let Some(lives) = &lives {
                    let asked = held.iter().copied().collect();
                    let _ = lives.send(Live { looked, asked, attempts: beat.live.into_iter().collect() });
                }
            }
            Err(error) => tracing::warn!(worker = %id, %error, "heartbeat failed"),
        }
        if ticks % reconcile_every != 0 {
            continue;
        }
        // Old lifecycle events go now and then (every workers' pass deletes
        // the same rows, harmlessly).
        if ticks % (reconcile_every * 64) == 0 {
            match queue.prune_events(queue.inner.event_retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(worker = %id, pruned, "old lifecycle events deleted"),
                Err(error) => tracing::warn!(worker = %id, %error, "pruning lifecycle events failed"),
            }
        }
        if let Some(adopt) = &adopt {
            match store::attempt::adopt(queue.db(), &id, adopt.runner, silent_us).await {
                Ok(found) => {
                    for claimed in found {
                        let _ = adopt.found.send(claimed);
                    }
                }
                Err(error) => tracing::warn!(worker = %id, %error, "cannot adopt the attempts of silent workers"),
            }
        }
        if !steadiness.may_judge(stuck, now) {
            continue;
        }
        match store::lease::reconcile(queue.db(), stuck_us).await {
            Ok(recovered) => {
                for lost in recovered {
                    queue.inner.counters.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        job = %lost.job_id,
                        attempt = %lost.attempt_id,
                        worker = lost.worker_id.as_deref().unwrap_or("?"),
                        now = ?lost.job_state,
                        "attempt LOST: its worker stopped heartbeating"
                    );
                    if let Some(state) = lost.job_state {
                        queue.signal(Signal::Moved(lost.job_id, state));
                        if state == JobState::Queued {
                            queue.signal(Signal::Ready);
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(worker = %id, %error, "reconcile failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_workers_are_judged_only_a_stuck_timeout_after_this_ones_heartbeats_steadied() {
        let stuck = Duration::from_secs(30);
        let start = tokio::time::Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut steadiness = Steadiness::default();
        assert!(steadiness.may_judge(stuck, start), "a worker that saw no trouble judges at once");
        steadiness.beat(true, Duration::from_millis(5), stuck, at(1));
        assert!(steadiness.may_judge(stuck, at(1)));
        // The database is away for 40 s: the heartbeats fail.
        steadiness.beat(false, Duration::from_secs(5), stuck, at(10));
        steadiness.beat(false, Duration::from_secs(5), stuck, at(50));
        // It answers again: the others have yet to heartbeat.
        steadiness.beat(true, Duration::from_millis(5), stuck, at(51));
        assert!(!steadiness.may_judge(stuck, at(51)));
        assert!(!steadiness.may_judge(stuck, at(79)));
        assert!(steadiness.may_judge(stuck, at(80)), "one stuck timeout after the last failure");
        // A heartbeat that stalled (a SQLite writer lock held for long) counts as trouble too.
        steadiness.beat(true, Duration::from_secs(10), stuck, at(100));
        assert!(!steadiness.may_judge(stuck, at(101)));
        assert!(steadiness.may_judge(stuck, at(130)));
    }

    #[test]
    fn builder_defaults_are_sane() {
        // Building needs no database: only start() touches it.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let q = Queue::connect("sqlite::memory:").await.unwrap();
            let b = Worker::builder(&q).concurrency(0);
            assert_eq!(b.concurrency, 1);
            assert_eq!(b.queues, vec!["default".to_string()]);
        });
    }
}
