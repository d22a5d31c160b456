//! How many bytes a stored object takes, for the object store's byte count.
//!
//! The store holds values type-erased (`Arc<dyn Any>`), so it cannot ask a
//! value its size directly. Instead this module keeps one table, built on
//! first use, from a value's `TypeId` to a function that measures it with
//! [`GetSize`] (from the `get-size2` crate): the value's own bytes plus the
//! heap it owns. The table holds:
//!
//! - the common standard types: primitives, `String`, `Box<str>`, and
//!   `Vec`s and boxed slices of primitives (measured in O(1) from their
//!   capacity);
//! - every parameter and result type of every `#[remote]` function and
//!   `#[actor]` method that implements [`GetSize`]: the macros register them,
//!   so a type that flows through a remote signature is measured whether it
//!   reaches the store as a result or through `put`.
//!
//! A value whose type is in neither group is stored as usual and counted as
//! an object of [`ObjectSize::Unknown`] size, never guessed at: derive
//! `get_size2::GetSize` for it (with `get-size2` 0.11 as a dependency: another
//! major version derives a different trait) and use it in a remote signature
//! to have it counted. A value is measured once, when it is written, on the
//! writing thread; an object that holds an error holds no value and counts
//! no bytes. What `GetSize` measures is what is counted: the contents of an
//! `Arc` count in full in every value holding it, and a `Mutex` is measured
//! by locking it (so a result must not hold a lock another thread keeps
//! while waiting for that result). A panicking measure counts as unknown.
//!
//! Like function registration, type registration relies on the linker
//! keeping the registering code (see the crate's `registry` module).
//!
//! ```
//! use std::sync::Arc;
//! use rustyray_core::size::{ObjectSize, size_of_value};
//!
//! let bytes: rustyray_core::Value = Arc::new(vec![0u8; 1024]);
//! assert_eq!(size_of_value(&bytes), ObjectSize::Bytes(1024 + size_of::<Vec<u8>>()));
//!
//! struct Opaque;
//! let opaque: rustyray_core::Value = Arc::new(Opaque);
//! assert_eq!(size_of_value(&opaque), ObjectSize::Unknown);
//! ```

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

pub use get_size2::GetSize;
use rustc_hash::FxHashMap;

use crate::object::Value;

/// What an object counts for in the store's byte total.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectSize {
    /// It holds no value: not written yet, or written with an error.
    Empty,
    /// It holds a value of this many bytes (its own and the heap it owns).
    Bytes(usize),
    /// It holds a value whose type has no known size.
    Unknown,
}

/// Measures a value of one type, given type-erased.
type Measure = fn(&(dyn Any + Send + Sync)) -> Option<usize>;

/// One type the store knows how to measure.
#[derive(Copy, Clone)]
pub struct SizedType {
    type_id: fn() -> TypeId,
    measure: Measure,
}

impl std::fmt::Debug for SizedType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SizedType").field("type_id", &(self.type_id)()).finish_non_exhaustive()
    }
}

impl SizedType {
    /// A type measured with its [`GetSize`] implementation.
    pub const fn of<T: GetSize + Any + Send + Sync>() -> Self {
        SizedType { type_id: TypeId::of::<T>, measure: measure_get_size::<T> }
    }

    /// `Vec<P>` of a primitive `P`: its capacity, read in O(1). The generic
    /// measure walks every element; an optimized build folds that walk away,
    /// a debug build (tests) does not.
    const fn buffer<P: Copy + Any + Send + Sync>() -> Self {
        SizedType { type_id: TypeId::of::<Vec<P>>, measure: measure_buffer::<P> }
    }

    /// `Box<[P]>` of a primitive `P`.
    const fn boxed_slice<P: Copy + Any + Send + Sync>() -> Self {
        SizedType { type_id: TypeId::of::<Box<[P]>>, measure: measure_boxed_slice::<P> }
    }
}

fn measure_get_size<T: GetSize + Any>(value: &(dyn Any + Send + Sync)) -> Option<usize> {
    value.downcast_ref::<T>().map(GetSize::get_size)
}

fn measure_buffer<P: Copy + Any>(value: &(dyn Any + Send + Sync)) -> Option<usize> {
    value.downcast_ref::<Vec<P>>().map(|v| size_of::<Vec<P>>() + v.capacity() * size_of::<P>())
}

fn measure_boxed_slice<P: Copy + Any>(value: &(dyn Any + Send + Sync)) -> Option<usize> {
    value.downcast_ref::<Box<[P]>>().map(|v| size_of::<Box<[P]>>() + size_of_val::<[P]>(v))
}

/// A type named in a remote signature, submitted by generated code: a
/// function that says how to measure it, if it can be measured.
pub struct SignatureType(fn() -> Option<SizedType>);

impl std::fmt::Debug for SignatureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SignatureType").finish_non_exhaustive()
    }
}

impl SignatureType {
    /// Wraps a probe (generated code passes `|| probe!(T)`, see [`SizeProbe`]).
    pub const fn new(probe: fn() -> Option<SizedType>) -> Self {
        SignatureType(probe)
    }
}

inventory::collect!(SignatureType);

/// Chooses, for a concrete type `T` at a macro's expansion site, between
/// [`SizedType::of`] (when `T: GetSize`) and nothing, by method resolution
/// (autoref specialization): `(&&SizeProbe::<T>::new()).sized_type()`.
pub struct SizeProbe<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for SizeProbe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SizeProbe").field(&std::any::type_name::<T>()).finish()
    }
}

