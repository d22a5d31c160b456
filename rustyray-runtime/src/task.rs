//! One task as the runtime tracks it: the manager's table entry
//! ([`Entry`]), and one attempt of it as the executor runs it ([`Start`]).
//!
//! An entry is allocated by the submitting thread and sent to the manager in
//! a `Msg::Submit`; the manager keeps it until the task finishes, then keeps
//! its [`Record`]. Each attempt is prepared from the entry
//! ([`Entry::prepare_attempt`]) and handed to the executor as a [`Start`].
//!
//! A million tasks may wait in the table at once, so an entry keeps its
//! description compact ([`Spec`]): what most tasks leave at its default
//! (options, recorded arguments, a trace parent) is kept out of line, and
//! only when set.

use std::ops::Deref;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustyray_core::{
    Attempt, Deps, Error, FunctionId, ObjectCell, TaskBody, TaskId, TaskKind, TaskOptions, TaskOrigin, TaskSpec,
};
use tokio::task::AbortHandle;

use crate::scheduler::{Demand, Held};
use crate::state::{AttemptRecord, Attempts, Record, TaskState};

/// Names a worker: a blocking thread that runs plain attempts one after
/// another (see `executor::worker`).
pub(crate) type WorkerId = u64;

/// One attempt to run, as the manager hands it to the executor.
pub(crate) struct Start {
    pub(crate) task: TaskId,
    pub(crate) attempt: Attempt,
    pub(crate) body: TaskBody,
    pub(crate) output: Arc<ObjectCell>,
    /// Whether the task holds resources to give back while it waits.
    pub(crate) releases_on_wait: bool,
    /// Set by the manager when it gives up on this attempt (timed out, retry
    /// started): a late success must not be written then.
    pub(crate) abandon: Option<Arc<AtomicBool>>,
    /// Whether the manager left it in a worker's mailbox ahead of time: it
    /// holds no CPU until the worker reports starting it.
    pub(crate) lookahead: bool,
    /// Whether it has a timeout (its start must be reported without delay).
    pub(crate) timed: bool,
    /// The attempt's `tracing` span, entered while the body runs.
    pub(crate) span: tracing::Span,
    /// A direct actor call's entry, which travels with it until the actor's
    /// thread takes the call (see `actor::direct`); empty for the rest.
    pub(crate) unannounced: Unannounced,
}

/// The entry of a direct actor call the manager has not heard of yet: it
/// travels with the call to the actor's slot, and from there to the manager
/// in the actor thread's next report batch (or, if the manager empties the
/// slot first, straight to it).
///
/// Whatever loses it on the way (a batch the manager never reads, a slot
/// dropped with the runtime) fails the call with [`Error::RuntimeShutdown`]:
/// nobody waits forever on a call the manager never heard of.
#[derive(Default)]
pub(crate) struct Unannounced(Option<Box<Entry>>);

impl Unannounced {
    /// A call the manager already knows of.
    pub(crate) const NONE: Unannounced = Unannounced(None);

    pub(crate) fn new(entry: Box<Entry>) -> Self {
        Unannounced(Some(entry))
    }

    /// Takes the entry out, to hand it to the manager.
    pub(crate) fn take(&mut self) -> Option<Box<Entry>> {
        self.0.take()
    }

    /// The call's task, if the entry is still here.
    pub(crate) fn task(&self) -> Option<TaskId> {
        self.0.as_ref().map(|entry| entry.spec.id)
    }
}

impl Drop for Unannounced {
    fn drop(&mut self) {
        if let Some(entry) = self.0.take() {
            entry.output().complete(Err(Error::RuntimeShutdown));
        }
    }
}

/// A task's description as the manager keeps it: a [`TaskSpec`] whose
/// options, recorded arguments and trace parent are out of line ([`Options`]),
/// and whose submitting location (which nothing reads) is not kept.
pub(crate) struct Spec {
    pub(crate) id: TaskId,
    pub(crate) function: FunctionId,
    /// The actor it creates or calls (0 for a plain call). Which of those
    /// the task does is a byte of the entry, where it costs no room (see
    /// [`Entry::kind`]): a [`TaskKind`] here would take two words.
    actor: u64,
    pub(crate) options: Options,
    pub(crate) deps: Inputs,
    pub(crate) body: TaskBody,
    pub(crate) output: Arc<ObjectCell>,
    /// The task that submitted it, if any (one word: see [`Maybe`]).
    parent: Maybe,
}

