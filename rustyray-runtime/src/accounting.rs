//! The object store's bookkeeping.
//!
//! Objects live in [`ObjectCell`]s that `ObjectRef`s and pending tasks share;
//! a cell is freed with its last reference. The store counts the objects
//! alive and the bytes their values take (each value is measured once, when
//! written: see `rustyray_core::size`), and keeps a table of the objects
//! whose ids were serialized so they can be found again by id while they
//! live. Nothing here is on a lock in the common case: counting is atomic,
//! and the table is touched only when ids are exported. When the last
//! object goes, the allocator may be asked for its free pages back
//! ([`crate::trim`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rustyray_core::{Error, ObjectCell, ObjectId, ObjectSize, Result};

use crate::trim::Trimmer;

/// Counts and the export table of one runtime's objects.
#[derive(Default)]
pub(crate) struct Store {
    /// Gives the allocator's free pages back when the last object goes.
    trimmer: Trimmer,
    live: AtomicUsize,
    /// Bytes of the live objects whose values have a known size.
    bytes: AtomicUsize,
    /// Live objects whose values' type has no known size.
    unsized_values: AtomicUsize,
    exported_count: AtomicUsize,
    exported: Mutex<HashMap<ObjectId, Weak<ObjectCell>>>,
}

impl Store {
    pub(crate) fn new(trimmer: Trimmer) -> Self {
        Store { trimmer, ..Store::default() }
    }

    pub(crate) fn created(&self, size: ObjectSize) {
        self.live.fetch_add(1, Ordering::Relaxed);
        self.stored(size);
    }

    pub(crate) fn stored(&self, size: ObjectSize) {
        if let Some((counter, amount)) = self.counter_of(size) {
            counter.fetch_add(amount, Ordering::Relaxed);
        }
    }

    pub(crate) fn released(&self, id: ObjectId, size: ObjectSize) {
        let before = self.live.fetch_sub(1, Ordering::Relaxed);
        if let Some((counter, amount)) = self.counter_of(size) {
            counter.fetch_sub(amount, Ordering::Relaxed);
        }
        if self.exported_count.load(Ordering::Acquire) > 0 && self.exported.lock().remove(&id).is_some() {
            self.exported_count.fetch_sub(1, Ordering::Release);
        }
        if before == 1 {
            self.trimmer.emptied();
        }
    }

    pub(crate) fn export(&self, cell: &Arc<ObjectCell>) {
        let mut exported = self.exported.lock();
        if exported.insert(cell.id(), Arc::downgrade(cell)).is_none() {
            self.exported_count.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn lookup(&self, id: ObjectId) -> Result<Arc<ObjectCell>> {
        self.exported.lock().get(&id).and_then(Weak::upgrade).ok_or(Error::ObjectLost { object: id })
    }

    /// The counter an object of `size` counts in, and by how much.
    fn counter_of(&self, size: ObjectSize) -> Option<(&AtomicUsize, usize)> {
        match size {
            ObjectSize::Bytes(bytes) => Some((&self.bytes, bytes)),
            ObjectSize::Unknown => Some((&self.unsized_values, 1)),
            ObjectSize::Empty => None,
        }
    }

    /// Objects alive now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// What the live objects hold, at one moment.
    pub(crate) fn usage(&self) -> StoreUsage {
        StoreUsage {
            objects: self.live(),
            bytes: self.bytes.load(Ordering::Relaxed),
            unsized_values: self.unsized_values.load(Ordering::Relaxed),
        }
    }
}

/// The object store's totals.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StoreUsage {
    /// Objects alive.
    pub(crate) objects: usize,
    /// Bytes of the live objects' values of known size.
    pub(crate) bytes: usize,
    /// Live objects holding a value of a type with no known size.
    pub(crate) unsized_values: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_unsized_values_follow_stores_and_releases() {
        let store = Store::default();
        let (a, b, c) = (ObjectId::next(), ObjectId::next(), ObjectId::next());
        store.created(ObjectSize::Bytes(100));
        store.created(ObjectSize::Empty);
        store.created(ObjectSize::Empty);
        store.stored(ObjectSize::Unknown);
        assert_eq!(store.usage(), StoreUsage { objects: 3, bytes: 100, unsized_values: 1 });
        store.released(a, ObjectSize::Bytes(100));
        store.released(b, ObjectSize::Unknown);
        store.released(c, ObjectSize::Empty);
        assert_eq!(store.usage(), StoreUsage::default());
    }
}
