//! Task arguments: a value, or a reference to an object another task produces.
//!
//! Every parameter of a remote function accepts a `T`, an `ObjectRef<T>` or an
//! `&ObjectRef<T>` through `impl Into<TaskArg<T>>`. A reference becomes a
//! dependency: the task waits for it, and its body reads the stored value in
//! place (for `&T` parameters) or takes a copy (for `T` parameters), moving it
//! instead when the task held the last reference.

use std::any::Any;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::object::{ObjectCell, ObjectRef, downcast_value};
use crate::spec::{Attempt, TaskError};

/// One argument of a task: an inline value or an object reference.
///
/// ```
/// use rustyray_core::{TaskArg, ObjectRef};
/// fn takes(_: impl Into<TaskArg<i64>>) {}
/// takes(5);                       // a value
/// # let r: ObjectRef<i64> = ObjectRef::failed(rustyray_core::Error::NoRuntime);
/// takes(&r);                      // a reference, kept by the caller
/// takes(r);                       // a reference, handed over
/// ```
#[derive(Debug)]
pub enum TaskArg<T> {
    /// A value given directly.
    Value(T),
    /// A reference to an object produced elsewhere.
    Ref(ObjectRef<T>),
}

impl<T> From<T> for TaskArg<T> {
    fn from(value: T) -> Self {
        TaskArg::Value(value)
    }
}

impl<T> From<ObjectRef<T>> for TaskArg<T> {
    fn from(r: ObjectRef<T>) -> Self {
        TaskArg::Ref(r)
    }
}

impl<T> From<&ObjectRef<T>> for TaskArg<T> {
    fn from(r: &ObjectRef<T>) -> Self {
        TaskArg::Ref(r.clone())
    }
}

impl<T> TaskArg<T> {
    /// The object this argument waits for, if it is a reference.
    pub fn dependency(&self) -> Option<&Arc<ObjectCell>> {
        match self {
            TaskArg::Value(_) => None,
            TaskArg::Ref(r) => Some(r.cell()),
        }
    }
}

impl<T: Any + Send + Sync> TaskArg<T> {
    /// The argument's value, borrowed: the inline value, or the stored object
    /// itself (no copy). The object must be ready.
    pub fn resolve(&self) -> Result<&T, TaskError> {
        match self {
            TaskArg::Value(value) => Ok(value),
            TaskArg::Ref(r) => match r.cell().try_get() {
                Some(Ok(value)) => Ok(downcast_value::<T>(r.id(), value)?),
                Some(Err(error)) => Err(TaskError::Error(error.clone())),
                None => Err(TaskError::Error(Error::NotReady { object: r.id() })),
            },
        }
    }

    /// The argument's value, owned: the inline value moved, or the stored
    /// object moved out of the store if this was its last reference, else cloned.
    pub fn into_owned(self) -> Result<T, TaskError>
    where
        T: Clone,
    {
        self.into_owned_with(T::clone)
    }

    /// [`into_owned`](Self::into_owned), copying a shared object with `clone`.
    pub fn into_owned_with(self, clone: fn(&T) -> T) -> Result<T, TaskError> {
        match self {
            TaskArg::Value(value) => Ok(value),
            TaskArg::Ref(r) => {
                let id = r.id();
                r.into_value_with(clone).unwrap_or(Err(Error::NotReady { object: id })).map_err(TaskError::Error)
            }
        }
    }
}

impl<T: serde::Serialize> TaskArg<T> {
    /// The argument as text: a value as JSON, a reference as `ObjectRef(id)`.
    /// Only calls that opt in with `record_args(true)` are described.
    pub fn describe(&self) -> String {
        self.describe_with(|value| {
            serde_json::to_string(value).unwrap_or_else(|error| format!("<not representable: {error}>"))
        })
    }
}

impl<T> TaskArg<T> {
    /// [`describe`](Self::describe), writing a value with `describe`.
    pub fn describe_with(&self, describe: fn(&T) -> String) -> String {
        match self {
            TaskArg::Value(value) => describe(value),
            TaskArg::Ref(r) => format!("ObjectRef({})", r.id()),
        }
    }

    /// A copy, copying a value with `clone` (a reference is shared).
    pub fn clone_with(&self, clone: fn(&T) -> T) -> Self {
        match self {
            TaskArg::Value(value) => TaskArg::Value(clone(value)),
            TaskArg::Ref(r) => TaskArg::Ref(r.clone()),
        }
    }
}

impl<T: Clone> Clone for TaskArg<T> {
    fn clone(&self) -> Self {
        self.clone_with(T::clone)
    }
}

/// Holds a task's arguments across its attempts: each attempt but the last
/// gets a copy, the last gets the arguments themselves.
///
/// How to copy them is a type (`C`), not a function pointer: generated code
/// passes a closure that captures nothing, which takes no room. Every task's
/// body holds a slot, and for two word-sized arguments that word is what
/// keeps the body, with its `Arc` counts, within glibc's 64-byte chunk.
pub struct ArgSlot<A, C = fn(&A) -> A> {
    args: Mutex<Option<A>>,
    clone: C,
}

impl<A, C> std::fmt::Debug for ArgSlot<A, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgSlot").field("args", &std::any::type_name::<A>()).finish_non_exhaustive()
    }
}

impl<A: Clone> ArgSlot<A> {
    /// Holds `args`.
    pub fn new(args: A) -> Self {
        ArgSlot::with_clone(args, A::clone)
    }
}

impl<A, C: Fn(&A) -> A> ArgSlot<A, C> {
    /// Holds `args`, copied for each attempt but the last with `clone`
    /// (generated code passes the copy its parameters' checked operations
    /// make, so the arguments need no `Clone` bound here).
    pub fn with_clone(args: A, clone: C) -> Self {
        ArgSlot { args: Mutex::new(Some(args)), clone }
    }

    /// The arguments for `attempt`.
    pub fn take(&self, attempt: Attempt) -> Result<A, TaskError> {
        let mut args = self.args.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let taken = if attempt.last { args.take() } else { args.as_ref().map(&self.clone) };
        taken.ok_or(TaskError::Error(Error::ArgumentConsumed { attempt: attempt.number }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_copies_until_the_last_attempt() {
        let slot = ArgSlot::new((TaskArg::Value(vec![1, 2]),));
        let (first,) = slot.take(Attempt { number: 1, last: false }).unwrap();
        assert_eq!(first.into_owned().unwrap(), vec![1, 2]);
        let (last,) = slot.take(Attempt { number: 2, last: true }).unwrap();
        assert_eq!(*last.resolve().unwrap(), vec![1, 2]);
        assert!(slot.take(Attempt { number: 3, last: true }).is_err());
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_of_two_word_sized_arguments_with_its_body_fits_64_bytes() {
        // What the generated code builds: a copying closure that captures
        // nothing, in a body closure behind an `Arc` (two counts).
        let slot = ArgSlot::with_clone((TaskArg::Value(1u64), TaskArg::Value(2u64)), |(a, b)| (a.clone(), b.clone()));
        let size = std::mem::size_of_val(&slot) + 2 * std::mem::size_of::<usize>();
        assert!(size <= 56, "{size} bytes");
    }

    #[test]
    fn a_failed_reference_resolves_to_its_error() {
        let r: ObjectRef<i32> = ObjectRef::failed(Error::RuntimeShutdown);
        let arg: TaskArg<i32> = TaskArg::from(&r);
        assert!(arg.dependency().is_some());
        assert!(matches!(arg.resolve(), Err(TaskError::Error(Error::RuntimeShutdown))));
    }
}
