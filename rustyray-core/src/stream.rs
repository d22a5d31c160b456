//! Streaming tasks: a remote function that yields its results one by one
//! (`#[remote(streaming)]`, Ray's `num_returns="streaming"`).
//!
//! The function takes a [`Yield<T>`] as its last parameter and sends each
//! item through it; the caller gets an [`ObjectStream<T>`] at once, a
//! `Stream` of `ObjectRef<T>`, one per item, readable as soon as the item is
//! sent. Each item is its own object in the store.
//!
//! - **Backpressure.** At most `buffer` items (16 unless
//!   `f::options().buffer(n)` says otherwise) wait unread; a generator that
//!   sends more waits (an async body at `.send(..).await`; a plain body in
//!   `send_blocking`, giving its CPU back while it waits).
//! - **End and errors.** The stream ends when the function returns. If the
//!   task fails (after its retries), the next item after those already sent
//!   is a reference holding the error, and the stream ends there. Reading
//!   past the end keeps returning `None`.
//! - **Cancellation.** Dropping the stream, or calling
//!   [`ObjectStream::cancel`], cancels the generator task; a `send` after
//!   that fails with `Error::Cancelled`, so a body using `?` stops.
//! - **Retries.** A failed attempt is retried (within `max_retries`) only
//!   while the consumer has read no item of the stream: the retry runs from
//!   the start and items the failed attempt left unread are discarded. Once
//!   an item was read, a failure ends the stream with its error, whatever
//!   retries remain.
//!
//! The task itself is an ordinary task (its state, attempts and cancellation
//! are those of any task); its output holds `()` or the error. The items
//! travel through a bounded channel, tagged with the attempt that sent them.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::call::{ArgTuple, ArgValue};
use crate::context;
use crate::error::{Error, TaskOrigin};
use crate::ids::{FunctionId, TaskId};
use crate::object::{ObjectCell, ObjectRef, put_in};
use crate::options::TaskOptions;
use crate::runner::Runner;
use crate::spec::{Attempt, BodyResult, TaskBody, TaskError, TaskKind, TaskSpec};

/// How many unread items a stream holds unless told otherwise.
pub const DEFAULT_BUFFER: usize = 16;

/// One item in the channel: the object, and the attempt (epoch) that sent it.
struct Item<T> {
    epoch: u64,
    object: ObjectRef<T>,
}

/// What producer and consumer share: the epoch of the attempt whose items
/// count (the high bits) and whether the consumer has read an item (bit 0).
#[derive(Default)]
struct Shared {
    state: AtomicU64,
}

const CONSUMED: u64 = 1;

impl Shared {
    /// The consumer takes an item of attempt `epoch`: `false` if the item is
    /// stale (its attempt was superseded by a retry) and must be skipped.
    fn accept(&self, epoch: u64) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state >> 1 != epoch {
                return false;
            }
            if state & CONSUMED != 0 {
                return true;
            }
            match self.state.compare_exchange_weak(state, state | CONSUMED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    /// Attempt `epoch` begins: its items are the ones that count from now
    /// on. Fails if the consumer has read an item of an earlier attempt.
    fn begin(&self, epoch: u64) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & CONSUMED != 0 {
                return state >> 1 == epoch;
            }
            match self.state.compare_exchange_weak(state, epoch << 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    fn consumed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CONSUMED != 0
    }
}

/// The producing side of a stream, held by the task's body across attempts;
/// each attempt takes a [`Yield`] from it.
pub struct StreamSource<T> {
    tx: mpsc::Sender<Item<T>>,
    shared: Arc<Shared>,
    runner: Arc<dyn Runner>,
    origin: TaskOrigin,
}

impl<T> std::fmt::Debug for StreamSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource").field("task", &self.origin.task).finish()
    }
}

impl<T> std::fmt::Debug for Yield<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Yield").field("task", &self.source.origin.task).field("attempt", &self.epoch).finish()
    }
}