impl Spec {
    fn new(spec: TaskSpec) -> (Self, Kind) {
        let TaskSpec { id, function, kind, options, deps, body, output, parent, caller: _, args, trace_parent } = spec;
        let (kind, actor) = match kind {
            TaskKind::Normal => (Kind::Normal, 0),
            TaskKind::ActorCreation { actor } => (Kind::ActorCreation, actor.as_u64()),
            TaskKind::ActorMethod { actor } => (Kind::ActorMethod, actor.as_u64()),
        };
        let options = if is_default(&options) && args.is_none() && trace_parent.is_none() {
            Options(None)
        } else {
            Options(Some(Box::new(Extra { options, args, trace_parent })))
        };
        let parent = Maybe::of(parent.map(TaskId::as_u64));
        let deps = Inputs::of(deps);
        (Spec { id, function, actor, options, deps, body, output, parent }, kind)
    }

    /// The task that submitted this one, if a task did.
    pub(crate) fn parent(&self) -> Option<TaskId> {
        self.parent.get().map(TaskId::from_u64)
    }

    /// Names this task, for errors.
    pub(crate) fn origin(&self) -> TaskOrigin {
        TaskOrigin { task: self.id, function: self.function, name: self.options.name.clone() }
    }
}

/// Which of the three kinds of task an entry is; with [`Spec`]'s actor,
/// its [`TaskKind`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Normal,
    ActorCreation,
    ActorMethod,
}

/// A task's options (read through `Deref`), its recorded arguments and its
/// trace parent: one word, and no allocation when all are defaults, as for
/// most tasks.
pub(crate) struct Options(Option<Box<Extra>>);

/// What a task sets beyond the defaults.
struct Extra {
    options: TaskOptions,
    args: Option<Arc<str>>,
    trace_parent: Option<Box<tracing::Span>>,
}

/// The options of a call that sets none.
static DEFAULT_OPTIONS: TaskOptions = TaskOptions {
    name: None,
    max_retries: 0,
    backoff: None,
    timeout: None,
    priority: 0,
    queue: None,
    num_cpus: None,
    resources: Vec::new(),
    record_args: false,
    run_at: None,
    invalid: None,
};

/// Whether `options` are the defaults (every field is named, so a new option
/// cannot be forgotten here).
fn is_default(options: &TaskOptions) -> bool {
    let TaskOptions {
        name,
        max_retries,
        backoff,
        timeout,
        priority,
        queue,
        num_cpus,
        resources,
        record_args,
        run_at,
        invalid,
    } = options;
    name.is_none()
        && *max_retries == 0
        && backoff.is_none()
        && timeout.is_none()
        && *priority == 0
        && queue.is_none()
        && num_cpus.is_none()
        && resources.is_empty()
        && !record_args
        && run_at.is_none()
        && invalid.is_none()
}

impl Deref for Options {
    type Target = TaskOptions;

    fn deref(&self) -> &TaskOptions {
        self.0.as_ref().map_or(&DEFAULT_OPTIONS, |extra| &extra.options)
    }
}

impl Options {
    /// Whether every option is at its default (and no arguments are recorded,
    /// no trace parent kept).
    pub(crate) fn is_default(&self) -> bool {
        self.0.is_none()
    }

    /// Takes the first invalid option given, if any.
    pub(crate) fn take_invalid(&mut self) -> Option<Box<Error>> {
        self.0.as_mut().and_then(|extra| extra.options.invalid.take())
    }

    /// Takes its start time out (`run_after` / `run_at`), if it has one.
    pub(crate) fn take_run_at(&mut self) -> Option<rustyray_core::RunAt> {
        self.0.as_mut().and_then(|extra| extra.options.run_at.take())
    }

    /// Marks the task as refused with `error` before it runs.
    pub(crate) fn set_invalid(&mut self, error: Error) {
        let extra = self
            .0
            .get_or_insert_with(|| Box::new(Extra { options: TaskOptions::default(), args: None, trace_parent: None }));
        extra.options.invalid = Some(Box::new(error));
    }

