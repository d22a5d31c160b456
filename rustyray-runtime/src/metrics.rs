//! Task and actor metrics: per-function totals and latency histograms, and
//! their Prometheus exposition.
//!
//! The task manager counts as it applies each message (plain integers, no
//! atomics: it is the only writer, and holds its lock while it counts).
//! A scrape takes a snapshot under that lock, lets go, and encodes it, so
//! a slow scrape never stalls the runtime. The exposition (feature `metrics`)
//! goes through `prometheus-client`, the Prometheus project's own Rust
//! client: a `MetricsCollector` is computed at scrape time, which suits
//! numbers that live inside a runtime and lets several runtimes in one
//! process each report their own (a process-global recorder would mix them).

// Without the `metrics` feature the counts are kept but not exposed.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::time::Duration;

use rustc_hash::FxHashMap;
use rustyray_core::FunctionId;
use smallvec::SmallVec;

use crate::accounting::StoreUsage;

/// Upper bounds, in seconds, of the latency histograms' buckets: from 10 µs
/// (a trivial task's overhead) to 100 s.
pub(crate) const BUCKETS: [f64; 15] =
    [1e-5, 2.5e-5, 1e-4, 2.5e-4, 1e-3, 2.5e-3, 1e-2, 2.5e-2, 0.1, 0.25, 1.0, 2.5, 10.0, 25.0, 100.0];

/// A latency histogram with fixed buckets (the last counts what is above all bounds).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Histogram {
    pub(crate) counts: [u64; BUCKETS.len() + 1],
    pub(crate) sum: f64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        // Prometheus buckets count observations less than or equal to their bound.
        let bucket = BUCKETS.partition_point(|bound| *bound < seconds);
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// What happened to one function's tasks.
#[derive(Clone, Debug)]
pub(crate) struct FunctionMetrics {
    pub(crate) function: FunctionId,
    pub(crate) submitted: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) cancelled: u64,
    pub(crate) retried: u64,
    /// Submissions refused outright, by the kind of error.
    pub(crate) rejected: SmallVec<[(&'static str, u64); 1]>,
    /// From ready (inputs resolved) to the start of an attempt.
    pub(crate) queue_wait: Histogram,
    /// How long attempts ran.
    pub(crate) run_time: Histogram,
}

impl FunctionMetrics {
    fn new(function: FunctionId) -> Self {
        FunctionMetrics {
            function,
            submitted: 0,
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            retried: 0,
            rejected: SmallVec::new(),
            queue_wait: Histogram::default(),
            run_time: Histogram::default(),
        }
    }

    pub(crate) fn rejected(&mut self, kind: &'static str) {
        match self.rejected.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, count)) => *count += 1,
            None => self.rejected.push((kind, 1)),
        }
    }
}

/// The metrics of every function seen, found by an index each task keeps.
#[derive(Default)]
pub(crate) struct Functions {
    indexes: FxHashMap<FunctionId, u32>,
    /// The same indexes by where the name is (its address and length, as
    /// `ptr::eq` compares a `&str`): found without reading the name, as a
    /// task's metrics are looked up several times in its life (the index is
    /// not kept in each waiting task).
    by_address: FxHashMap<(usize, usize), u32>,
    table: Vec<FunctionMetrics>,
    /// The last function looked up and its index: tasks come in runs of one function.
    last: Option<(FunctionId, u32)>,
}

impl Functions {
    /// The index of `function`'s metrics, made on first sight.
    pub(crate) fn index(&mut self, function: FunctionId) -> u32 {
        // Names are `&'static str`s registered once per function: the same
        // address is the same function (a different one falls back to the
        // map by name).
        if let Some((last, index)) = self.last
            && std::ptr::eq(last.name(), function.name())
        {
            return index;
        }
        let address = (function.name().as_ptr() as usize, function.name().len());
        let index = match self.by_address.get(&address) {
            Some(&index) => index,
            None => {
                let index = match self.indexes.get(&function) {
                    Some(&index) => index,
                    None => {
                        let index = u32::try_from(self.table.len()).unwrap_or(u32::MAX);
                        self.table.push(FunctionMetrics::new(function));
                        self.indexes.insert(function, index);
                        index
                    }
                };
                self.by_address.insert(address, index);
                index
            }
        };
        self.last = Some((function, index));
        index
    }

    /// `function`'s metrics, made on first sight.
    pub(crate) fn of(&mut self, function: FunctionId) -> Option<&mut FunctionMetrics> {
        let index = self.index(function);
        self.get_mut(index)
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut FunctionMetrics> {
        self.table.get_mut(index as usize)
    }

    pub(crate) fn all(&self) -> &[FunctionMetrics] {
        &self.table
    }
}

/// Actors by state, and restarts by class.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ActorCounts {
    pub(crate) pending: u64,
    pub(crate) alive: u64,
    pub(crate) restarting: u64,
    /// Actors that ended in this runtime (a running total).
    pub(crate) dead: u64,
    pub(crate) restarts: Vec<(&'static str, u64)>,
}

/// Where a scrape gets its snapshot: the runtime, held weakly by collectors.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) trait Source: Send + Sync {
    /// What a scrape reports now.
    fn snapshot(&self) -> Snapshot;
}

