//! Objects and references to them.
//!
//! An [`ObjectCell`] is one slot of an object store: written once, with a value
//! or an error, by the task that produces it (or by `put`), and read by any
//! number of waiters, who are woken by a notification, never by polling. An
//! [`ObjectRef<T>`] is a typed, cheap-to-clone handle to a cell: the future
//! of a task's result. The cell lives as long as some `ObjectRef` or pending
//! task holds it; when the last one is dropped the value is freed and the
//! owning runner is told.

use std::any::{Any, type_name};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::context;
use crate::error::{Error, Result};
use crate::ids::{FunctionId, ObjectId, TaskId};
use crate::runner::Runner;
use crate::size::{ObjectSize, size_of_value};
use crate::sync::{Event, Listener, OnceBox, OnceLock, after_listen, notify_listeners};

/// A stored value, type-erased. Stored values are shared, never copied, by the store.
pub type Value = Arc<dyn Any + Send + Sync>;

/// What a written cell holds. The error is boxed to keep cells small.
type Outcome = std::result::Result<Value, Box<Error>>;

/// A written cell's outcome, borrowed.
pub type OutcomeRef<'a> = std::result::Result<&'a Value, &'a Error>;

/// One slot of an object store: pending until written once with a value or an error.
pub struct ObjectCell {
    id: ObjectId,
    /// The producer's function, to name it if the object is cancelled, and
    /// with it whether a task writes the object at all (`None` for a `put`):
    /// that task's id is the object's own number ([`TaskId::output`]), so no
    /// more is kept (a flag of its own would take the cell, with its `Arc`
    /// counts, into the allocator's next size class).
    function: Option<FunctionId>,
    owner: Option<Arc<dyn Runner>>,
    slot: OnceLock<Outcome>,
    /// What the stored value counts for in the owner's byte total, encoded
    /// (`encode_size`); measured once, when the value is written.
    size: AtomicUsize,
    /// What few cells need: the list of waiters (made by the first one that
    /// finds the cell unwritten: most objects are written before anyone
    /// waits for them), the producer's name, the elements of a multiple
    /// result. One word, empty for most: every task has an output cell,
    /// and a cell with its `Arc` counts in 88 bytes is glibc's 96-byte
    /// chunk, not the 112-byte one.
    extra: OnceBox<Extra>,
}

/// The rarely needed part of an [`ObjectCell`].
#[derive(Default)]
struct Extra {
    /// Wakes the cell's waiters when it is written.
    ready: Event,
    /// The name the producer was given with `.name(..)`, to name it if the
    /// object is cancelled.
    name: Option<Arc<str>>,
    /// For a task with multiple results, the output cell's elements: each
    /// write to the output is passed on to them (see
    /// [`complete`](ObjectCell::complete)). Empty for every other cell.
    parts: Vec<Arc<ObjectCell>>,
}

/// How a cancelled object names a producer whose function is not known.
const UNKNOWN_FUNCTION: &str = "unknown";

/// [`ObjectSize`] in one word: the two largest values stand for the
/// value-less states (no object is that large).
const EMPTY: usize = usize::MAX;
const UNKNOWN: usize = usize::MAX - 1;

fn encode_size(size: ObjectSize) -> usize {
    match size {
        ObjectSize::Empty => EMPTY,
        ObjectSize::Unknown => UNKNOWN,
        ObjectSize::Bytes(bytes) => bytes.min(UNKNOWN - 1),
    }
}

/// `size` as the cell will report it again on release (so a size too large
/// to encode is added and subtracted alike).
fn normalized(size: ObjectSize) -> ObjectSize {
    decode_size(encode_size(size))
}

fn decode_size(word: usize) -> ObjectSize {
    match word {
        EMPTY => ObjectSize::Empty,
        UNKNOWN => ObjectSize::Unknown,
        bytes => ObjectSize::Bytes(bytes),
    }
}

impl ObjectCell {
    /// The output cell of task `producer` (its id is the task's
    /// [`output`](TaskId::output)), a task of `owner` running `function` (and
    /// named `name`, if it was given one).
    pub fn pending(
        producer: TaskId,
        function: FunctionId,
        name: Option<Arc<str>>,
        owner: Arc<dyn Runner>,
    ) -> Arc<Self> {
        Self::unwritten(producer.output(), function, name, owner, Vec::new())
    }