    /// Its arguments as text, if the call opted in to recording them.
    pub(crate) fn args(&self) -> Option<&Arc<str>> {
        self.0.as_ref().and_then(|extra| extra.args.as_ref())
    }

    /// The span current where it was submitted, if any.
    pub(crate) fn trace_parent(&self) -> Option<&tracing::Span> {
        self.0.as_ref().and_then(|extra| extra.trace_parent.as_deref())
    }

    /// The options and recorded arguments, moved out.
    fn into_parts(self) -> (TaskOptions, Option<Arc<str>>) {
        match self.0 {
            Some(extra) => {
                let Extra { options, args, .. } = *extra;
                (options, args)
            }
            None => (TaskOptions::default(), None),
        }
    }
}

/// A task the manager is responsible for, until it finishes. Allocated by the
/// submitting thread, so the manager's loop does not pay for it.
pub(crate) struct Entry {
    pub(crate) spec: Spec,
    pub(crate) state: TaskState,
    /// Which kind of task it is (see [`Entry::kind`]).
    kind: Kind,
    /// What it waits for (see [`Waited`]).
    waited: Waited,
    /// Its place in the scheduler while queued; `None` when not in the
    /// scheduler (waiting for arguments or a retry's backoff, or running).
    pub(crate) queued_seq: Maybe,
    /// Its running attempt, attempts, children and inputs, from its first
    /// attempt on (or its first child); boxed, as a task that waits has none.
    history: Option<Box<History>>,
    pub(crate) submitted: Stamp,
    /// An actor call counted as on its way through the manager's line (see
    /// `ActorSlot::route`), until it is released to the actor or ends.
    pub(crate) routed: bool,
    /// An actor call its caller left in the actor's slot itself: its first
    /// attempt is prepared and already on its way to running.
    pub(crate) direct: bool,
}

/// The objects a task takes as arguments, in two words (a [`Deps`] takes
/// three): most tasks have none or one, and a million may wait at once.
pub(crate) enum Inputs {
    None,
    One(Arc<ObjectCell>),
    Many(Box<Deps>),
}

impl Inputs {
    fn of(mut deps: Deps) -> Self {
        match deps.len() {
            0 => Inputs::None,
            1 => deps.pop().map_or(Inputs::None, Inputs::One),
            _ => Inputs::Many(Box::new(deps)),
        }
    }

    /// The objects, in argument order.
    pub(crate) fn as_slice(&self) -> &[Arc<ObjectCell>] {
        match self {
            Inputs::None => &[],
            Inputs::One(cell) => std::slice::from_ref(cell),
            Inputs::Many(cells) => cells,
        }
    }

    /// Lets go of them (the task's inputs are resolved).
    pub(crate) fn clear(&mut self) {
        *self = Inputs::None;
    }
}

/// Two numbers a task never needs at once, in one half-word: while it waits
/// for its arguments, how many objects it still waits for; from the moment
/// it is queued, how long after its submission that was (for the queue-wait
/// histogram), see [`Waited::delay`]. A million tasks may wait at once, and
/// with the entry's one-byte fields this keeps it within glibc's 128-byte
/// chunk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Waited(u32);

impl Waited {
    /// The top bit says the rest counts milliseconds, not microseconds.
    const MILLIS: u32 = 1 << 31;

    /// A delay: to the microsecond up to about 35 minutes, to the
    /// millisecond beyond (up to about 24 days; a longer one counts as that).
    fn delay(delay: Duration) -> Waited {
        match u32::try_from(delay.as_micros()) {
            Ok(micros) if micros < Self::MILLIS => Waited(micros),
            _ => Waited(Self::MILLIS | u32::try_from(delay.as_millis()).unwrap_or(u32::MAX).min(Self::MILLIS - 1)),
        }
    }

    /// The delay [`delay`](Self::delay) kept.
    fn as_delay(self) -> Duration {
        if self.0 & Self::MILLIS == 0 {
            Duration::from_micros(u64::from(self.0))
        } else {
            Duration::from_millis(u64::from(self.0 & !Self::MILLIS))
        }
    }
}

