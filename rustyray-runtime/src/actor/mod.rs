//! Actors: everything about them but the manager's handling of their
//! messages (which is in `manager/actors.rs`).
//!
//! - [`slot`]: an actor's slot, where its released calls wait and its state
//!   is parked while it is idle.
//! - [`thread`]: the blocking thread that runs an active actor's calls.
//! - [`direct`]: the caller's fast path, leaving a call in the slot itself.
//! - [`directory`]: the runtime's actors by id and name, and their slots.
//! - [`table`]: the manager's record of each actor and its line of calls.

mod direct;
mod directory;
mod slot;
mod table;
mod thread;

pub(crate) use direct::{route_call, submit_call};
pub(crate) use directory::Directory;
pub(crate) use slot::ActorSlot;
pub(crate) use table::{ActorEntry, Actors};