    /// The output cell of task `producer` returning `count` results, each its
    /// own object (`#[remote(num_returns = n)]`), and the cells of those
    /// elements (ids [`TaskId::output_part`]).
    ///
    /// The body's value must be a [`Parts`](crate::returns::Parts) of
    /// `count` values: [`complete`](Self::complete) writes each into its
    /// element and leaves only `()` in the output, so an element lives as
    /// long as its own references, not its siblings'. An error written to
    /// the output is written to every element.
    pub fn pending_parts(
        producer: TaskId,
        function: FunctionId,
        name: Option<Arc<str>>,
        owner: Arc<dyn Runner>,
        count: usize,
    ) -> (Arc<Self>, Vec<Arc<Self>>) {
        let parts: Vec<Arc<Self>> = (0..count)
            .map(|index| {
                Self::unwritten(producer.output_part(index), function, name.clone(), owner.clone(), Vec::new())
            })
            .collect();
        let output = Self::unwritten(producer.output(), function, name, owner, parts.clone());
        (output, parts)
    }

    /// A cell a task will write, announced to its owner.
    fn unwritten(
        id: ObjectId,
        function: FunctionId,
        name: Option<Arc<str>>,
        owner: Arc<dyn Runner>,
        parts: Vec<Arc<ObjectCell>>,
    ) -> Arc<Self> {
        owner.object_created(id, ObjectSize::Empty);
        let extra = if name.is_some() || !parts.is_empty() {
            OnceBox::with_value(Box::new(Extra { ready: Event::new(), name, parts }))
        } else {
            OnceBox::new()
        };
        Arc::new(ObjectCell {
            id,
            function: Some(function),
            owner: Some(owner),
            slot: OnceLock::new(),
            size: AtomicUsize::new(EMPTY),
            extra,
        })
    }

    /// A cell that holds `value` from the start (what `put` creates).
    pub fn with_value(id: ObjectId, owner: Arc<dyn Runner>, value: Value) -> Arc<Self> {
        let size = normalized(size_of_value(&value));
        owner.object_created(id, size);
        Arc::new(ObjectCell {
            id,
            function: None,
            owner: Some(owner),
            slot: OnceLock::from(Ok(value)),
            size: AtomicUsize::new(encode_size(size)),
            extra: OnceBox::new(),
        })
    }

    /// A cell that holds `error` from the start and belongs to no runner
    /// (what a submission without a runtime produces): the output of task
    /// `producer` if given (its id is then the task's
    /// [`output`](TaskId::output)), else an object of id `id`.
    pub fn with_error(id: ObjectId, producer: Option<TaskId>, error: Error) -> Arc<Self> {
        Arc::new(ObjectCell {
            id: producer.map_or(id, TaskId::output),
            // The task is not known here; its function is named as unknown.
            function: producer.map(|_| FunctionId::new(&UNKNOWN_FUNCTION)),
            owner: None,
            slot: OnceLock::from(Err(Box::new(error))),
            size: AtomicUsize::new(EMPTY),
            extra: OnceBox::new(),
        })
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// The task that writes this object, if a task does.
    pub fn producer(&self) -> Option<TaskId> {
        self.function.is_some().then(|| TaskId::from_u64(self.id.task_number()))
    }

    /// The object whose write a runner watches for to know this one is
    /// written: the cell itself, or for an element of a task's multiple
    /// results, the task's output (written right after its elements).
    pub fn written_with(&self) -> ObjectId {
        match self.producer() {
            Some(task) => task.output(),
            None => self.id,
        }
    }

    /// The runner that owns this object.
    pub fn owner(&self) -> Option<&Arc<dyn Runner>> {
        self.owner.as_ref()
    }

    /// Whether the object has been written.
    pub fn is_ready(&self) -> bool {
        self.slot.get().is_some()
    }

    /// The outcome, if written.
    pub fn try_get(&self) -> Option<OutcomeRef<'_>> {
        self.slot.get().map(borrow)
    }