/// Everything a scrape reports, copied out of the manager at once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) functions: Vec<FunctionMetrics>,
    pub(crate) pending_args: u64,
    pub(crate) queued: u64,
    pub(crate) running: u64,
    pub(crate) actors: ActorCounts,
    pub(crate) store: StoreUsage,
    pub(crate) events_dropped: u64,
}

#[cfg(feature = "metrics")]
pub use exposition::MetricsCollector;

#[cfg(feature = "metrics")]
mod exposition {
    use std::fmt;
    use std::sync::Weak;

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::registry::Unit;

    use super::{BUCKETS, Histogram, Snapshot, Source};

    /// A `prometheus-client` [`Collector`] for one runtime's metrics, computed
    /// at each scrape. Register it in your own registry to serve RustyRay's
    /// metrics beside yours; [`Runtime::metrics_text`](crate::Runtime::metrics_text)
    /// does that with a registry of its own.
    ///
    /// It does not keep the runtime alive: once the runtime is gone it reports nothing.
    #[derive(Clone)]
    pub struct MetricsCollector {
        pub(crate) source: Weak<dyn Source>,
    }

    impl MetricsCollector {
        /// Whether both collect the same runtime's metrics.
        pub fn same_runtime(&self, other: &MetricsCollector) -> bool {
            self.source.ptr_eq(&other.source)
        }

        /// Whether the runtime is still there to report on.
        pub fn is_alive(&self) -> bool {
            self.source.strong_count() > 0
        }
    }

