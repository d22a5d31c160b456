//! The task table: the manager's entries, found by task id.
//!
//! A million tasks may wait at once, each with a slot here. A map from id to
//! boxed entry spends two words per slot (the id, then the box); this table
//! keeps only the box and finds an entry by the id inside it, one word per
//! slot. At a million tasks (2^21 slots) that is 16 MiB less.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;
use rustc_hash::FxBuildHasher;
use rustyray_core::TaskId;

use crate::task::Entry;

/// The entries of unfinished tasks, by task id.
#[derive(Default)]
pub(crate) struct TaskTable {
    entries: HashTable<Box<Entry>>,
}

fn hash(id: TaskId) -> u64 {
    FxBuildHasher.hash_one(id)
}

impl TaskTable {
    pub(crate) fn get(&self, id: &TaskId) -> Option<&Entry> {
        self.entries.find(hash(*id), |entry| entry.spec.id == *id).map(|entry| &**entry)
    }

    pub(crate) fn get_mut(&mut self, id: &TaskId) -> Option<&mut Entry> {
        self.entries.find_mut(hash(*id), |entry| entry.spec.id == *id).map(|entry| &mut **entry)
    }

    pub(crate) fn contains_key(&self, id: &TaskId) -> bool {
        self.get(id).is_some()
    }

    /// Adds `entry` under its task's id; gives back an entry it replaces.
    pub(crate) fn insert(&mut self, entry: Box<Entry>) -> Option<Box<Entry>> {
        let id = entry.spec.id;
        match self.entries.entry(hash(id), |old| old.spec.id == id, |entry| hash(entry.spec.id)) {
            Slot::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), entry)),
            Slot::Vacant(slot) => {
                slot.insert(entry);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &TaskId) -> Option<Box<Entry>> {
        self.entries.find_entry(hash(*id), |entry| entry.spec.id == *id).ok().map(|slot| slot.remove().0)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().map(|entry| &**entry)
    }

    /// Takes every entry out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Box<Entry>> + '_ {
        self.entries.drain()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Gives back memory, keeping room for at least `capacity` entries.
    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        self.entries.shrink_to(capacity, |entry| hash(entry.spec.id));
    }
}

#[cfg(test)]
mod tests {
    use rustyray_core::{Error, ObjectCell};

    use super::*;

    fn entry(n: u64) -> Box<Entry> {
        let id = TaskId::from_u64(n);
        Entry::for_test(id, ObjectCell::with_error(id.output(), Some(id), Error::NoRuntime))
    }

    #[test]
    fn entries_are_found_by_the_id_inside_them() {
        let mut table = TaskTable::default();
        assert!(table.is_empty());
        for n in 1..=1000 {
            assert!(table.insert(entry(n)).is_none());
        }
        assert!(table.contains_key(&TaskId::from_u64(500)));
        assert!(!table.contains_key(&TaskId::from_u64(1001)));
        if let Some(entry) = table.get_mut(&TaskId::from_u64(7)) {
            entry.set_unresolved(3);
        }
        assert_eq!(table.get(&TaskId::from_u64(7)).map(|e| e.unresolved()), Some(3));
        // A second entry under one id replaces the first, as a map's insert does.
        let old = table.insert(entry(7));
        assert_eq!(old.map(|e| e.unresolved()), Some(3));
        assert_eq!(table.get(&TaskId::from_u64(7)).map(|e| e.unresolved()), Some(0));
        for n in 1..=900 {
            assert_eq!(table.remove(&TaskId::from_u64(n)).map(|e| e.spec.id), Some(TaskId::from_u64(n)));
        }
        assert!(table.remove(&TaskId::from_u64(1)).is_none());
        table.shrink_to(0);
        let mut left: Vec<u64> = table.values().map(|e| e.spec.id.as_u64()).collect();
        left.sort_unstable();
        assert_eq!(left, (901..=1000).collect::<Vec<_>>());
        assert_eq!(table.drain().count(), 100);
        assert!(table.is_empty());
    }
}