/// An instant in one word rather than an `Instant`'s two: nanoseconds since
/// a process-wide origin (taken before any task is submitted).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

/// The instant stamps count from.
pub(crate) fn stamp_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Stamp {
    /// The origin: a stamp not taken yet.
    pub(crate) const UNSET: Stamp = Stamp(0);

    /// `at` as a stamp (an instant before the origin is the origin).
    pub(crate) fn of(at: Instant) -> Self {
        Stamp(u64::try_from(at.saturating_duration_since(stamp_origin()).as_nanos()).unwrap_or(u64::MAX))
    }

    /// The stamp as an instant.
    pub(crate) fn instant(self) -> Instant {
        let origin = stamp_origin();
        origin.checked_add(Duration::from_nanos(self.0)).unwrap_or(origin)
    }
}

/// What a task gathers once it runs.
#[derive(Default)]
pub(crate) struct History {
    /// The attempt running now (kept here rather than boxed in the entry of
    /// its own: an attempt's history exists from the moment it is prepared,
    /// so one allocation serves both).
    running: Option<Running>,
    pub(crate) attempts: Attempts,
    /// Tasks it submitted, for recursive cancellation.
    pub(crate) children: Vec<TaskId>,
    /// The tasks whose outputs it takes as arguments (for the timeline).
    pub(crate) inputs: Box<[TaskId]>,
    /// The worker whose mailbox holds its prepared attempt, handed over
    /// ahead of time (see [`Entry::assigned`]), and its place in line then,
    /// to go back to if the worker does not start it. Kept here rather than
    /// in the entry, as the give-up flag below: a queued task has no
    /// history, and a million may wait.
    pub(crate) assigned: Maybe,
    pub(crate) lookahead_seq: Maybe,
    /// The give-up flag of the prepared attempt, until it is marked running
    /// (kept here rather than in the entry: only a task with a timeout has
    /// one, and only once an attempt is prepared, when this exists).
    pub(crate) prepared_abandon: Option<Arc<AtomicBool>>,
    /// Attempts started (or handed to a worker to start) so far: kept here,
    /// as a task that has none has no history either.
    started: u32,
}

/// An optional number (a place in line, a [`WorkerId`]) in one word rather
/// than an `Option`'s two: every task in the table carries several.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Maybe(u64);

impl Maybe {
    /// No number.
    pub(crate) const NONE: Maybe = Maybe(u64::MAX);

    /// The number `n` (which must not be `u64::MAX`, a count no line reaches).
    pub(crate) fn some(n: u64) -> Maybe {
        debug_assert_ne!(n, u64::MAX);
        Maybe(n)
    }

    /// `n` if given; `u64::MAX` (which no counter here reaches) reads as none.
    pub(crate) fn of(n: Option<u64>) -> Maybe {
        n.map_or(Maybe::NONE, Maybe)
    }

    pub(crate) fn get(self) -> Option<u64> {
        (self != Maybe::NONE).then_some(self.0)
    }

    pub(crate) fn take(&mut self) -> Option<u64> {
        std::mem::replace(self, Maybe::NONE).get()
    }

    pub(crate) fn is_some(self) -> bool {
        self != Maybe::NONE
    }

    pub(crate) fn is_none(self) -> bool {
        self == Maybe::NONE
    }
}

impl Default for Maybe {
    /// No number (not zero, which is a number).
    fn default() -> Self {
        Maybe::NONE
    }
}

impl PartialEq<Option<u64>> for Maybe {
    fn eq(&self, other: &Option<u64>) -> bool {
        self.get() == *other
    }
}

/// The attempt running now.
pub(crate) struct Running {
    pub(crate) attempt: u32,
    /// Stops an async body.
    pub(crate) abort: Option<AbortHandle>,
    pub(crate) timer: Option<crate::timer::TimerKey>,
    pub(crate) held: Held,
    pub(crate) abandon: Option<Arc<AtomicBool>>,
    /// The worker it runs on, for a plain attempt on a worker.
    pub(crate) worker: Option<WorkerId>,
}

