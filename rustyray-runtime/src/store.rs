//! The object store's bookkeeping.
//!
//! Objects live in [`ObjectCell`]s that `ObjectRef`s and pending tasks share;
//! a cell is freed with its last reference. The store counts the objects
//! alive, and keeps a table of the objects whose ids were serialized so they
//! can be found again by id while they live. Nothing here is on a lock in the
//! common case: counting is atomic, and the table is touched only when ids
//! are exported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rustyray_core::{Error, ObjectCell, ObjectId, Result};

/// Counts and the export table of one runtime's objects.
#[derive(Default)]
pub(crate) struct Store {
    live: AtomicUsize,
    exported_count: AtomicUsize,
    exported: Mutex<HashMap<ObjectId, Weak<ObjectCell>>>,
}

impl Store {
    pub(crate) fn created(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn released(&self, id: ObjectId) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        if self.exported_count.load(Ordering::Acquire) > 0 && self.exported.lock().remove(&id).is_some() {
            self.exported_count.fetch_sub(1, Ordering::Release);
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

    /// Objects alive now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}