    /// Writes the outcome and wakes every waiter. The first write wins; returns
    /// whether this one did (a late result of a cancelled or timed-out attempt loses).
    ///
    /// A value is measured here, once (see [`size`](crate::size)), and its
    /// size reported to the owning runner.
    pub fn complete(&self, outcome: Result<Value>) -> bool {
        if !self.parts().is_empty() {
            return self.complete_parts(outcome);
        }
        let mut won = false;
        // Boxed before the write: the closure then carries two words, not
        // a whole error, through the once-cell's machinery.
        let outcome = outcome.map_err(Box::new);
        self.slot.get_or_init(|| {
            // Only the winning write runs this, before the outcome is
            // published: whoever sees the value also sees it counted, and a
            // late result that loses is never measured.
            won = true;
            if let (Ok(value), Some(owner)) = (&outcome, &self.owner) {
                let size = normalized(size_of_value(value));
                self.size.store(encode_size(size), Ordering::Relaxed);
                owner.object_stored(self.id, size);
            }
            outcome
        });
        if won {
            notify_listeners(|| self.extra.get().map(|extra| &extra.ready));
        }
        won
    }

    /// [`complete`](Self::complete) for the output of a task with multiple
    /// results: the elements first, so whoever sees the output written finds
    /// them written too.
    /// The elements of a multiple-result output cell; empty for any other.
    fn parts(&self) -> &[Arc<ObjectCell>] {
        self.extra.get().map_or(&[], |extra| extra.parts.as_slice())
    }

    /// The list a waiter joins, made by the first one.
    fn waiters(&self) -> &Event {
        &self.extra.get_or_init(Box::default).ready
    }

    fn complete_parts(&self, outcome: Result<Value>) -> bool {
        let mut won = false;
        // Only the winning write fans out, inside the initialization (a
        // concurrent write waits for it): the elements never mix two outcomes.
        self.slot.get_or_init(|| {
            won = true;
            let outcome = match outcome {
                Ok(value) => match value.downcast::<crate::returns::Parts>() {
                    Ok(values) if values.0.len() == self.parts().len() => {
                        for (part, value) in self.parts().iter().zip(values.0.iter()) {
                            part.complete(Ok(value.clone()));
                        }
                        return Ok(Arc::new(()));
                    }
                    _ => Error::Internal { reason: "a multiple-result output was written without its elements" },
                },
                Err(error) => error,
            };
            for part in self.parts().iter() {
                part.complete(Err(outcome.clone()));
            }
            Err(Box::new(outcome))
        });
        if won {
            notify_listeners(|| self.extra.get().map(|extra| &extra.ready));
        }
        won
    }

    /// Waits (asynchronously) until the object is written. Does not touch any runner.
    pub async fn ready(&self) -> OutcomeRef<'_> {
        loop {
            if let Some(outcome) = self.try_get() {
                return outcome;
            }
            let listener = self.waiters().listen();
            after_listen();
            if let Some(outcome) = self.try_get() {
                return outcome;
            }
            listener.await;
        }
    }

    /// Blocks the thread until the object is written or `deadline` passes.
    /// Callers must know that blocking is allowed where they are.
    pub fn ready_blocking(&self, deadline: Option<Instant>) -> Option<OutcomeRef<'_>> {
        loop {
            if let Some(outcome) = self.try_get() {
                return Some(outcome);
            }
            let listener = self.waiters().listen();
            after_listen();
            if let Some(outcome) = self.try_get() {
                return Some(outcome);
            }
            match deadline {
                None => listener.wait(),
                Some(deadline) => {
                    if listener.wait_deadline(deadline).is_none() && Instant::now() >= deadline {
                        return self.try_get();
                    }
                }
            }
        }
    }

    /// Takes the value out of a cell nobody else can reach, so it can be moved
    /// instead of cloned. Returns `None` (leaving the cell as it is) when the
    /// cell is shared or holds no value.
    fn take_unique(this: &mut Arc<Self>) -> Option<Value> {
        let cell = Arc::get_mut(this)?;
        match cell.slot.take() {
            Some(Ok(value)) => Some(value),
            Some(Err(error)) => {
                cell.slot = OnceLock::from(Err(error));
                None
            }
            None => None,
        }
    }
}

fn borrow(outcome: &Outcome) -> OutcomeRef<'_> {
    match outcome {
        Ok(value) => Ok(value),
        Err(error) => Err(error),
    }
}

impl Drop for ObjectCell {
    fn drop(&mut self) {
        if let Some(owner) = &self.owner {
            owner.object_released(self.id, decode_size(*self.size.get_mut()));
        }
    }
}

