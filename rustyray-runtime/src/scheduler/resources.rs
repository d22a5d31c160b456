//! Resource accounting in fixed point.
//!
//! Amounts (CPU units, custom resources such as `gpu`) are kept as integers in
//! units of 1/10000, as Ray does, so adding and removing fractional demands
//! many times never drifts.

use std::collections::HashMap;
use std::sync::Arc;

use rustyray_core::TaskOptions;
use rustyray_core::options::CPU;

const SCALE: f64 = 10_000.0;

fn fixed(amount: f64) -> i64 {
    (amount * SCALE).round() as i64
}

fn float(amount: i64) -> f64 {
    amount as f64 / SCALE
}

/// What a task holds while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Demand {
    pub(crate) cpus: i64,
    /// Custom resources (rare).
    pub(crate) custom: Custom,
}

/// Custom resources and amounts: one word, and no allocation when there are
/// none, as every queued task carries one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Custom(Option<Box<Amounts>>);

/// A custom resource and an amount of it.
type Amount = (Arc<str>, i64);

/// The custom resources of one demand (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Amounts(Vec<Amount>);

impl Custom {
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, (Arc<str>, i64)> {
        self.0.as_deref().map_or(&[][..], |custom| &custom.0[..]).iter()
    }
}

impl FromIterator<(Arc<str>, i64)> for Custom {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, i64)>>(iter: I) -> Self {
        let custom: Vec<_> = iter.into_iter().collect();
        Custom((!custom.is_empty()).then(|| Box::new(Amounts(custom))))
    }
}

impl<'a> IntoIterator for &'a Custom {
    type Item = &'a (Arc<str>, i64);
    type IntoIter = std::slice::Iter<'a, (Arc<str>, i64)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Demand {
    /// The demand of a task with these options: by default one CPU for a plain
    /// body and none for an async one.
    pub(crate) fn of(options: &TaskOptions, blocking: bool) -> Self {
        if options.num_cpus.is_none() && options.resources.is_empty() {
            // The usual case, asked for several times per task: nothing to
            // convert (a float rounding per use cost an actor call about a
            // hundred instructions).
            return if blocking { Demand::ONE_CPU } else { Demand::NOTHING };
        }
        let cpus = options.num_cpus.unwrap_or(if blocking { 1.0 } else { 0.0 });
        Demand {
            cpus: fixed(cpus),
            custom: options.resources.iter().map(|(name, amount)| (name.clone(), fixed(*amount))).collect(),
        }
    }

    /// Nothing at all: an async body's default.
    pub(crate) const NOTHING: Demand = Demand { cpus: 0, custom: Custom(None) };

    /// One CPU and nothing else: a plain body's default.
    pub(crate) const ONE_CPU: Demand = Demand { cpus: SCALE as i64, custom: Custom(None) };

    /// Whether it has custom resources at all (even of amount 0).
    pub(crate) fn has_custom(&self) -> bool {
        self.custom.0.is_some()
    }

    /// Whether the task holds nothing.
    pub(crate) fn is_zero(&self) -> bool {
        self.cpus == 0 && self.custom.iter().all(|(_, amount)| *amount == 0)
    }

    /// Whether this is exactly the default demand of a plain body (one CPU, nothing else).
    pub(crate) fn is_one_cpu(&self) -> bool {
        self.cpus == fixed(1.0) && self.custom.iter().all(|(_, amount)| *amount == 0)
    }
}

/// A demand the runtime can never satisfy.
#[derive(Debug)]
pub(crate) struct Shortfall {
    pub(crate) resource: Arc<str>,
    pub(crate) demand: f64,
    pub(crate) capacity: f64,
}

/// The runtime's resources: the totals it was built with and what is free now.
#[derive(Debug)]
pub(crate) struct Pool {
    total_cpus: i64,
    free_cpus: i64,
    total: HashMap<Arc<str>, i64>,
    free: HashMap<Arc<str>, i64>,
}