impl<T> SizeProbe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        SizeProbe(PhantomData)
    }
}

impl<T> Default for SizeProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The probe's answer for a type that implements [`GetSize`].
pub trait ProbeGetSize {
    /// How to measure the probed type.
    fn sized_type(&self) -> Option<SizedType>;
}

impl<T: GetSize + Any + Send + Sync> ProbeGetSize for &SizeProbe<T> {
    fn sized_type(&self) -> Option<SizedType> {
        Some(SizedType::of::<T>())
    }
}

/// The probe's answer for any other type.
pub trait ProbeUnsized {
    /// `None`: the probed type cannot be measured.
    fn sized_type(&self) -> Option<SizedType>;
}

impl<T> ProbeUnsized for SizeProbe<T> {
    fn sized_type(&self) -> Option<SizedType> {
        None
    }
}

macro_rules! primitives {
    ($($P:ty),*) => {
        [$(SizedType::of::<$P>(), SizedType::buffer::<$P>(), SizedType::boxed_slice::<$P>(),)*]
    };
}

/// The standard types measured without registration.
fn builtins() -> impl Iterator<Item = SizedType> {
    let primitives = primitives!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, usize, isize, f32, f64, bool, char);
    let others =
        [SizedType::of::<()>(), SizedType::of::<String>(), SizedType::of::<Box<str>>(), SizedType::of::<Vec<String>>()];
    primitives.into_iter().chain(others)
}

/// The measures by type. `TypeId`s are hashes already: Fx keeps the lookup,
/// done once per stored value, to a few nanoseconds.
fn table() -> &'static FxHashMap<TypeId, Measure> {
    static TABLE: OnceLock<FxHashMap<TypeId, Measure>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = FxHashMap::default();
        for probe in inventory::iter::<SignatureType> {
            if let Some(sized) = (probe.0)() {
                table.insert((sized.type_id)(), sized.measure);
            }
        }
        // The built-in measures win: a registered `Vec<u8>` walks every byte
        // unless the optimizer folds the walk away.
        table.extend(builtins().map(|sized| ((sized.type_id)(), sized.measure)));
        table
    })
}

/// How many bytes `value` takes, if its type is known (see the module docs).
///
/// A `GetSize` implementation that panics makes the value
/// [`ObjectSize::Unknown`]: measuring never fails the write of a result.
pub fn size_of_value(value: &Value) -> ObjectSize {
    let value: &(dyn Any + Send + Sync) = &**value;
    let Some(measure) = table().get(&value.type_id()) else { return ObjectSize::Unknown };
    match std::panic::catch_unwind(AssertUnwindSafe(|| measure(value))) {
        Ok(Some(bytes)) => ObjectSize::Bytes(bytes),
        Ok(None) | Err(_) => ObjectSize::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(GetSize)]
    struct Registered {
        name: String,
        points: Vec<u32>,
    }

    inventory::submit! {
        SignatureType::new(|| {
            #[allow(unused_imports)]
            use super::{ProbeGetSize as _, ProbeUnsized as _};
            (&&SizeProbe::<Registered>::new()).sized_type()
        })
    }

    struct NoSize;

    /// A hand-written measure that panics.
    struct Faulty;

    impl GetSize for Faulty {
        fn get_heap_size_with_tracker<T: get_size2::GetSizeTracker>(&self, _tracker: T) -> (usize, T) {
            panic!("cannot measure")
        }
    }

    inventory::submit! {
        SignatureType::new(|| Some(SizedType::of::<Faulty>()))
    }

    #[test]
    fn a_measure_that_panics_makes_the_size_unknown() {
        let value: Value = Arc::new(Faulty);
        assert_eq!(size_of_value(&value), ObjectSize::Unknown);
    }

    #[test]
    fn buffers_are_measured_by_capacity() {
        let mut v = Vec::<u64>::with_capacity(100);
        v.push(1);
        let value: Value = Arc::new(v);
        assert_eq!(size_of_value(&value), ObjectSize::Bytes(size_of::<Vec<u64>>() + 800));
        let boxed: Value = Arc::new(vec![1.0f32; 10].into_boxed_slice());
        assert_eq!(size_of_value(&boxed), ObjectSize::Bytes(size_of::<Box<[f32]>>() + 40));
    }

    #[test]
    fn strings_and_scalars_are_measured() {
        let text: Value = Arc::new(String::with_capacity(64));
        assert_eq!(size_of_value(&text), ObjectSize::Bytes(size_of::<String>() + 64));
        let number: Value = Arc::new(7i64);
        assert_eq!(size_of_value(&number), ObjectSize::Bytes(8));
    }

    #[test]
    fn a_registered_type_is_measured_deeply() {
        let value = Registered { name: String::from("abcd"), points: vec![1, 2, 3] };
        let expected = size_of::<Registered>() + value.name.capacity() + value.points.capacity() * 4;
        let value: Value = Arc::new(value);
        assert_eq!(size_of_value(&value), ObjectSize::Bytes(expected));
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the second borrow is what the probe tells apart
    fn a_probe_tells_measurable_types_from_others() {
        #[allow(unused_imports)]
        use super::{ProbeGetSize as _, ProbeUnsized as _};
        assert!((&&SizeProbe::<Vec<String>>::new()).sized_type().is_some());
        assert!((&&SizeProbe::<NoSize>::new()).sized_type().is_none());
        let value: Value = Arc::new(NoSize);
        assert_eq!(size_of_value(&value), ObjectSize::Unknown);
    }
}
