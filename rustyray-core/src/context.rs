//! Which runner and task the current code runs in.
//!
//! Free functions (`rustyray::put`, `f::remote(..)`) find their runner here:
//! first the task they are called from (set by the runner while a task body
//! runs, or by `Runtime::scope`), then the process default made by `init`.
//! The context is a thread-local, installed around plain bodies and, for async
//! code, around every poll of the future by [`Scoped`], so it follows a task
//! across the threads of a work-stealing executor.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use crate::ids::TaskId;
use crate::runner::Runner;

/// The runner and task some code runs in.
#[derive(Clone)]
pub struct TaskContext {
    /// The runner free functions submit to.
    pub runner: Arc<dyn Runner>,
    /// The task whose body is running, if any (`None` inside `Runtime::scope`).
    pub task: Option<TaskId>,
    /// Which attempt of `task` is running (from 1; 0 outside a task). A
    /// timed-out plain attempt may still run beside its retry, and what it
    /// does must count against it, not against the retry.
    pub attempt: u32,
    /// Whether the task holds resources it should give back while it waits.
    pub releases_on_wait: bool,
    /// Whether this thread runs a plain (blocking) body: it may block, and may
    /// run a queued task inline while it waits for it.
    pub blocking_thread: bool,
}

impl TaskContext {
    /// The context of code that runs inside `runner` but in no particular task.
    pub fn scope(runner: Arc<dyn Runner>) -> Self {
        TaskContext { runner, task: None, attempt: 0, releases_on_wait: false, blocking_thread: false }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TaskContext>> = const { RefCell::new(None) };
}

static DEFAULT: RwLock<Option<Arc<dyn Runner>>> = RwLock::new(None);

/// Bumped whenever the default changes, so threads can cache it.
static DEFAULT_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of the default runner and the generation it was read at.
    static CACHED_DEFAULT: RefCell<(u64, Option<Arc<dyn Runner>>)> = const { RefCell::new((u64::MAX, None)) };
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .field("releases_on_wait", &self.releases_on_wait)
            .field("blocking_thread", &self.blocking_thread)
            .finish_non_exhaustive()
    }
}

/// Restores the previous context when dropped.
#[must_use = "the context is left when the guard is dropped"]
#[derive(Debug)]
pub struct EnterGuard {
    previous: Option<TaskContext>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

/// Makes `ctx` the current context of this thread until the guard is dropped.
pub fn enter(ctx: TaskContext) -> EnterGuard {
    let previous = CURRENT.with(|current| current.borrow_mut().replace(ctx));
    EnterGuard { previous }
}

/// Runs `f` with the current context, if any.
pub fn with_current<R>(f: impl FnOnce(Option<&TaskContext>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_ref()))
}

/// The task whose body is running on this thread, if any.
pub fn current_task() -> Option<TaskId> {
    with_current(|ctx| ctx.and_then(|ctx| ctx.task))
}

/// The task whose body is running on this thread, and which attempt of it.
pub fn current_attempt() -> Option<(TaskId, u32)> {
    with_current(|ctx| ctx.and_then(|ctx| Some((ctx.task?, ctx.attempt))))
}

/// Whether this thread runs a plain task body.
pub fn on_blocking_thread() -> bool {
    with_current(|ctx| ctx.is_some_and(|ctx| ctx.blocking_thread))
}

/// The runner free functions use here: the current task's, else the process default.
pub fn current_runner() -> Option<Arc<dyn Runner>> {
    with_current(|ctx| ctx.map(|ctx| ctx.runner.clone())).or_else(default_runner)
}

/// The process default runner, set by `init`. Read through a per-thread cache:
/// the shared lock is taken only after the default changed.
pub fn default_runner() -> Option<Arc<dyn Runner>> {
    let generation = DEFAULT_GENERATION.load(Ordering::Acquire);
    CACHED_DEFAULT.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != generation {
            let current = DEFAULT.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            *cached = (generation, current);
        }
        cached.1.clone()
    })
}

/// Replaces the process default runner, returning the previous one.
pub fn set_default_runner(runner: Option<Arc<dyn Runner>>) -> Option<Arc<dyn Runner>> {
    let mut slot = DEFAULT.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let previous = std::mem::replace(&mut *slot, runner);
    DEFAULT_GENERATION.fetch_add(1, Ordering::Release);
    previous
}

pin_project_lite::pin_project! {
    /// A future that runs inside a [`TaskContext`]: the context is current
    /// during every poll, on whichever thread polls it.
    pub struct Scoped<F> {
        ctx: Option<TaskContext>,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// Wraps `future` so it runs in `ctx`.
    pub fn new(ctx: TaskContext, future: F) -> Self {
        Scoped { ctx: Some(ctx), future }
    }
}

/// Moves a context into the thread-local for one poll and back out after it,
/// even if the poll panics.
struct Lend<'a> {
    home: &'a mut Option<TaskContext>,
    previous: Option<TaskContext>,
}

impl Drop for Lend<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        if let Ok(lent) = CURRENT.try_with(|current| std::mem::replace(&mut *current.borrow_mut(), previous)) {
            *self.home = lent;
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let previous = CURRENT.with(|current| std::mem::replace(&mut *current.borrow_mut(), this.ctx.take()));
        let _lend = Lend { home: this.ctx, previous };
        this.future.poll(cx)
    }
}

/// Marks the current task as waiting for objects for as long as it lives:
/// the task's runner gets its resources back, and takes them again on drop.
#[must_use = "the task stops waiting when the guard is dropped"]
pub struct Waiting {
    task: Option<(Arc<dyn Runner>, TaskId, u32)>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("task", &self.task.as_ref().map(|(_, task, attempt)| (*task, *attempt)))
            .finish()
    }
}

impl Waiting {
    /// Starts waiting (does nothing outside a task that holds resources).
    pub fn begin() -> Self {
        let task = with_current(|ctx| {
            let ctx = ctx.filter(|ctx| ctx.releases_on_wait)?;
            let task = ctx.task?;
            ctx.runner.task_blocked(task, ctx.attempt);
            Some((ctx.runner.clone(), task, ctx.attempt))
        });
        Waiting { task }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some((runner, task, attempt)) = self.task.take() {
            runner.task_unblocked(task, attempt);
        }
    }
}