impl fmt::Debug for ObjectCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.slot.get() {
            None => "pending",
            Some(Ok(_)) => "ready",
            Some(Err(_)) => "failed",
        };
        f.debug_struct("ObjectCell").field("id", &self.id).field("state", &state).finish()
    }
}

/// Stores `value` in the object store of the current runtime (the current
/// task's, else the process default) and returns a reference to it. Without a
/// runtime the reference is already failed with [`Error::NoRuntime`], and
/// with [`Error::RuntimeShutdown`] if the runtime has shut down.
pub fn put<T: Any + Send + Sync>(value: T) -> ObjectRef<T> {
    match context::current_runner() {
        Some(runner) => put_in(runner, value),
        None => ObjectRef::failed(Error::NoRuntime),
    }
}

/// Stores `value` in `runner`'s object store (the ref is failed with
/// [`Error::RuntimeShutdown`] if the runner has shut down, as any submission to it is).
pub fn put_in<T: Any + Send + Sync>(runner: Arc<dyn Runner>, value: T) -> ObjectRef<T> {
    if runner.is_shut_down() {
        return ObjectRef::failed(Error::RuntimeShutdown);
    }
    ObjectRef::from_cell(ObjectCell::with_value(ObjectId::next(), runner, Arc::new(value)))
}

/// Reads a stored value as a `T`.
pub fn downcast_value<T: Any>(id: ObjectId, value: &Value) -> Result<&T> {
    value.downcast_ref::<T>().ok_or(Error::TypeMismatch { object: id, expected: type_name::<T>() })
}

/// A reference to an object that is, or will be, in an object store: the result
/// of a remote call, or a value given to `put`.
///
/// `ObjectRef` is a future you can pass around: give it to another remote call
/// and that call waits for it; `get` it to read the value. Cloning is cheap (one
/// reference count) and the object lives as long as any clone or pending task
/// holds it. It serializes as its id.
///
/// ```
/// # use rustyray_core::{ObjectRef, ObjectCell, ObjectId, Error};
/// // A reference to an object whose producer failed (here: built by hand).
/// let r: ObjectRef<i64> = ObjectRef::from_cell(ObjectCell::with_error(ObjectId::next(), None, Error::NoRuntime));
/// assert!(r.is_ready());
/// assert!(matches!(r.get_blocking(), Err(Error::NoRuntime)));
/// ```
pub struct ObjectRef<T> {
    cell: Arc<ObjectCell>,
    _type: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    /// Wraps a cell. The cell must hold (or come to hold) a `T`.
    pub fn from_cell(cell: Arc<ObjectCell>) -> Self {
        ObjectRef { cell, _type: PhantomData }
    }

    /// A reference that is already failed with `error`.
    pub fn failed(error: Error) -> Self {
        Self::from_cell(ObjectCell::with_error(ObjectId::next(), None, error))
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.cell.id
    }

    /// The task that produces this object, if a task does.
    pub fn task(&self) -> Option<TaskId> {
        self.cell.producer()
    }

    /// Whether the object is ready (holds a value or an error), without waiting.
    pub fn is_ready(&self) -> bool {
        self.cell.is_ready()
    }

    /// The underlying cell.
    pub fn cell(&self) -> &Arc<ObjectCell> {
        &self.cell
    }

    /// Consumes the reference, returning the cell.
    pub fn into_cell(self) -> Arc<ObjectCell> {
        self.cell
    }

    /// Cancels the task that produces this object, and every task it submitted.
    ///
    /// Best effort for a body that is already running (an async body is dropped,
    /// a plain body is abandoned), immediate and final for the object: from the
    /// moment this returns, `get` on it fails with [`Error::Cancelled`], and so
    /// does `get` on everything that depends on it once the runtime has
    /// passed the cancellation on. Cancelling a finished task does nothing.
    pub fn cancel(&self) {
        if let (Some(owner), Some(task)) = (&self.cell.owner, self.cell.producer())
            && !self.cell.is_ready()
        {
            let function = self.cell.function.unwrap_or(FunctionId::new(&UNKNOWN_FUNCTION));
            let name = self.cell.extra.get().and_then(|extra| extra.name.clone());
            let origin = crate::error::TaskOrigin { task, function, name };
            // A success that wrote the object first wins: the task is finished.
            if self.cell.complete(Err(Error::Cancelled { origin })) {
                owner.cancel(task);
            }
        }
    }