impl Pool {
    pub(crate) fn new(cpus: f64, custom: &[(Arc<str>, f64)]) -> Self {
        let total: HashMap<Arc<str>, i64> =
            custom.iter().map(|(name, amount)| (name.clone(), fixed(*amount))).collect();
        Pool { total_cpus: fixed(cpus), free_cpus: fixed(cpus), free: total.clone(), total }
    }

    /// Fails if `demand` exceeds the totals, so the task could never run.
    pub(crate) fn feasible(&self, demand: &Demand) -> Result<(), Shortfall> {
        if demand.cpus > self.total_cpus {
            return Err(Shortfall {
                resource: Arc::from(CPU),
                demand: float(demand.cpus),
                capacity: float(self.total_cpus),
            });
        }
        for (name, amount) in &demand.custom {
            let total = self.total.get(name).copied().unwrap_or(0);
            if *amount > total {
                return Err(Shortfall { resource: name.clone(), demand: float(*amount), capacity: float(total) });
            }
        }
        Ok(())
    }

    /// Whether `demand` fits in what is free now.
    pub(crate) fn fits(&self, demand: &Demand) -> bool {
        demand.cpus <= self.free_cpus
            && demand.custom.iter().all(|(name, amount)| *amount <= self.free.get(name).copied().unwrap_or(0))
    }

    pub(crate) fn acquire(&mut self, demand: &Demand) {
        self.free_cpus -= demand.cpus;
        for (name, amount) in &demand.custom {
            *self.free.entry(name.clone()).or_insert(0) -= amount;
        }
    }

    pub(crate) fn release(&mut self, demand: &Demand) {
        self.free_cpus += demand.cpus;
        for (name, amount) in &demand.custom {
            *self.free.entry(name.clone()).or_insert(0) += amount;
        }
    }

    /// Gives back the CPUs of a task that waits (it keeps its other resources).
    pub(crate) fn release_cpus(&mut self, cpus: i64) {
        self.free_cpus += cpus;
    }

    /// Takes the CPUs of a task that stopped waiting, even past the total for a
    /// moment: a waiting task must be able to resume.
    pub(crate) fn reacquire_cpus(&mut self, cpus: i64) {
        self.free_cpus -= cpus;
    }

    /// CPU units free now.
    pub(crate) fn free_cpus(&self) -> f64 {
        float(self.free_cpus)
    }

    /// CPU units in total.
    pub(crate) fn total_cpus(&self) -> f64 {
        float(self.total_cpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(cpus: f64, gpu: f64) -> Demand {
        let mut options = TaskOptions::default();
        options.set_num_cpus(cpus);
        if gpu > 0.0 {
            options.add_resource("gpu", gpu);
        }
        Demand::of(&options, true)
    }

    #[test]
    fn fractional_amounts_do_not_drift() {
        let mut pool = Pool::new(1.0, &[]);
        let d = demand(0.1, 0.0);
        for _ in 0..10 {
            assert!(pool.fits(&d));
            pool.acquire(&d);
        }
        assert!(!pool.fits(&d));
        for _ in 0..10 {
            pool.release(&d);
        }
        assert_eq!(pool.free_cpus(), 1.0);
    }

    #[test]
    fn infeasible_demands_name_the_resource() {
        let pool = Pool::new(2.0, &[(Arc::from("gpu"), 1.0)]);
        assert!(pool.feasible(&demand(2.0, 1.0)).is_ok());
        let short = pool.feasible(&demand(1.0, 2.0)).unwrap_err();
        assert_eq!((&*short.resource, short.demand, short.capacity), ("gpu", 2.0, 1.0));
        let short = pool.feasible(&demand(3.0, 0.0)).unwrap_err();
        assert_eq!(&*short.resource, CPU);
    }

    #[test]
    fn defaults_depend_on_the_body() {
        let options = TaskOptions::default();
        assert!(Demand::of(&options, true).is_one_cpu());
        assert!(Demand::of(&options, false).is_zero());
    }
}