    impl fmt::Debug for MetricsCollector {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("MetricsCollector").field("alive", &(self.source.strong_count() > 0)).finish()
        }
    }

    impl Collector for MetricsCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
            match self.source.upgrade() {
                Some(source) => encode(&source.snapshot(), &mut encoder),
                None => Ok(()),
            }
        }
    }

    /// Writes one family of constant metrics (counters or gauges), a sample per row.
    fn family<M: EncodeMetric>(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        rows: impl Iterator<Item = (Vec<(&'static str, &'static str)>, M)>,
    ) -> fmt::Result {
        let mut rows = rows.peekable();
        let Some((_, first)) = rows.peek() else { return Ok(()) };
        let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
        for (labels, value) in rows {
            if labels.is_empty() {
                // A metric without labels is written bare, not with `{}`.
                return value.encode(metric);
            }
            value.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn counter(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        rows: impl Iterator<Item = (Vec<(&'static str, &'static str)>, u64)>,
    ) -> fmt::Result {
        family(encoder, name, help, rows.map(|(labels, value)| (labels, ConstCounter::new(value))))
    }

    fn gauge(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        rows: impl Iterator<Item = (Vec<(&'static str, &'static str)>, i64)>,
    ) -> fmt::Result {
        family(encoder, name, help, rows.map(|(labels, value)| (labels, ConstGauge::new(value))))
    }

    fn histogram<'a>(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        rows: impl Iterator<Item = (Vec<(&'static str, &'static str)>, &'a Histogram)>,
    ) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for (labels, histogram) in rows {
            let mut buckets: Vec<(f64, u64)> = BUCKETS.iter().copied().zip(histogram.counts).collect();
            buckets.push((f64::MAX, histogram.counts[BUCKETS.len()]));
            metric.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                histogram.sum,
                histogram.count(),
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn gauge_of(value: impl TryInto<i64>) -> i64 {
        value.try_into().unwrap_or(i64::MAX)
    }

    /// Writes `snapshot` as Prometheus metric families.
    pub(super) fn encode(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let functions = &snapshot.functions;
        let by_function = |f: &super::FunctionMetrics| vec![("function", f.function.name())];
        counter(
            encoder,
            "rustyray_tasks_submitted",
            "Tasks submitted, by function.",
            functions.iter().map(|f| (by_function(f), f.submitted)),
        )?;
        counter(
            encoder,
            "rustyray_tasks",
            "Tasks finished, by function and final state (succeeded, failed, cancelled).",
            functions.iter().flat_map(|f| {
                [("succeeded", f.succeeded), ("failed", f.failed), ("cancelled", f.cancelled)]
                    .into_iter()
                    .map(move |(state, value)| (vec![("function", f.function.name()), ("state", state)], value))
            }),
        )?;
        counter(
            encoder,
            "rustyray_task_retries",
            "Retries started (attempts after a task's first), by function.",
            functions.iter().map(|f| (by_function(f), f.retried)),
        )?;
        counter(
            encoder,
            "rustyray_task_submission_failures",
            "Submissions refused before the task could wait (invalid options, unschedulable demands, unknown queue, \
             cancelled parent, shutdown), by function and reason.",
            functions.iter().flat_map(|f| {
                f.rejected
                    .iter()
                    .map(move |(reason, value)| (vec![("function", f.function.name()), ("reason", *reason)], *value))
            }),
        )?;
        gauge(
            encoder,
            "rustyray_tasks_pending_args",
            "Tasks waiting for the objects they take as arguments.",
            std::iter::once((vec![], gauge_of(snapshot.pending_args))),
        )?;
        gauge(
            encoder,
            "rustyray_tasks_queued",
            "Tasks ready to run, waiting for their turn (or a retry's backoff).",
            std::iter::once((vec![], gauge_of(snapshot.queued))),
        )?;
        gauge(
            encoder,
            "rustyray_tasks_running",
            "Tasks with an attempt running.",
            std::iter::once((vec![], gauge_of(snapshot.running))),
        )?;
        histogram(
            encoder,
            "rustyray_task_queue_wait",
            "Time from a task being ready (inputs resolved) to the start of an attempt, by function.",
            functions.iter().map(|f| (by_function(f), &f.queue_wait)),
        )?;
        histogram(
            encoder,
            "rustyray_task_run",
            "Run time of task attempts, by function.",
            functions.iter().map(|f| (by_function(f), &f.run_time)),
        )?;
        let actors = &snapshot.actors;
        gauge(
            encoder,
            "rustyray_actors",
            "Actors by state; `dead` counts every actor that ended in this runtime.",
            [
                ("pending", actors.pending),
                ("alive", actors.alive),
                ("restarting", actors.restarting),
                ("dead", actors.dead),
            ]
            .into_iter()
            .map(|(state, value)| (vec![("state", state)], gauge_of(value))),
        )?;
        counter(
            encoder,
            "rustyray_actor_restarts",
            "Actors rebuilt after a crash, by class.",
            actors.restarts.iter().map(|(class, value)| (vec![("class", *class)], *value)),
        )?;
        let store = &snapshot.store;
        gauge(
            encoder,
            "rustyray_objects",
            "Objects alive in the object store.",
            std::iter::once((vec![], gauge_of(store.objects))),
        )?;
        gauge(
            encoder,
            "rustyray_object_store_bytes",
            "Bytes the values of the live objects take (each value's own and the heap it owns), for values whose \
             type has a known size; see rustyray_objects_unsized.",
            std::iter::once((vec![], gauge_of(store.bytes))),
        )?;
        gauge(
            encoder,
            "rustyray_objects_unsized",
            "Live objects holding a value whose type has no known size, so not in rustyray_object_store_bytes.",
            std::iter::once((vec![], gauge_of(store.unsized_values))),
        )?;
        counter(
            encoder,
            "rustyray_events_dropped",
            "Lifecycle events a slow subscriber missed.",
            std::iter::once((vec![], snapshot.events_dropped)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let mut histogram = Histogram::default();
        histogram.observe(Duration::from_micros(10));
        histogram.observe(Duration::from_micros(11));
        histogram.observe(Duration::from_secs(1000));
        assert_eq!(histogram.counts[0], 1);
        assert_eq!(histogram.counts[1], 1);
        assert_eq!(histogram.counts[BUCKETS.len()], 1);
        assert_eq!(histogram.count(), 3);
        assert!((histogram.sum - 1000.000021).abs() < 1e-9);
    }

    #[test]
    fn each_function_gets_one_index() {
        let mut functions = Functions::default();
        let f = functions.index(FunctionId::new(&"m::f"));
        let g = functions.index(FunctionId::new(&"m::g"));
        assert_ne!(f, g);
        assert_eq!(functions.index(FunctionId::new(&"m::f")), f);
        assert_eq!(functions.index(FunctionId::new(&"m::f")), f, "the cached last lookup");
        assert_eq!(functions.index(FunctionId::new(&"m::g")), g);
        // The same name at another address is still the same function.
        let owned = String::from("m::f");
        let leaked: &'static &'static str = Box::leak(Box::new(&*Box::leak(owned.into_boxed_str())));
        assert_eq!(functions.index(FunctionId::new(leaked)), f);
        // A name that starts where a longer one does is another function.
        static LONGER: &str = "m::fg";
        let prefix: &'static &'static str = Box::leak(Box::new(&LONGER[..4]));
        assert_eq!(functions.index(FunctionId::new(prefix)), f);
        let fg = functions.index(FunctionId::new(&LONGER));
        assert_ne!(fg, f);
        assert_eq!(functions.index(FunctionId::new(prefix)), f, "found again by address and length");
        if let Some(metrics) = functions.get_mut(f) {
            metrics.rejected("unknown_queue");
            metrics.rejected("unknown_queue");
        }
        assert_eq!(functions.all()[f as usize].rejected.as_slice(), &[("unknown_queue", 2)]);
    }
}