    /// Waits until the object is ready (holds a value or an error), without reading it.
    /// A task waiting here gives its CPU slot back while it waits.
    pub async fn ready(&self) {
        let _ = self.wait_outcome().await;
    }

    async fn wait_outcome(&self) -> OutcomeRef<'_> {
        if let Some(outcome) = self.cell.try_get() {
            return outcome;
        }
        let _waiting = context::Waiting::begin();
        self.cell.ready().await
    }

    fn wait_outcome_blocking(&self, deadline: Option<Instant>) -> Result<Option<OutcomeRef<'_>>> {
        if let Some(outcome) = self.cell.try_get() {
            return Ok(Some(outcome));
        }
        let Some(owner) = self.cell.owner.clone() else {
            return Ok(self.cell.try_get());
        };
        // A plain task body about to block on a queued task runs that task here
        // instead (as rayon's `join` does), so waiting never needs a new thread.
        if context::on_blocking_thread()
            && let Some(producer) = self.cell.producer()
            && owner.run_inline(producer)
            && let Some(outcome) = self.cell.try_get()
        {
            return Ok(Some(outcome));
        }
        let _waiting = context::Waiting::begin();
        if owner.block_on_object(&self.cell, deadline)? { Ok(self.cell.try_get()) } else { Ok(None) }
    }
}

impl<T: Any + Send + Sync> ObjectRef<T> {
    /// Waits for the object and returns a copy of its value.
    ///
    /// A failed producer's error comes back as `Err`, naming the task and
    /// function where the failure began. A task waiting here gives its CPU slot
    /// back while it waits.
    pub async fn get(&self) -> Result<T>
    where
        T: Clone,
    {
        let outcome = self.wait_outcome().await;
        read_clone(self.id(), outcome)
    }

    /// Waits for the object and returns the stored value itself, shared rather
    /// than copied: the cheap way to read a large object.
    pub async fn get_shared(&self) -> Result<Arc<T>> {
        let outcome = self.wait_outcome().await;
        read_shared(self.id(), outcome)
    }

    /// Blocks the calling thread until the object is ready and returns a copy of its value.
    ///
    /// Meant for plain (non-async) task bodies and for threads outside any async
    /// runtime. A plain task body waiting here gives its CPU slot back, and if the
    /// producer is still queued it runs it on this thread. On a thread that drives
    /// async tasks of a single-threaded tokio runtime it fails with
    /// [`Error::WouldBlock`] instead of deadlocking; use `.get().await` there.
    pub fn get_blocking(&self) -> Result<T>
    where
        T: Clone,
    {
        match self.wait_outcome_blocking(None)? {
            Some(outcome) => read_clone(self.id(), outcome),
            None => Err(Error::RuntimeShutdown),
        }
    }

    /// Like [`get_blocking`](Self::get_blocking), giving up with
    /// [`Error::WaitTimedOut`] after `timeout`.
    pub fn get_blocking_timeout(&self, timeout: Duration) -> Result<T>
    where
        T: Clone,
    {
        // A timeout past what an instant holds is no deadline at all.
        match self.wait_outcome_blocking(Instant::now().checked_add(timeout))? {
            Some(outcome) => read_clone(self.id(), outcome),
            None => Err(Error::WaitTimedOut { object: self.id(), timeout }),
        }
    }

    /// The value, if the object is ready; does not wait.
    pub fn try_get(&self) -> Option<Result<T>>
    where
        T: Clone,
    {
        self.cell.try_get().map(|outcome| read_clone(self.id(), outcome))
    }

    /// Consumes the reference and returns its value, moving it out of the store
    /// when this was the last reference, cloning it otherwise. The object must
    /// be ready (`None` if not).
    pub fn into_value(self) -> Option<Result<T>>
    where
        T: Clone,
    {
        self.into_value_with(T::clone)
    }

    /// [`into_value`](Self::into_value), copying a shared value with `clone`.
    pub fn into_value_with(self, clone: fn(&T) -> T) -> Option<Result<T>> {
        let mut cell = self.cell;
        if let Some(value) = ObjectCell::take_unique(&mut cell) {
            let id = cell.id;
            return Some(match value.downcast::<T>() {
                Ok(shared) => Ok(Arc::try_unwrap(shared).unwrap_or_else(|shared| clone(&shared))),
                Err(_) => Err(Error::TypeMismatch { object: id, expected: type_name::<T>() }),
            });
        }
        cell.try_get().map(|outcome| match outcome {
            Ok(value) => downcast_value::<T>(cell.id, value).map(clone),
            Err(error) => Err(error.clone()),
        })
    }
}

