//! How a task is to be run: retries, timeout, priority, queue, resources, name.
//!
//! Options are set through the chainable builders that `f::options()` and
//! `Actor::options()` return; out-of-range values (a zero timeout, a negative
//! or NaN resource amount) do not panic: the first one is remembered and the
//! call fails at once with [`Error::InvalidOption`].

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// Exponential backoff between attempts: `initial`, doubled each retry, capped
/// at `max`, with full jitter (each delay is drawn between half and all of it).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `retry` (1 for the first retry), before jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The name of the CPU resource.
pub const CPU: &str = "CPU";

/// Options for one task (or one actor's creation).
#[derive(Clone, Debug, Default)]
pub struct TaskOptions {
    /// A name shown in state, metrics and traces.
    pub name: Option<Arc<str>>,
    /// How many times a failed attempt is retried.
    pub max_retries: u32,
    /// The delay between attempts; none means retry at once.
    pub backoff: Option<Box<Backoff>>,
    /// How long one attempt may run.
    pub timeout: Option<Duration>,
    /// Higher runs first among ready tasks.
    pub priority: i32,
    /// The named queue the task belongs to.
    pub queue: Option<Arc<str>>,
    /// CPU units held while running; `None` means the default for the body
    /// (1 for plain bodies, 0 for async ones).
    pub num_cpus: Option<f64>,
    /// Custom resources held while running.
    pub resources: Vec<(Arc<str>, f64)>,
    /// Whether arguments may appear in logs, events and task state.
    pub record_args: bool,
    /// When the task (or durable job) may start (`run_after` / `run_at`).
    pub run_at: Option<crate::durable::RunAt>,
    /// The first invalid option given, if any.
    pub invalid: Option<Box<Error>>,
}

impl TaskOptions {
    fn reject(&mut self, option: &'static str, reason: String) {
        if self.invalid.is_none() {
            self.invalid = Some(Box::new(Error::InvalidOption { option, reason }));
        }
    }

    /// Sets the name.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = Some(Arc::from(name.into()));
    }

    /// Sets how many times a failed attempt is retried.
    pub fn set_max_retries(&mut self, retries: u32) {
        self.max_retries = retries;
    }

    /// Sets exponential backoff between attempts.
    pub fn set_backoff(&mut self, initial: Duration, max: Duration) {
        if initial > max {
            self.reject("backoff", format!("the initial delay {initial:?} is longer than the maximum {max:?}"));
        } else {
            self.backoff = Some(Box::new(Backoff { initial, max }));
        }
    }

    /// Sets how long one attempt may run.
    pub fn set_timeout(&mut self, timeout: Duration) {
        if timeout.is_zero() {
            self.reject("timeout", "a timeout must be longer than zero".into());
        } else {
            self.timeout = Some(timeout);
        }
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: i32) {
        self.priority = priority;
    }

    /// Sets the queue.
    pub fn set_queue(&mut self, queue: impl Into<String>) {
        let queue = queue.into();
        if queue.is_empty() {
            self.reject("queue", "a queue name must not be empty".into());
        } else {
            self.queue = Some(Arc::from(queue));
        }
    }

    /// Sets the CPU units held while running.
    pub fn set_num_cpus(&mut self, cpus: f64) {
        match check_amount(cpus) {
            Ok(()) => self.num_cpus = Some(cpus),
            Err(reason) => self.reject("num_cpus", reason),
        }
    }

    /// Adds a custom resource held while running.
    pub fn add_resource(&mut self, name: impl Into<String>, amount: f64) {
        let name = name.into();
        if name.is_empty() {
            return self.reject("resource", "a resource name must not be empty".into());
        }
        if name == CPU {
            return self.set_num_cpus(amount);
        }
        match check_amount(amount) {
            Ok(()) => {
                self.resources.retain(|(existing, _)| **existing != *name);
                self.resources.push((Arc::from(name), amount));
            }
            Err(reason) => self.reject("resource", format!("`{name}`: {reason}")),
        }
    }
}