/// An attempt the manager gave up on (timed out or cancelled) whose plain body
/// still runs: it keeps its resources until it returns.
pub(crate) struct Abandoned {
    pub(crate) attempt: u32,
    pub(crate) held: Held,
    /// Whether it was cancelled (tasks it submits from now on are cancelled too).
    pub(crate) cancelled: bool,
    /// The worker it runs on.
    pub(crate) worker: Option<WorkerId>,
}

impl Entry {
    pub(crate) fn new(spec: TaskSpec) -> Box<Self> {
        // The manager stamps both when it takes the task in (and when it
        // queues it): a clock read here would be thrown away.
        let now = Stamp::UNSET;
        let (spec, kind) = Spec::new(spec);
        Box::new(Entry {
            spec,
            state: TaskState::PendingArgs,
            kind,
            waited: Waited(0),
            queued_seq: Maybe::NONE,
            history: None,
            submitted: now,
            routed: false,
            direct: false,
        })
    }

    /// Describes the next attempt for the executor (the attempt is counted
    /// from here; it runs once the manager marks it running).
    pub(crate) fn prepare_attempt(&mut self) -> Start {
        self.queued_seq = Maybe::NONE;
        // Inputs are resolved; dropping our hold on them lets the last attempt
        // move a value out of the store instead of copying it. What they were
        // is kept for the timeline, from now only (a task that waits keeps
        // no more than its dependencies).
        if self.history.is_none() {
            let inputs = self.input_tasks();
            self.history().inputs = inputs;
        }
        let history = self.history();
        history.started += 1;
        let number = history.started;
        let last = number > self.spec.options.max_retries;
        self.spec.deps.clear();
        let abandon = (self.spec.options.timeout.is_some() && !last).then(|| Arc::new(AtomicBool::new(false)));
        self.history().prepared_abandon = abandon.clone();
        let spec = &self.spec;
        // With no subscriber recording INFO the span would be disabled
        // anyway; the macro's own check of that still costs a few calls per
        // attempt (more with `tracing`'s `log` feature, which another crate
        // of the program may turn on), so it is skipped.
        let span = if tracing::level_enabled!(tracing::Level::INFO) {
            tracing::info_span!(
                target: "rustyray::task",
                parent: spec.options.trace_parent().and_then(tracing::Span::id),
                "task",
                task = %spec.id,
                function = spec.function.name(),
                name = spec.options.name.as_deref(),
                attempt = number,
                parent_task = spec.parent.get(),
                args = spec.options.args().map(|args| &**args),
            )
        } else {
            tracing::Span::none()
        };
        Start {
            span,
            task: self.spec.id,
            attempt: Attempt { number, last },
            body: self.spec.body.clone(),
            output: self.spec.output.clone(),
            releases_on_wait: !self.demand().is_zero(),
            abandon,
            lookahead: false,
            timed: self.spec.options.timeout.is_some(),
            unannounced: Unannounced::NONE,
        }
    }

    /// The tasks whose outputs it takes as arguments: known from its
    /// dependencies until its first attempt, from `inputs` after.
    fn input_tasks(&self) -> Box<[TaskId]> {
        match &self.history {
            Some(history) if !history.inputs.is_empty() => history.inputs.clone(),
            _ => self.spec.deps.as_slice().iter().filter_map(|cell| cell.producer()).collect(),
        }
    }

    /// Its attempts, children and inputs, made on first use.
    pub(crate) fn history(&mut self) -> &mut History {
        self.history.get_or_insert_with(Box::default)
    }

    /// While it waits for its arguments: how many objects it still waits for.
    pub(crate) fn unresolved(&self) -> u32 {
        debug_assert_eq!(self.state, TaskState::PendingArgs);
        self.waited.0
    }

    /// While it waits for its arguments: it waits for `count` objects.
    pub(crate) fn set_unresolved(&mut self, count: u32) {
        debug_assert_eq!(self.state, TaskState::PendingArgs);
        self.waited = Waited(count);
    }

    /// While it waits for its arguments: one of them is ready. Returns
    /// whether that was the last one it waited for.
    pub(crate) fn resolve_one(&mut self) -> bool {
        let left = self.unresolved().saturating_sub(1);
        self.set_unresolved(left);
        left == 0
    }