impl<T> Clone for StreamSource<T> {
    fn clone(&self) -> Self {
        StreamSource {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            runner: self.runner.clone(),
            origin: self.origin.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> StreamSource<T> {
    /// The sender for `attempt`; an error (not retried) if the consumer has
    /// already read items of an earlier attempt, which cannot be sent again.
    pub fn attempt(&self, attempt: Attempt) -> Result<Yield<T>, TaskError> {
        let epoch = u64::from(attempt.number);
        if !self.shared.begin(epoch) {
            return Err(TaskError::NotRetried(Box::new(TaskError::Failed {
                message: "a streaming task is not retried once its consumer has read an item".into(),
                error_type: "rustyray::stream",
                source: None,
            })));
        }
        Ok(Yield { source: self.clone(), epoch })
    }

    /// The end of an attempt: a failure after the consumer read an item is
    /// not retried.
    pub fn finish(&self, outcome: BodyResult) -> BodyResult {
        match outcome {
            Err(error) if error.retryable() && self.shared.consumed() => Err(TaskError::NotRetried(Box::new(error))),
            other => other,
        }
    }
}

/// What a streaming function sends its items through: its last parameter.
pub struct Yield<T> {
    source: StreamSource<T>,
    epoch: u64,
}

impl<T: Send + Sync + 'static> Yield<T> {
    fn item(&self, value: T) -> Item<T> {
        Item { epoch: self.epoch, object: put_in(self.source.runner.clone(), value) }
    }

    fn closed(&self) -> Error {
        Error::Cancelled { origin: self.source.origin.clone() }
    }

    /// Sends one item, waiting while the consumer has `buffer` items unread.
    /// Fails with [`Error::Cancelled`] when the consumer has dropped the
    /// stream or cancelled it.
    pub async fn send(&self, value: T) -> Result<(), Error> {
        let item = self.item(value);
        self.source.tx.send(item).await.map_err(|_| self.closed())
    }

    /// [`send`](Self::send) for a plain (non-async) body: blocks the thread
    /// while the buffer is full, giving the task's CPU back meanwhile.
    pub fn send_blocking(&self, value: T) -> Result<(), Error> {
        let item = self.item(value);
        match self.source.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.closed()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                let _waiting = context::Waiting::begin();
                futures::executor::block_on(self.source.tx.send(item)).map_err(|_| self.closed())
            }
        }
    }
}

/// The consuming side: a `Stream` of one `ObjectRef<T>` per item, in the
/// order sent. Dropping it cancels the generator.
#[must_use = "a stream's items are read with `.next().await`; dropping it cancels the task"]
pub struct ObjectStream<T> {
    rx: mpsc::Receiver<Item<T>>,
    shared: Arc<Shared>,
    /// The task's output: `()` when it returned, or its error.
    output: ObjectRef<()>,
    /// Wakes the consumer when the output is written, while it waits for items.
    ended: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    done: bool,
}

impl<T> ObjectStream<T> {
    /// A stream that ends at once with `error` (a call that could not start).
    pub(crate) fn failed(error: Error) -> Self {
        let (_, rx) = mpsc::channel(1);
        ObjectStream { rx, shared: Arc::default(), output: ObjectRef::failed(error), ended: None, done: false }
    }

    /// The generator task.
    pub fn task(&self) -> Option<TaskId> {
        self.output.task()
    }

    /// Cancels the generator; the stream ends (items not yet read are dropped).
    pub fn cancel(&mut self) {
        self.output.cancel();
        self.done = true;
        self.rx.close();
    }