fn read_clone<T: Any + Clone>(id: ObjectId, outcome: OutcomeRef<'_>) -> Result<T> {
    match outcome {
        Ok(value) => downcast_value::<T>(id, value).cloned(),
        Err(error) => Err(error.clone()),
    }
}

fn read_shared<T: Any + Send + Sync>(id: ObjectId, outcome: OutcomeRef<'_>) -> Result<Arc<T>> {
    match outcome {
        Ok(value) => {
            value.clone().downcast::<T>().map_err(|_| Error::TypeMismatch { object: id, expected: type_name::<T>() })
        }
        Err(error) => Err(error.clone()),
    }
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef { cell: self.cell.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRef")
            .field("id", &self.cell.id)
            .field("type", &type_name::<T>())
            .field("ready", &self.cell.is_ready())
            .finish()
    }
}

impl<T> PartialEq for ObjectRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cell.id == other.cell.id
    }
}

impl<T> Eq for ObjectRef<T> {}

impl<T> Hash for ObjectRef<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.cell.id.hash(state);
    }
}

/// An `ObjectRef` held inside a stored value counts as its handle's bytes:
/// the object it refers to is an object of its own, counted once, there.
impl<T> crate::size::GetSize for ObjectRef<T> {}

/// An `ObjectRef` serializes as its object id. The object is registered with
/// its runner so the id can be resolved while any reference is alive.
impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if let Some(owner) = &self.cell.owner {
            owner.export_object(&self.cell);
        }
        self.cell.id.serialize(serializer)
    }
}

/// Decoding an `ObjectRef` looks its id up in the runner of the current task
/// (or the default runtime); an id nobody holds any more is an error.
impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let id = ObjectId::deserialize(deserializer)?;
        let runner = context::current_runner().ok_or_else(|| serde::de::Error::custom(Error::NoRuntime))?;
        runner.lookup_object(id).map(ObjectRef::from_cell).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task has an output cell, and a million may wait at once: the
    /// cell with its `Arc` counts stays within 88 bytes, which with glibc's
    /// 8-byte header is the 96-byte size class, not the 112-byte one.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_cell_with_its_counts_fits_88_bytes() {
        let size = std::mem::size_of::<ObjectCell>() + 2 * std::mem::size_of::<usize>();
        assert!(size <= 88, "{size} bytes");
    }

    #[test]
    fn first_write_wins_and_wakes_waiters() {
        let cell = Arc::new(ObjectCell {
            id: ObjectId::next(),
            function: None,
            owner: None,
            slot: OnceLock::new(),
            size: AtomicUsize::new(EMPTY),
            extra: OnceBox::new(),
        });
        let waiter = {
            let cell = cell.clone();
            std::thread::spawn(move || cell.ready_blocking(None).map(|r| r.is_ok()))
        };
        assert!(cell.complete(Ok(Arc::new(5i64))));
        assert!(!cell.complete(Err(Error::RuntimeShutdown)));
        assert_eq!(waiter.join().unwrap(), Some(true));
        let r: ObjectRef<i64> = ObjectRef::from_cell(cell);
        assert_eq!(futures::executor::block_on(r.get()).unwrap(), 5);
    }

    #[test]
    fn blocking_wait_honours_its_deadline() {
        let cell = Arc::new(ObjectCell {
            id: ObjectId::next(),
            function: None,
            owner: None,
            slot: OnceLock::new(),
            size: AtomicUsize::new(EMPTY),
            extra: OnceBox::new(),
        });
        assert!(cell.ready_blocking(Some(Instant::now() + Duration::from_millis(20))).is_none());
    }

    #[test]
    fn wrong_type_is_a_type_mismatch() {
        let cell = ObjectCell::with_error(ObjectId::next(), None, Error::NoRuntime);
        let r: ObjectRef<u8> = ObjectRef::from_cell(cell);
        assert!(matches!(r.try_get(), Some(Err(Error::NoRuntime))));
        let value: Value = Arc::new(1u8);
        assert!(matches!(downcast_value::<String>(ObjectId::next(), &value), Err(Error::TypeMismatch { .. })));
    }

    #[test]
    fn into_value_moves_a_unique_value() {
        let cell = Arc::new(ObjectCell {
            id: ObjectId::next(),
            function: None,
            owner: None,
            slot: OnceLock::from(Ok(Arc::new(vec![1u8, 2, 3]) as Value)),
            size: AtomicUsize::new(EMPTY),
            extra: OnceBox::new(),
        });
        let r: ObjectRef<Vec<u8>> = ObjectRef::from_cell(cell);
        let keep = r.clone();
        // Shared: cloned, and the object stays readable.
        assert_eq!(r.into_value().unwrap().unwrap(), vec![1, 2, 3]);
        assert_eq!(keep.try_get().unwrap().unwrap(), vec![1, 2, 3]);
        // Unique: moved.
        assert_eq!(keep.into_value().unwrap().unwrap(), vec![1, 2, 3]);
    }
}