    /// It was queued (became ready to run) at `at`.
    pub(crate) fn mark_queued(&mut self, at: Stamp) {
        self.waited = Waited::delay(Duration::from_nanos(at.0.saturating_sub(self.submitted.0)));
    }

    /// When it was last queued (to the microsecond, or beyond 35 minutes
    /// after its submission to the millisecond; see [`Waited`]).
    pub(crate) fn queued_at(&self) -> Instant {
        let submitted = self.submitted.instant();
        submitted.checked_add(self.waited.as_delay()).unwrap_or(submitted)
    }

    /// Attempts started (or handed to a worker to start) so far.
    pub(crate) fn started_attempts(&self) -> u32 {
        self.history.as_ref().map_or(0, |history| history.started)
    }

    /// The last attempt prepared was handed back unstarted: it does not count.
    pub(crate) fn unprepare_attempt(&mut self) {
        if let Some(history) = self.history.as_mut() {
            history.started = history.started.saturating_sub(1);
        }
    }

    /// The worker whose mailbox holds its next attempt, if it was handed
    /// over ahead of time and has not started.
    pub(crate) fn assigned(&self) -> Option<WorkerId> {
        self.history.as_ref().and_then(|history| history.assigned.get())
    }

    /// No worker's mailbox holds its next attempt any more: which did.
    pub(crate) fn take_assigned(&mut self) -> Option<WorkerId> {
        self.history.as_mut().and_then(|history| history.assigned.take())
    }

    /// The attempt running now.
    pub(crate) fn running(&self) -> Option<&Running> {
        self.history.as_ref()?.running.as_ref()
    }

    /// The attempt running now, to update.
    pub(crate) fn running_mut(&mut self) -> Option<&mut Running> {
        self.history.as_mut()?.running.as_mut()
    }

    /// Marks `running` as the attempt running now.
    pub(crate) fn set_running(&mut self, running: Running) {
        self.history().running = Some(running);
    }

    /// The attempt running now, taken out: it is no longer running.
    pub(crate) fn take_running(&mut self) -> Option<Running> {
        self.history.as_mut()?.running.take()
    }

    /// The attempt running now, taken out if `current` says it is the one.
    pub(crate) fn take_running_if(&mut self, current: impl FnOnce(&mut Running) -> bool) -> Option<Running> {
        self.history.as_mut()?.running.take_if(current)
    }

    /// Its attempts so far.
    pub(crate) fn attempts(&self) -> &[AttemptRecord] {
        self.history.as_ref().map_or(&[], |history| &history.attempts)
    }

    /// Its attempts, to add to or update.
    pub(crate) fn attempts_mut(&mut self) -> &mut Attempts {
        &mut self.history().attempts
    }

    /// The give-up flag of the prepared attempt, taken out (when it is
    /// marked running, or handed back unstarted).
    pub(crate) fn take_prepared_abandon(&mut self) -> Option<Arc<AtomicBool>> {
        self.history.as_mut().and_then(|history| history.prepared_abandon.take())
    }

    /// The tasks it submitted, taken out.
    pub(crate) fn take_children(&mut self) -> Vec<TaskId> {
        self.history.as_mut().map(|history| std::mem::take(&mut history.children)).unwrap_or_default()
    }

    /// The output cell, to fail the task when it cannot even be handed over.
    pub(crate) fn output(&self) -> &rustyray_core::ObjectCell {
        &self.spec.output
    }

    /// A plain task `id` of a function `t::f` returning `()`, writing `output`:
    /// the entry unit tests need.
    #[cfg(test)]
    pub(crate) fn for_test(id: TaskId, output: Arc<ObjectCell>) -> Box<Self> {
        Entry::new(TaskSpec {
            id,
            function: rustyray_core::FunctionId::new(&"t::f"),
            kind: TaskKind::Normal,
            options: TaskOptions::default(),
            deps: Deps::new(),
            body: TaskBody::plain(|_| Ok(Arc::new(()) as rustyray_core::Value)),
            output,
            parent: None,
            caller: std::panic::Location::caller(),
            args: None,
            trace_parent: None,
        })
    }

    /// What it holds while it runs. Its options and the kind of its body
    /// say it, so it is worked out when needed rather than kept: every task
    /// in the table would carry two words more (and without custom
    /// resources, which are rare, working it out allocates nothing).
    pub(crate) fn demand(&self) -> Demand {
        Demand::of(&self.spec.options, self.spec.body.is_plain())
    }