    /// The next item: `None` at the end (and on every call after it).
    pub async fn next(&mut self) -> Option<ObjectRef<T>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    /// The end: nothing after a success; the error as one last item after a failure.
    fn end(&mut self) -> Option<ObjectRef<T>> {
        self.done = true;
        self.ended = None;
        match self.output.cell().try_get() {
            Some(Err(_)) => Some(ObjectRef::from_cell(self.output.cell().clone())),
            _ => None,
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<ObjectRef<T>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if matches!(self.output.cell().try_get(), Some(Err(_))) {
                // The task failed (timed out, cancelled, shut down) while a
                // plain body may still run on, abandoned: what it sent so
                // far is read, then the error ends the stream, and its later
                // sends fail.
                self.rx.close();
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => {
                    // The wait for the task's end (which counts the consumer
                    // as waiting, its CPU lent out) ends with the wait.
                    self.ended = None;
                    if self.shared.accept(item.epoch) {
                        return Poll::Ready(Some(item.object));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(self.end()),
                Poll::Pending => {
                    if !self.output.is_ready() {
                        let output = self.output.clone();
                        let ended = self.ended.get_or_insert_with(|| Box::pin(async move { output.ready().await }));
                        if ended.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    // The task ended: what it sent is in the channel already.
                    match self.rx.try_recv() {
                        Ok(item) => {
                            self.ended = None;
                            if self.shared.accept(item.epoch) {
                                return Poll::Ready(Some(item.object));
                            }
                        }
                        Err(_) => return Poll::Ready(self.end()),
                    }
                }
            }
        }
    }
}

impl<T> futures::Stream for ObjectStream<T> {
    type Item = ObjectRef<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ObjectRef<T>>> {
        self.get_mut().poll_item(cx)
    }
}

impl<T> Drop for ObjectStream<T> {
    fn drop(&mut self) {
        self.output.cancel();
    }
}

impl<T> std::fmt::Debug for ObjectStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream").field("task", &self.task()).field("done", &self.done).finish()
    }
}

/// A streaming function: implemented by `#[remote(streaming)]` for the
/// marker type it generates.
pub trait StreamingFunction<Args: ArgTuple>: 'static {
    /// The type of each item.
    type Item: Send + Sync + 'static;
    /// The stable name it is known under.
    const NAME: &'static str;
    /// Builds the body that runs the function on `args`, sending through `source`.
    fn body(args: Args::TaskArgs, source: StreamSource<Self::Item>) -> TaskBody;
    /// The arguments as text, for a call that opted in with `record_args(true)`.
    fn describe(args: &Args::TaskArgs) -> String;
}

/// Options for one call of a streaming function, ended by `.remote(args..)`,
/// which returns the [`ObjectStream`]. Returned by the generated `f::options()`.
#[must_use = "a task builder does nothing until `.remote(..)` is called"]
pub struct StreamBuilder<F, Args> {
    options: TaskOptions,
    buffer: usize,
    _marker: PhantomData<fn() -> (F, Args)>,
}

impl<F, Args> std::fmt::Debug for StreamBuilder<F, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBuilder")
            .field("function", &std::any::type_name::<F>())
            .field("options", &self.options)
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl<F, Args> Default for StreamBuilder<F, Args> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F, Args> StreamBuilder<F, Args> {
    /// Default options, a buffer of [`DEFAULT_BUFFER`] items.
    pub fn new() -> Self {
        StreamBuilder { options: TaskOptions::default(), buffer: DEFAULT_BUFFER, _marker: PhantomData }
    }

    /// The options collected so far.
    pub fn task_options(&self) -> &TaskOptions {
        &self.options
    }

    /// How many items may wait unread before the generator waits (at least 1).
    pub fn buffer(mut self, items: usize) -> Self {
        if items == 0 {
            if self.options.invalid.is_none() {
                self.options.invalid = Some(Box::new(Error::InvalidOption {
                    option: "buffer",
                    reason: "a stream's buffer must hold at least one item".into(),
                }));
            }
        } else {
            self.buffer = items;
        }
        self
    }

    crate::__option_setters!(options);
}