/// Checks a resource amount: finite and not negative.
pub fn check_amount(amount: f64) -> Result<(), String> {
    if amount.is_nan() {
        Err("the amount is NaN".into())
    } else if amount.is_infinite() {
        Err("the amount is infinite".into())
    } else if amount < 0.0 {
        Err(format!("the amount {amount} is negative"))
    } else {
        Ok(())
    }
}

/// Generates the chainable option setters shared by the task and actor builders.
#[doc(hidden)]
#[macro_export]
macro_rules! __option_setters {
    ($field:ident) => {
        /// Names the task: shown in state, metrics, traces and error messages.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.$field.set_name(name);
            self
        }

        /// Re-runs an attempt that returned `Err` or panicked (or timed out) up
        /// to `retries` more times. A cancelled task is never retried.
        pub fn max_retries(mut self, retries: u32) -> Self {
            self.$field.set_max_retries(retries);
            self
        }

        /// Waits between attempts: `initial` before the first retry, doubling up
        /// to `max`, with jitter.
        pub fn backoff(mut self, initial: ::std::time::Duration, max: ::std::time::Duration) -> Self {
            self.$field.set_backoff(initial, max);
            self
        }

        /// Fails an attempt that runs longer than `timeout` with a timeout error
        /// (retried if retries remain). An async body is dropped at the deadline;
        /// a plain body cannot be interrupted, so it is abandoned: its late
        /// result is discarded and its CPU slot stays held until it returns.
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$field.set_timeout(timeout);
            self
        }

        /// Runs before ready tasks of lower priority (FIFO within a priority).
        pub fn priority(mut self, priority: i32) -> Self {
            self.$field.set_priority(priority);
            self
        }

        /// Puts the task in a named queue whose concurrency the runtime may cap
        /// (`Runtime::builder().queue_limit(name, n)`).
        pub fn queue(mut self, queue: impl Into<String>) -> Self {
            self.$field.set_queue(queue);
            self
        }

        /// CPU units held while the task runs (default: 1 for a plain body, 0 for an async one).
        pub fn num_cpus(mut self, cpus: f64) -> Self {
            self.$field.set_num_cpus(cpus);
            self
        }

        /// A custom resource held while the task runs, counted against
        /// `Runtime::builder().resource(name, total)`.
        pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
            self.$field.add_resource(name, amount);
            self
        }

        /// Lets the task's arguments appear in logs, events and task state
        /// (they are redacted by default).
        pub fn record_args(mut self, record: bool) -> Self {
            self.$field.record_args = record;
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let b = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(50) };
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(2), Duration::from_millis(20));
        assert_eq!(b.delay(3), Duration::from_millis(40));
        assert_eq!(b.delay(4), Duration::from_millis(50));
        assert_eq!(b.delay(200), Duration::from_millis(50));
    }

    #[test]
    fn bad_values_are_remembered_not_panicked_on() {
        let mut o = TaskOptions::default();
        o.set_num_cpus(f64::NAN);
        o.set_timeout(Duration::ZERO);
        let err = o.invalid.as_deref().unwrap();
        assert!(matches!(err, Error::InvalidOption { option: "num_cpus", .. }), "{err}");

        let mut o = TaskOptions::default();
        o.set_timeout(Duration::ZERO);
        assert!(o.invalid.as_deref().unwrap().to_string().contains("timeout"));

        let mut o = TaskOptions::default();
        o.add_resource("gpu", -1.0);
        assert!(o.invalid.as_deref().unwrap().to_string().contains("negative"));

        let mut o = TaskOptions::default();
        o.add_resource("gpu", 1.0);
        o.add_resource("gpu", 2.0);
        o.add_resource("CPU", 3.0);
        assert_eq!(o.resources.len(), 1);
        assert_eq!(o.resources[0].1, 2.0);
        assert_eq!(o.num_cpus, Some(3.0));
        assert!(o.invalid.is_none());
    }
}