    /// Whether it holds CPUs while it runs (for an actor's creation task:
    /// while the actor lives).
    pub(crate) fn holds_cpus(&self) -> bool {
        self.demand().cpus > 0
    }

    /// What kind of task it is: a call of a function, or the creation or
    /// a method call of which actor.
    pub(crate) fn kind(&self) -> TaskKind {
        let actor = rustyray_core::ActorId::from_u64(self.spec.actor);
        match self.kind {
            Kind::Normal => TaskKind::Normal,
            Kind::ActorCreation => TaskKind::ActorCreation { actor },
            Kind::ActorMethod => TaskKind::ActorMethod { actor },
        }
    }

    /// The actor whose method it calls, if it is a method call.
    pub(crate) fn called_actor(&self) -> Option<rustyray_core::ActorId> {
        match self.kind() {
            TaskKind::ActorMethod { actor } => Some(actor),
            _ => None,
        }
    }

    /// Whether an attempt of this task may run on a worker: plain, one CPU, no queue.
    pub(crate) fn runs_on_worker(&self) -> bool {
        self.spec.body.is_plain() && self.demand().is_one_cpu() && self.spec.options.queue.is_none()
    }

    /// Whether the attempt running now has already written its value: the
    /// executor writes it before telling the manager, so for a moment the task
    /// has succeeded while its `Finished` message is still on the way.
    pub(crate) fn succeeded_unreported(&self) -> bool {
        self.state == TaskState::Running && matches!(self.spec.output.try_get(), Some(Ok(_)))
    }

    /// The finished task as the records keep it, moving out what can be
    /// moved. What is left of the entry may still hold a user's values (the
    /// arguments its body kept for attempts that never ran, its inputs, its
    /// output if no ref holds it any more): dropping it runs the user's
    /// `Drop`, which may panic or call back into the runtime, so the manager
    /// drops it after it lets go of its lock (see `Core::remains`).
    pub(crate) fn take_record(&mut self, finished: Instant) -> Record {
        let inputs = self.input_tasks();
        let kind = self.kind();
        let attempts = self.history.take().map(|history| history.attempts).unwrap_or_default();
        let (spec, state, submitted) = (&mut self.spec, self.state, self.submitted);
        let error = match spec.output.try_get() {
            Some(Err(error)) => Some(Box::new(error.clone())),
            _ => None,
        };
        let plain = spec.body.is_plain();
        // A task that ran to its end finished when its last attempt did: the
        // report may reach the manager after later tasks' reports.
        let finished = match state {
            TaskState::Succeeded | TaskState::Failed => {
                attempts.last().and_then(|attempt| attempt.ended).map_or(finished, |ended| ended.min(finished))
            }
            _ => finished,
        };
        let parent = spec.parent();
        let (id, function) = (spec.id, spec.function);
        let (options, args) = std::mem::replace(&mut spec.options, Options(None)).into_parts();
        Record {
            id,
            name: options.name,
            function,
            kind,
            state,
            parent,
            priority: options.priority,
            queue: options.queue,
            submitted: submitted.instant(),
            finished: Some(finished),
            attempts,
            error,
            inputs,
            plain,
            args,
        }
    }