impl<F, Args> StreamBuilder<F, Args>
where
    F: StreamingFunction<Args>,
    Args: ArgTuple,
{
    /// Submits the call with arguments already wrapped.
    #[track_caller]
    pub fn call(self, args: Args::TaskArgs) -> ObjectStream<F::Item> {
        let current = context::with_current(|ctx| ctx.map(|ctx| (ctx.runner.clone(), ctx.task)));
        let (runner, parent) = match current {
            Some((runner, parent)) => (runner, parent),
            None => match context::default_runner() {
                Some(runner) => (runner, None),
                None => return ObjectStream::failed(Error::NoRuntime),
            },
        };
        let deps = Args::dependencies(&args);
        let described = self.options.record_args.then(|| Arc::from(F::describe(&args)));
        let function = FunctionId::new(&F::NAME);
        let id = TaskId::next();
        let origin = TaskOrigin { task: id, function, name: self.options.name.clone() };
        let (source, pending) = channel(runner.clone(), origin, self.buffer);
        let body = F::body(args, source);
        let output = ObjectCell::pending(id, function, self.options.name.clone(), runner.clone());
        let stream_output = ObjectRef::from_cell(output.clone());
        runner.submit(TaskSpec {
            id,
            function,
            kind: TaskKind::Normal,
            options: self.options,
            deps,
            body,
            output,
            parent,
            caller: Location::caller(),
            args: described,
            trace_parent: crate::spec::current_trace_parent(),
        });
        pending.stream(stream_output)
    }
}

/// The consuming side of a stream whose task is not submitted yet.
pub(crate) struct PendingStream<T> {
    rx: mpsc::Receiver<Item<T>>,
    shared: Arc<Shared>,
}

impl<T> PendingStream<T> {
    /// The stream of the task whose output is `output`.
    pub(crate) fn stream(self, output: ObjectRef<()>) -> ObjectStream<T> {
        ObjectStream { rx: self.rx, shared: self.shared, output, ended: None, done: false }
    }
}

/// A stream's two sides, for the task `origin` in `runner`, holding at most
/// `buffer` unread items.
pub(crate) fn channel<T>(
    runner: Arc<dyn Runner>,
    origin: TaskOrigin,
    buffer: usize,
) -> (StreamSource<T>, PendingStream<T>) {
    // tokio's bound is at most `Semaphore::MAX_PERMITS`: a larger buffer is
    // no bound in practice, and must not panic.
    let (tx, rx) = mpsc::channel(buffer.clamp(1, tokio::sync::Semaphore::MAX_PERMITS));
    let shared = Arc::new(Shared::default());
    (StreamSource { tx, shared: shared.clone(), runner, origin }, PendingStream { rx, shared })
}

macro_rules! arities {
    ($( ($($T:ident $v:ident),*) )*) => {$(
        impl<F, $($T: ArgValue),*> StreamBuilder<F, ($($T,)*)>
        where
            F: StreamingFunction<($($T,)*)>,
        {
            /// Submits the call and returns its stream of items at once.
            /// Each argument may be a value, an `ObjectRef` or an
            /// `&ObjectRef` of the parameter's type.
            #[track_caller]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, $($v: impl Into<crate::arg::TaskArg<$T>>),*) -> ObjectStream<F::Item> {
                self.call(($($v.into(),)*))
            }
        }
    )*};
}

arities! {
    ()
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, G g)
    (A a, B b, C c, D d, E e, G g, H h)
    (A a, B b, C c, D d, E e, G g, H h, I i)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_supersedes_unread_items_until_one_is_read() {
        let shared = Shared::default();
        assert!(shared.begin(1));
        // Attempt 1 failed before anything was read: attempt 2 takes over.
        assert!(shared.begin(2));
        assert!(!shared.accept(1), "an item of the failed attempt is skipped");
        assert!(shared.accept(2));
        assert!(shared.consumed());
        // Once read, no later attempt may start over.
        assert!(!shared.begin(3));
        assert!(shared.accept(2));
    }

    #[test]
    fn without_a_runtime_the_stream_ends_with_the_error() {
        let mut stream: ObjectStream<u8> = ObjectStream::failed(Error::NoRuntime);
        let first = futures::executor::block_on(stream.next()).unwrap();
        assert!(matches!(first.try_get(), Some(Err(Error::NoRuntime))));
        assert!(futures::executor::block_on(stream.next()).is_none());
        assert!(futures::executor::block_on(stream.next()).is_none(), "past the end stays at the end");
    }
}
