//! Multiple results: a task whose tuple result is stored as one object per
//! element (`#[remote(num_returns = n)]`, Ray's `num_returns`).
//!
//! The task is an ordinary task with one output cell; what changes is that
//! the cell is made with [`ObjectCell::pending_parts`], one element cell per
//! tuple element, and the body's tuple is split (moved, not cloned) into a
//! [`Parts`] by [`MultipleReturns::split`]. Writing the output writes the
//! elements: a value to each, or the task's error to all. The output itself
//! keeps only `()`, so each element lives exactly as long as its own
//! references: a consumer of one element holds no other element alive, and
//! an element nobody refers to any more is freed while its siblings stay.
//! The cost is one object per element plus the task's (empty) output.
//!
//! Cancelling any element cancels the task (and so every element not yet
//! written); elements already written keep their values.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use crate::call::{ArgTuple, ArgValue, RemoteFunction};
use crate::context;
use crate::error::Error;
use crate::ids::{FunctionId, TaskId};
use crate::object::{ObjectCell, ObjectRef, Value};
use crate::options::TaskOptions;
use crate::spec::{BodyResult, TaskError, TaskKind, TaskSpec};

/// The elements of a multiple result, split out of the body's tuple, in order.
pub struct Parts(pub(crate) Vec<Value>);

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").field("len", &self.0.len()).finish()
    }
}

/// A tuple type whose elements can each be their own object: what a
/// `#[remote(num_returns = n)]` function returns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be split into multiple results",
    label = "`num_returns = n` needs a tuple of n elements (2 to 12) as the result",
    note = "return a tuple such as `(A, B)` (or `Result<(A, B), E>`), each element `Send + Sync + 'static`"
)]
pub trait MultipleReturns: Send + Sync + Sized + 'static {
    /// How many elements.
    const COUNT: usize;
    /// One `ObjectRef` per element: `(ObjectRef<A>, ObjectRef<B>, ..)`.
    type Refs;
    /// Moves the elements of a stored tuple into [`Parts`].
    fn split(value: Value) -> BodyResult;
    /// The references to the element cells, in order.
    fn refs(parts: Vec<Arc<ObjectCell>>) -> Self::Refs;
}

/// Compile-time check used by generated code: `T` can be split into `N` results.
pub const fn assert_multiple_returns<T: MultipleReturns>() {}

/// The next element cell, or a failed one (never reached: there is one cell per element).
fn next_ref<T>(parts: &mut std::vec::IntoIter<Arc<ObjectCell>>) -> ObjectRef<T> {
    match parts.next() {
        Some(cell) => ObjectRef::from_cell(cell),
        None => ObjectRef::failed(Error::Internal { reason: "a multiple result has fewer cells than elements" }),
    }
}

fn unsplittable() -> TaskError {
    TaskError::Error(Error::Internal { reason: "a multiple-result body produced a shared or mistyped tuple" })
}

macro_rules! tuples {
    ($( $n:literal => ($($T:ident $v:ident),*) )*) => {$(
        impl<$($T: Send + Sync + 'static),*> MultipleReturns for ($($T,)*) {
            const COUNT: usize = $n;
            type Refs = ($(ObjectRef<$T>,)*);

            fn split(value: Value) -> BodyResult {
                let tuple = value.downcast::<Self>().map_err(|_| unsplittable())?;
                // The body's value was just made: nobody else holds it.
                let ($($v,)*) = Arc::try_unwrap(tuple).map_err(|_| unsplittable())?;
                Ok(Arc::new(Parts(vec![$(Arc::new($v) as Value),*])))
            }

            fn refs(parts: Vec<Arc<ObjectCell>>) -> Self::Refs {
                let mut parts = parts.into_iter();
                ($(next_ref::<$T>(&mut parts),)*)
            }
        }
    )*};
}

tuples! {
    2 => (A a, B b)
    3 => (A a, B b, C c)
    4 => (A a, B b, C c, D d)
    5 => (A a, B b, C c, D d, E e)
    6 => (A a, B b, C c, D d, E e, G g)
    7 => (A a, B b, C c, D d, E e, G g, H h)
    8 => (A a, B b, C c, D d, E e, G g, H h, I i)
    9 => (A a, B b, C c, D d, E e, G g, H h, I i, J j)
    10 => (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k)
    11 => (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l)
    12 => (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l, M m)
}

/// Options for one call of a `#[remote(num_returns = n)]` function, ended by
/// `.remote(args..)`, which returns one `ObjectRef` per element.
///
/// Returned by the generated `f::options()`.
#[must_use = "a task builder does nothing until `.remote(..)` is called"]
pub struct ReturnsBuilder<F, Args> {
    options: TaskOptions,
    _marker: PhantomData<fn() -> (F, Args)>,
}

