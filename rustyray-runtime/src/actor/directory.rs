//! The runtime's directory of actors: by id (to turn a decoded handle back
//! into a live one), by name (`get_actor`), and each live actor's slot (where
//! its callers may leave calls directly).
//!
//! An unnamed actor is listed weakly: the directory does not keep it alive.
//! A named actor is listed strongly: it lives until killed or until the
//! runtime shuts down, however many handles exist.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use rustc_hash::{FxBuildHasher, FxHashMap};
use rustyray_core::{ActorId, ActorRef, DeathReason, Error, Result, WeakActorRef};

use super::direct::OnTheirWay;
use super::slot::ActorSlot;

enum Listing {
    Unnamed(WeakActorRef),
    Named(ActorRef),
}

#[derive(Default)]
struct Inner {
    by_id: FxHashMap<ActorId, Listing>,
    names: HashMap<String, ActorId>,
    /// Set once the runtime shuts down: no actor is listed after that, so
    /// a creation racing the shutdown cannot leave its name taken.
    closed: bool,
}

/// The actors of one runtime.
#[derive(Default)]
pub(crate) struct Directory {
    inner: Mutex<Inner>,
    /// Each live actor's slot, where its callers may leave calls directly.
    /// Looked up on every call: ids are the runtime's own counter, so the
    /// fast hash (as for the maps above) is enough.
    slots: DashMap<ActorId, Arc<ActorSlot>, FxBuildHasher>,
    /// Direct calls left at their actors that the manager has not heard of
    /// yet (see `actor::direct`): `wait_idle` waits for them too.
    pub(crate) unannounced: OnTheirWay,
}

impl Directory {
    /// The slot of a live actor.
    pub(crate) fn slot(&self, id: ActorId) -> Option<Arc<ActorSlot>> {
        self.slots.get(&id).map(|slot| slot.value().clone())
    }

    /// Lists a new actor's slot, so callers find it.
    pub(crate) fn insert_slot(&self, id: ActorId, slot: Arc<ActorSlot>) {
        self.slots.insert(id, slot);
    }

    /// Marks the actor as killed at once, if it is live (see [`ActorSlot::mark_killed`]).
    pub(crate) fn mark_killed(&self, id: ActorId) {
        if let Some(slot) = self.slots.get(&id) {
            slot.mark_killed();
        }
    }

    /// Lists a new actor, taking its name if it has one. Fails with
    /// [`Error::RuntimeShutdown`] once the directory was cleared.
    pub(crate) fn register(&self, id: ActorId, name: Option<&str>, actor: &WeakActorRef) -> Result<()> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(Error::RuntimeShutdown);
        }
        let listing = match name {
            Some(name) => {
                if inner.names.contains_key(name) {
                    return Err(Error::ActorNameTaken { name: name.to_string() });
                }
                // Every handle was dropped before the actor was listed: it is
                // dead, not missing.
                let Some(strong) = actor.upgrade() else {
                    return Err(Error::ActorDied {
                        actor: id,
                        class: actor.class(),
                        reason: DeathReason::HandlesDropped,
                    });
                };
                inner.names.insert(name.to_string(), id);
                Listing::Named(strong)
            }
            None => Listing::Unnamed(actor.clone()),
        };
        inner.by_id.insert(id, listing);
        Ok(())
    }

    /// The actor with this id, while it lives.
    pub(crate) fn lookup(&self, id: ActorId) -> Result<ActorRef> {
        let inner = self.inner.lock();
        match inner.by_id.get(&id) {
            Some(Listing::Named(actor)) => Ok(actor.clone()),
            Some(Listing::Unnamed(actor)) => actor.upgrade().ok_or(Error::ActorNotFound { name: id.to_string() }),
            None => Err(Error::ActorNotFound { name: id.to_string() }),
        }
    }

    /// The actor with this name.
    pub(crate) fn named(&self, name: &str) -> Result<ActorRef> {
        let id = self.inner.lock().names.get(name).copied();
        match id {
            Some(id) => self.lookup(id).map_err(|_| Error::ActorNotFound { name: name.to_string() }),
            None => Err(Error::ActorNotFound { name: name.to_string() }),
        }
    }

    /// Removes a dead actor (its listing and its slot) and frees its name.
    pub(crate) fn forget(&self, id: ActorId, name: Option<&str>) {
        self.slots.remove(&id);
        let listing = {
            let mut inner = self.inner.lock();
            if let Some(name) = name
                && inner.names.get(name) == Some(&id)
            {
                inner.names.remove(name);
            }
            inner.by_id.remove(&id)
        };
        // Dropped outside the lock: a named actor's reference may be the last.
        drop(listing);
    }

    /// Forgets every actor and lists none from now on (shutdown).
    pub(crate) fn clear(&self) {
        let listings = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            inner.names.clear();
            std::mem::take(&mut inner.by_id)
        };
        drop(listings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_actor_whose_handles_are_gone_is_dead_not_missing() {
        let directory = Directory::default();
        let id = ActorId::next();
        let error = directory.register(id, Some("late"), &WeakActorRef::dangling("app::Late")).unwrap_err();
        assert!(
            matches!(&error, Error::ActorDied { actor, class: "app::Late", reason: DeathReason::HandlesDropped } if *actor == id),
            "{error:?}"
        );
        assert!(matches!(directory.named("late"), Err(Error::ActorNotFound { .. })), "the name was not taken");
    }

    #[test]
    fn an_actor_listed_after_the_shutdown_cleared_the_directory_is_refused() {
        // The creation checked the runtime before the shutdown and lists
        // its actor after the shutdown cleared the directory.
        let directory = Directory::default();
        directory.clear();
        let id = ActorId::next();
        let error = directory.register(id, None, &WeakActorRef::dangling("app::Late")).unwrap_err();
        assert!(matches!(error, Error::RuntimeShutdown), "{error:?}");
        let error = directory.register(id, Some("late"), &WeakActorRef::dangling("app::Late")).unwrap_err();
        assert!(matches!(error, Error::RuntimeShutdown), "{error:?}");
        assert!(matches!(directory.lookup(id), Err(Error::ActorNotFound { .. })), "nothing was listed");
    }
}