    /// The task as state and statistics describe it.
    pub(crate) fn record(&self, finished: Option<Instant>) -> Record {
        Record {
            id: self.spec.id,
            name: self.spec.options.name.clone(),
            function: self.spec.function,
            kind: self.kind(),
            state: if self.succeeded_unreported() { TaskState::Succeeded } else { self.state },
            parent: self.spec.parent(),
            priority: self.spec.options.priority,
            queue: self.spec.options.queue.clone(),
            submitted: self.submitted.instant(),
            finished,
            attempts: self.attempts().iter().cloned().collect(),
            error: match self.spec.output.try_get() {
                Some(Err(error)) if self.state.is_final() => Some(Box::new(error.clone())),
                _ => None,
            },
            inputs: self.input_tasks(),
            plain: self.spec.body.is_plain(),
            args: self.spec.options.args().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_task_remembers_when_to_the_microsecond() {
        let id = TaskId::from_u64(1);
        let mut entry = Entry::for_test(id, ObjectCell::with_error(id.output(), None, Error::NoRuntime));
        entry.set_unresolved(2);
        assert_eq!(entry.unresolved(), 2);
        assert!(!entry.resolve_one(), "one of two resolved is not the last");
        assert!(entry.resolve_one(), "two of two resolved is the last");
        assert_eq!(entry.unresolved(), 0);
        // Stamps count from an origin taken on first use: take it first.
        let _ = stamp_origin();
        let submitted = Instant::now();
        entry.submitted = Stamp::of(submitted);
        let queued = submitted + Duration::from_micros(1_500);
        entry.state = TaskState::Queued;
        entry.mark_queued(Stamp::of(queued));
        assert_eq!(entry.queued_at().saturating_duration_since(submitted), Duration::from_micros(1_500));
        // Past 35 minutes, to the millisecond: a task that waited hours for
        // its arguments is counted as queued when it was.
        let hours = Duration::from_secs(5 * 3600) + Duration::from_micros(7_300);
        entry.mark_queued(Stamp::of(submitted + hours));
        assert_eq!(entry.queued_at().saturating_duration_since(submitted), Duration::from_millis(5 * 3600 * 1000 + 7));
        // The longest the half-word holds, about 24 days, for anything longer.
        assert_eq!(Waited::delay(Duration::from_secs(100 * 86_400)).as_delay(), Duration::from_millis((1 << 31) - 1));
        assert_eq!(Waited::delay(Duration::MAX).as_delay(), Duration::from_millis((1 << 31) - 1));
        // Both scales meet where one ends.
        let edge = Duration::from_micros((1 << 31) - 1);
        assert_eq!(Waited::delay(edge).as_delay(), edge);
        assert_eq!(Waited::delay(edge + Duration::from_micros(1)).as_delay(), Duration::from_millis(2_147_483));
    }

    #[tokio::test]
    async fn a_direct_call_lost_on_its_way_fails_with_runtime_shutdown() {
        let rt = crate::Runtime::builder().num_cpus(1).build().expect("a runtime builds inside tokio");
        let call = |n| {
            let id = TaskId::from_u64(n);
            Entry::for_test(id, ObjectCell::pending(id, FunctionId::new(&"t::f"), None, rt.runner()))
        };
        let lost = call(1);
        let lost_output = lost.spec.output.clone();
        drop(Unannounced::new(lost));
        assert!(
            matches!(lost_output.try_get(), Some(Err(Error::RuntimeShutdown))),
            "a call whose entry is dropped on its way fails, so nobody waits for it"
        );
        let handed = call(2);
        let handed_output = handed.spec.output.clone();
        let mut on_its_way = Unannounced::new(handed);
        assert_eq!(on_its_way.task(), Some(TaskId::from_u64(2)));
        let taken = on_its_way.take();
        drop(on_its_way);
        assert!(taken.is_some() && !handed_output.is_ready(), "an entry handed over is the manager's to settle");
        rt.shutdown().await;
    }

    #[test]
    fn a_task_with_one_input_keeps_it_without_an_allocation() {
        let cell = ObjectCell::with_error(TaskId::from_u64(2).output(), None, Error::NoRuntime);
        let one = Inputs::of(smallvec::smallvec![cell.clone()]);
        assert!(matches!(one, Inputs::One(_)));
        assert_eq!(one.as_slice().len(), 1);
        let two = Inputs::of(smallvec::smallvec![cell.clone(), cell]);
        assert_eq!(two.as_slice().len(), 2);
        assert!(Inputs::of(Deps::new()).as_slice().is_empty());
    }

    #[test]
    fn a_waiting_task_costs_no_more_than_its_compact_entry() {
        // A million tasks may wait at once: every word here is 8 MB then.
        // 120 bytes and glibc's 8-byte header are its 128-byte size class.
        assert!(std::mem::size_of::<Entry>() <= 120, "{} bytes", std::mem::size_of::<Entry>());
        assert!(std::mem::size_of::<Spec>() <= 88, "{} bytes", std::mem::size_of::<Spec>());
    }
}