impl<F, Args> std::fmt::Debug for ReturnsBuilder<F, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReturnsBuilder")
            .field("function", &std::any::type_name::<F>())
            .field("options", &self.options)
            .finish()
    }
}

impl<F, Args> Default for ReturnsBuilder<F, Args> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F, Args> ReturnsBuilder<F, Args> {
    /// Default options.
    pub fn new() -> Self {
        ReturnsBuilder { options: TaskOptions::default(), _marker: PhantomData }
    }

    /// The options collected so far.
    pub fn task_options(&self) -> &TaskOptions {
        &self.options
    }

    crate::__option_setters!(options);

    /// Lets the task start no earlier than `delay` after it is submitted
    /// (as `TaskBuilder::run_after`).
    pub fn run_after(mut self, delay: std::time::Duration) -> Self {
        self.options.run_at = Some(crate::durable::RunAt::After(delay));
        self
    }

    /// Lets the task start no earlier than `at` (as `TaskBuilder::run_at`).
    pub fn run_at(mut self, at: std::time::SystemTime) -> Self {
        self.options.run_at = Some(crate::durable::RunAt::At(at));
        self
    }
}

impl<F, Args> ReturnsBuilder<F, Args>
where
    F: RemoteFunction<Args>,
    F::Output: MultipleReturns,
    Args: ArgTuple,
{
    /// Submits the call with arguments already wrapped.
    #[track_caller]
    pub fn call(self, args: Args::TaskArgs) -> <F::Output as MultipleReturns>::Refs {
        let deps = Args::dependencies(&args);
        let described = self.options.record_args.then(|| Arc::from(F::describe(&args)));
        let body = F::body(args).map_output(<F::Output as MultipleReturns>::split);
        let function = FunctionId::new(&F::NAME);
        let id = TaskId::next();
        let count = <F::Output as MultipleReturns>::COUNT;
        let current = context::with_current(|ctx| ctx.map(|ctx| (ctx.runner.clone(), ctx.task)));
        let (runner, parent) = match current {
            Some((runner, parent)) => (runner, parent),
            None => match context::default_runner() {
                Some(runner) => (runner, None),
                None => {
                    let failed = (0..count)
                        .map(|index| ObjectCell::with_error(id.output_part(index), None, Error::NoRuntime))
                        .collect();
                    return <F::Output as MultipleReturns>::refs(failed);
                }
            },
        };
        let (output, parts) = ObjectCell::pending_parts(id, function, self.options.name.clone(), runner.clone(), count);
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
        <F::Output as MultipleReturns>::refs(parts)
    }
}

macro_rules! arities {
    ($( ($($T:ident $v:ident),*) )*) => {$(
        impl<F, $($T: ArgValue),*> ReturnsBuilder<F, ($($T,)*)>
        where
            F: RemoteFunction<($($T,)*)>,
            F::Output: MultipleReturns,
        {
            /// Submits the call; returns one `ObjectRef` per element of the
            /// result. Each argument may be a value, an `ObjectRef` or an
            /// `&ObjectRef` of the parameter's type.
            #[track_caller]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(
                self,
                $($v: impl Into<crate::arg::TaskArg<$T>>),*
            ) -> <F::Output as MultipleReturns>::Refs {
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
    (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l, M m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_moves_each_element_into_its_own_value() {
        let value: Value = Arc::new((String::from("a"), 7i64));
        let parts = <(String, i64) as MultipleReturns>::split(value).unwrap();
        let parts = parts.downcast::<Parts>().unwrap();
        assert_eq!(parts.0.len(), 2);
        assert_eq!(parts.0[0].downcast_ref::<String>().unwrap(), "a");
        assert_eq!(*parts.0[1].downcast_ref::<i64>().unwrap(), 7);
    }

    #[test]
    fn a_value_of_another_type_does_not_split() {
        let value: Value = Arc::new(5u8);
        assert!(<(u8, u8) as MultipleReturns>::split(value).is_err());
    }

    #[test]
    fn refs_come_in_element_order() {
        let task = TaskId::next();
        let parts: Vec<Arc<ObjectCell>> =
            (0..2).map(|i| ObjectCell::with_error(task.output_part(i), None, Error::NoRuntime)).collect();
        let refs: (ObjectRef<u8>, ObjectRef<u8>) = <(u8, u8) as MultipleReturns>::refs(parts);
        assert_eq!(refs.0.id(), task.output_part(0));
        assert_eq!(refs.1.id(), task.output_part(1));
    }
}