/// A loom model of the cell's write and its waiters: every interleaving of
/// a write (or two racing ones) with blocking and async waiters, through
/// the cell's own code over the primitives of [`crate::sync`]. A waiter
/// that checked, listened and checked again in another order could miss
/// the notification; loom reports that as a deadlock. Run it with
/// `RUSTFLAGS="--cfg rustyray_loom" cargo test -p rustyray-core --lib loom`.
#[cfg(all(test, rustyray_loom))]
mod loom_tests {
    use super::*;
    use crate::returns::Parts;

    fn pending(parts: Vec<Arc<ObjectCell>>) -> Arc<ObjectCell> {
        Arc::new(ObjectCell {
            id: ObjectId::next(),
            function: None,
            owner: None,
            slot: OnceLock::new(),
            size: AtomicUsize::new(EMPTY),
            extra: if parts.is_empty() {
                OnceBox::new()
            } else {
                OnceBox::with_value(Box::new(Extra { ready: Event::new(), name: None, parts }))
            },
        })
    }

    fn value_of(outcome: Option<OutcomeRef<'_>>) -> Option<i64> {
        outcome.and_then(|outcome| outcome.ok()).and_then(|value| value.downcast_ref::<i64>().copied())
    }

    #[test]
    fn loom_a_blocking_waiter_always_sees_the_write() {
        loom::model(|| {
            let cell = pending(Vec::new());
            let waiter = {
                let cell = cell.clone();
                loom::thread::spawn(move || value_of(cell.ready_blocking(None)))
            };
            assert!(cell.complete(Ok(Arc::new(5i64))));
            assert_eq!(waiter.join().unwrap(), Some(5), "the waiter missed the write");
        });
    }

    #[test]
    fn loom_racing_writes_leave_one_outcome_that_every_waiter_sees() {
        loom::model(|| {
            let cell = pending(Vec::new());
            let writer = {
                let cell = cell.clone();
                loom::thread::spawn(move || cell.complete(Ok(Arc::new(1i64))))
            };
            let waiter = {
                let cell = cell.clone();
                loom::thread::spawn(move || value_of(Some(loom::future::block_on(cell.ready()))))
            };
            let second = cell.complete(Ok(Arc::new(2i64)));
            let first = writer.join().unwrap();
            assert!(first != second, "both writes or neither won");
            let seen = waiter.join().unwrap();
            let stored = value_of(cell.try_get());
            assert_eq!(seen, stored, "a waiter saw an outcome that did not stay");
            assert_eq!(stored, Some(if first { 1 } else { 2 }), "the stored outcome is not the winner's");
        });
    }

    #[test]
    fn loom_an_element_of_a_multiple_result_is_written_before_its_output() {
        loom::model(|| {
            let part = pending(Vec::new());
            let output = pending(vec![part.clone()]);
            let waiter = {
                let (part, output) = (part.clone(), output.clone());
                loom::thread::spawn(move || {
                    let done = output.ready_blocking(None).is_some_and(|outcome| outcome.is_ok());
                    // Whoever sees the output written finds its element written.
                    (done, value_of(part.try_get()))
                })
            };
            let parts: Value = Arc::new(Parts(vec![Arc::new(7i64) as Value]));
            assert!(output.complete(Ok(parts)));
            assert_eq!(waiter.join().unwrap(), (true, Some(7)));
            assert_eq!(value_of(part.ready_blocking(None)), Some(7));
        });
    }
}
