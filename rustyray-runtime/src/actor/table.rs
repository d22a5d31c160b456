//! The manager's record of each actor: its lifecycle
//! (`PENDING -> ALIVE -> RESTARTING -> ALIVE | DEAD`), the line of calls it
//! keeps, and the actors that died. The manager changes these records as it
//! handles actor messages (see `manager/actors.rs`).

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use rustyray_core::{ActorConfig, ActorId, ActorInstance, DeathReason, Error, ObjectCell, TaskBody, TaskId};

use super::slot::ActorSlot;
use crate::metrics::ActorCounts;
use crate::scheduler::Held;
use crate::state::{ActorInfo, ActorState};

/// One actor, as the manager keeps it.
pub(crate) struct ActorEntry {
    pub(crate) config: ActorConfig,
    pub(crate) state: ActorState,
    pub(crate) restarts: u32,
    /// The constructor, with its arguments, to rebuild the actor.
    pub(crate) constructor: TaskBody,
    pub(crate) creation: TaskId,
    pub(crate) created: Arc<ObjectCell>,
    pub(crate) slot: Arc<ActorSlot>,
    /// Calls not yet released to the slot, in order.
    pub(crate) waiting: VecDeque<TaskId>,
    /// Calls released to the slot and not finished.
    pub(crate) released: FxHashSet<TaskId>,
    /// What the actor holds while it lives.
    pub(crate) held: Option<Held>,
    /// Whether every handle was dropped (an unnamed actor then exits when idle).
    pub(crate) orphaned: bool,
    pub(crate) death: Option<DeathReason>,
}

impl ActorEntry {
    pub(crate) fn info(&self) -> ActorInfo {
        ActorInfo {
            id: self.config.id,
            class: self.config.class,
            name: self.config.options.name.clone(),
            state: self.state,
            restarts: self.restarts,
            pending_calls: self.waiting.len() + self.released.len(),
            death: self.death.clone(),
        }
    }

    pub(crate) fn died(&self) -> Error {
        Error::ActorDied {
            actor: self.config.id,
            class: self.config.class,
            reason: self.death.clone().unwrap_or(DeathReason::NotAlive),
        }
    }
}

/// Every actor of the runtime.
pub(crate) struct Actors {
    pub(crate) live: FxHashMap<ActorId, ActorEntry>,
    /// Creation tasks, to find the actor a construction belongs to.
    pub(crate) creations: FxHashMap<TaskId, ActorId>,
    /// Dead actors whose names and directory entries are still to be removed.
    pub(crate) buried: Vec<(ActorId, Option<String>)>,
    /// Recently dead actors, oldest first.
    pub(crate) dead: VecDeque<ActorInfo>,
    pub(crate) keep_dead: usize,
    /// Actors that ended in this runtime.
    pub(crate) died: u64,
    /// Restarts so far, by class.
    pub(crate) restarts: Vec<(&'static str, u64)>,
    /// Calls waiting for objects, with their actor and how many waits each
    /// has open. Kept apart from the calls' entries, so that the end of a
    /// wait is matched to its start even if the call ended meanwhile.
    pub(crate) waiting_calls: FxHashMap<TaskId, (ActorId, u32)>,
    /// What is left of dead actors that holds the user's values (the states
    /// of actors killed while idle, the constructors of retired ones with
    /// their arguments), to be dropped once the manager has let go of its
    /// lock (see [`Core::take_dead_states`]).
    pub(crate) dead_states: Vec<ActorInstance>,
}

impl Actors {
    pub(crate) fn new(keep_dead: usize) -> Self {
        Actors {
            live: FxHashMap::default(),
            creations: FxHashMap::default(),
            buried: Vec::new(),
            dead: VecDeque::new(),
            keep_dead: keep_dead.min(10_000),
            died: 0,
            restarts: Vec::new(),
            waiting_calls: FxHashMap::default(),
            dead_states: Vec::new(),
        }
    }

    /// Actors by state and restarts by class, for metrics.
    pub(crate) fn counts(&self) -> ActorCounts {
        let mut counts = ActorCounts { dead: self.died, restarts: self.restarts.clone(), ..ActorCounts::default() };
        for entry in self.live.values() {
            match entry.state {
                ActorState::Pending => counts.pending += 1,
                ActorState::Alive => counts.alive += 1,
                ActorState::Restarting => counts.restarting += 1,
                ActorState::Dead => {}
            }
        }
        counts
    }

    /// Takes a released call back from its actor's slot, if it has not started.
    pub(crate) fn retract(&mut self, actor: ActorId, task: TaskId) -> bool {
        self.live.get(&actor).is_some_and(|entry| entry.slot.retract(task).is_some())
    }

    /// Snapshots of every actor: live ones, then recently dead ones.
    pub(crate) fn infos(&self) -> Vec<ActorInfo> {
        let mut live: Vec<ActorInfo> = self.live.values().map(ActorEntry::info).collect();
        live.sort_by_key(|info| info.id);
        self.dead.iter().cloned().chain(live).collect()
    }
}
