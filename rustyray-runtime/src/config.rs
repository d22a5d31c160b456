//! What a runtime was built with: the settings [`Builder`](crate::Builder)
//! checked, as the manager and scheduler read them.

use std::sync::Arc;

/// What a runtime was built with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) num_cpus: f64,
    pub(crate) resources: Vec<(Arc<str>, f64)>,
    pub(crate) queue_limits: Vec<(Arc<str>, usize)>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_finished_records: usize,
    pub(crate) event_capacity: usize,
    /// Whether the allocator is asked for its free pages back when the last object goes.
    pub(crate) trim_memory: bool,
    /// The seeded choices of a deterministic run; `None` in the normal mode.
    pub(crate) det: Option<Arc<crate::deterministic::Det>>,
}
