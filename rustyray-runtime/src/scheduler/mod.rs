//! Which ready task runs next.
//!
//! The task manager hands the scheduler every task whose inputs are ready; the
//! scheduler releases them, one at a time, when they may run:
//!
//! - **Priority**: higher priority first, FIFO within a priority.
//! - **Resources**: a task that holds resources (CPU units, custom resources)
//!   runs only when they are free. Such tasks wait in strict priority order, so
//!   a large task is never starved by a stream of small ones. Tasks that hold
//!   nothing (async bodies by default) have a line of their own and never wait
//!   behind a resource-bound task.
//! - **Queues**: a named queue with a limit never has more than that many
//!   tasks running; its extra tasks are parked until one of its tasks ends.
//! - **In flight**: the runtime never runs more than its global in-flight limit.
//!
//! A low-priority task runs as soon as no higher-priority work is ready, so a
//! pause in a high-priority stream always lets it through.
//!
//! The scheduler does not know tasks' states: the manager says which queued
//! entries are still live (a cancelled task leaves a stale entry behind, which
//! is skipped when it reaches the front).
//!
//! Each of the two lines (tasks that hold resources, tasks that hold nothing)
//! is a [`line::Line`]: a heap, with a first-in-first-out line beside it for
//! the usual task, whose order of arrival is its order of running.

mod line;
mod resources;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use rustc_hash::FxHashSet;
use rustyray_core::TaskId;

use line::Line;

pub(crate) use resources::{Demand, Pool, Shortfall};

/// A task waiting for its turn.
///
/// A million tasks may become ready at once (all waiting on one object), and
/// each is then one of these in a ready line: the usual demands (nothing, or
/// one CPU) with no queue are a tag, and only the rest is boxed, which keeps
/// it at 32 bytes rather than 56.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) task: TaskId,
    pub(crate) seq: u64,
    pub(crate) priority: i32,
    usual: Usual,
    /// Its demand and queue, when they are not the usual ones.
    rare: Option<Box<Rare>>,
}

/// Which usual demand a [`Ready`] has, if any.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Usual {
    Nothing,
    OneCpu,
    /// Neither, or it has a queue: see [`Ready::rare`].
    No,
}

impl Usual {
    /// The demand it stands for (nothing for [`Usual::No`], whose demand is boxed).
    fn demand(self) -> &'static Demand {
        match self {
            Usual::OneCpu => &Demand::ONE_CPU,
            Usual::Nothing | Usual::No => &Demand::NOTHING,
        }
    }
}

/// A ready task's demand and queue, when they are not the usual ones.
#[derive(Debug)]
struct Rare {
    demand: Demand,
    queue: Option<Arc<str>>,
}

impl Ready {
    fn new(task: TaskId, seq: u64, priority: i32, demand: Demand, queue: Option<Arc<str>>) -> Self {
        let usual = match (&queue, demand.has_custom(), demand.cpus) {
            (None, false, 0) => Usual::Nothing,
            (None, false, cpus) if cpus == Demand::ONE_CPU.cpus => Usual::OneCpu,
            _ => Usual::No,
        };
        let rare = (usual == Usual::No).then(|| Box::new(Rare { demand, queue }));
        Ready { task, seq, priority, usual, rare }
    }

    /// A task of priority 0 with the usual demand `usual`, and no queue.
    fn usual(task: TaskId, seq: u64, usual: Usual) -> Self {
        Ready { task, seq, priority: 0, usual, rare: None }
    }

    /// What it will hold while it runs.
    pub(crate) fn demand(&self) -> &Demand {
        match &self.rare {
            Some(rare) => &rare.demand,
            None => self.usual.demand(),
        }
    }

    /// The named queue it runs in, if any.
    pub(crate) fn queue(&self) -> Option<&Arc<str>> {
        self.rare.as_ref().and_then(|rare| rare.queue.as_ref())
    }
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Ready {}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ready {
    /// Higher priority first, then earlier submission first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A named queue with a concurrency limit.
#[derive(Debug)]
struct Queue {
    limit: usize,
    running: usize,
    parked: BinaryHeap<Ready>,
}

/// What a released task holds until it ends.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) demand: Demand,
    pub(crate) queue: Option<Arc<str>>,
    /// Whether it counts against the in-flight limit (a task run inline by its
    /// waiter does not: it borrows the waiter's place).
    pub(crate) counted: bool,
    /// How many waits for objects are open in it (one task may wait on
    /// several at once, e.g. `join!(a.get(), b.get())`): its CPUs are given
    /// back while any is open.
    pub(crate) waits: u32,
}

/// The ready queues and resource accounting.
#[derive(Debug)]
pub(crate) struct Scheduler {
    free: Line,
    bound: Line,
    queues: HashMap<Arc<str>, Queue>,
    pool: Pool,
    max_in_flight: usize,
    in_flight: usize,
    next_seq: u64,
    /// Places in line given up (task cancelled or run inline), skipped when reached.
    stale: FxHashSet<u64>,
}

impl Scheduler {
    pub(crate) fn new(
        cpus: f64,
        resources: &[(Arc<str>, f64)],
        queue_limits: &[(Arc<str>, usize)],
        max_in_flight: usize,
    ) -> Self {
        Scheduler {
            free: Line::new(Usual::Nothing),
            bound: Line::new(Usual::OneCpu),
            queues: queue_limits
                .iter()
                .map(|(name, limit)| (name.clone(), Queue { limit: *limit, running: 0, parked: BinaryHeap::new() }))
                .collect(),
            pool: Pool::new(cpus, resources),
            max_in_flight,
            in_flight: 0,
            next_seq: 0,
            stale: FxHashSet::default(),
        }
    }

    /// Fails if `demand` can never be met.
    pub(crate) fn feasible(&self, demand: &Demand) -> Result<(), Shortfall> {
        self.pool.feasible(demand)
    }

    /// Whether the runtime has a queue of this name.
    pub(crate) fn has_queue(&self, name: &str) -> bool {
        self.queues.contains_key(name)
    }

    /// The queue names, comma separated, for error messages.
    pub(crate) fn queue_names(&self) -> String {
        let mut names: Vec<&str> = self.queues.keys().map(|name| &**name).collect();
        names.sort_unstable();
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    }

    /// Adds a ready task; returns its sequence number (its place in FIFO order).
    pub(crate) fn push(&mut self, task: TaskId, priority: i32, demand: Demand, queue: Option<Arc<str>>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(Ready::new(task, seq, priority, demand, queue));
        seq
    }

    /// Puts a task back at the place in line `seq` it was given before.
    pub(crate) fn push_at(&mut self, task: TaskId, seq: u64, priority: i32, demand: Demand, queue: Option<Arc<str>>) {
        self.insert(Ready::new(task, seq, priority, demand, queue));
    }

    fn insert(&mut self, ready: Ready) {
        if ready.demand().is_zero() { self.free.push(ready) } else { self.bound.push(ready) }
    }

    /// Gives up a queued task's place in line (it was cancelled, or run inline).
    pub(crate) fn forget(&mut self, seq: u64) {
        self.stale.insert(seq);
    }

    fn drop_stale(&mut self) {
        if self.stale.is_empty() {
            return;
        }
        for line in [&mut self.free, &mut self.bound] {
            while let Some(front) = line.peek() {
                if !self.stale.remove(&front.seq) {
                    break;
                }
                line.pop();
            }
        }
    }

    /// Releases the next task that may run now, taking what it holds.
    pub(crate) fn next(&mut self) -> Option<(Ready, Held)> {
        loop {
            if self.in_flight >= self.max_in_flight {
                return None;
            }
            self.drop_stale();
            let bound_fits = self.bound.peek().is_some_and(|r| self.pool.fits(r.demand()));
            let take_bound = match (self.free.peek(), bound_fits) {
                (None, false) => return None,
                (None, true) => true,
                (Some(_), false) => false,
                (Some(free), true) => self.bound.peek().is_some_and(|bound| bound.before(&free)),
            };
            let ready = if take_bound { self.bound.pop() } else { self.free.pop() }?;
            // `drop_stale` left a live task at the top; the set is checked
            // only if something is stale at all (most of the time nothing is).
            if !self.stale.is_empty() && self.stale.remove(&ready.seq) {
                continue;
            }
            if let Some(name) = ready.queue()
                && let Some(queue) = self.queues.get_mut(name)
            {
                if queue.running >= queue.limit {
                    queue.parked.push(ready);
                    continue;
                }
                queue.running += 1;
            }
            self.pool.acquire(ready.demand());
            self.in_flight += 1;
            let held = Held { demand: ready.demand().clone(), queue: ready.queue().cloned(), counted: true, waits: 0 };
            return Some((ready, held));
        }
    }

    /// Takes the task at the front of the resource line, without its
    /// resources, if it has the usual plain shape (one CPU, no queue): it is
    /// to start on a worker when that worker's attempt ends, taking over its CPU.
    pub(crate) fn take_lookahead(&mut self) -> Option<Ready> {
        self.drop_stale();
        if !self.bound.peek()?.is_one_cpu() {
            return None;
        }
        self.bound.pop()
    }

    /// How many tasks wait in the resource line (counting places given up).
    pub(crate) fn bound_len(&self) -> usize {
        self.bound.len()
    }

    /// The priority of the task at the front of the resource line.
    pub(crate) fn bound_top_priority(&mut self) -> Option<i32> {
        self.drop_stale();
        self.bound.peek().map(|top| top.priority)
    }

    /// Puts back a task taken with [`take_lookahead`](Self::take_lookahead), in its old place.
    pub(crate) fn unget(&mut self, ready: Ready) {
        self.insert(ready);
    }

    /// Whether a one-CPU task could start now and nothing ready waits for resources.
    pub(crate) fn cpu_idle(&mut self) -> bool {
        self.drop_stale();
        self.bound.is_empty() && self.in_flight < self.max_in_flight && self.pool.fits(&Demand::ONE_CPU)
    }

    /// Starts a task at once, outside the queues: a task run inline by the
    /// task that waits for it, which handed it its CPU.
    pub(crate) fn start_now(&mut self, demand: Demand) -> Held {
        self.pool.acquire(&demand);
        Held { demand, queue: None, counted: false, waits: 0 }
    }

    /// A released task ended: give back what it held, and let its queue's next task in.
    pub(crate) fn release(&mut self, held: Held) {
        if held.waits > 0 {
            self.pool.reacquire_cpus(held.demand.cpus);
        }
        self.pool.release(&held.demand);
        if held.counted {
            self.in_flight -= 1;
        }
        if let Some(name) = &held.queue
            && let Some(queue) = self.queues.get_mut(name)
        {
            queue.running -= 1;
            if let Some(parked) = queue.parked.pop() {
                self.insert(parked);
            }
        }
    }

    /// Stops counting `held` against the in-flight limit (an actor's holdings).
    pub(crate) fn uncount(&mut self, held: &mut Held) {
        if held.counted {
            held.counted = false;
            self.in_flight -= 1;
        }
    }

    /// A running task opens a wait for objects: its CPUs are free while any
    /// of its waits is open. Returns whether it was not waiting before.
    pub(crate) fn block(&mut self, held: &mut Held) -> bool {
        held.waits += 1;
        if held.waits > 1 {
            return false;
        }
        self.pool.release_cpus(held.demand.cpus);
        true
    }

    /// A waiting task closes one of its waits; once none is open it takes its
    /// CPUs back. Returns whether it stopped waiting.
    pub(crate) fn unblock(&mut self, held: &mut Held) -> bool {
        if held.waits == 0 {
            return false;
        }
        held.waits -= 1;
        if held.waits > 0 {
            return false;
        }
        self.pool.reacquire_cpus(held.demand.cpus);
        true
    }

    /// Gives back the memory of the ready lines, down to `capacity` entries each.
    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        self.free.shrink_to(capacity);
        self.bound.shrink_to(capacity);
        self.stale.shrink_to(capacity);
    }

    /// Tasks released and still running (not counting inline runs).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// CPU units free now, and in total.
    pub(crate) fn cpus(&self) -> (f64, f64) {
        (self.pool.free_cpus(), self.pool.total_cpus())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyray_core::TaskOptions;

    fn cpu(n: f64) -> Demand {
        let mut o = TaskOptions::default();
        o.set_num_cpus(n);
        Demand::of(&o, true)
    }

    fn drain(s: &mut Scheduler) -> Vec<(u64, Held)> {
        let mut out = Vec::new();
        while let Some((ready, held)) = s.next() {
            out.push((ready.task.as_u64(), held));
        }
        out
    }

    fn ids(v: &[(u64, Held)]) -> Vec<u64> {
        v.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn a_ready_task_is_four_words_and_keeps_its_demand_and_queue() {
        assert!(std::mem::size_of::<Ready>() <= 32, "{} bytes", std::mem::size_of::<Ready>());
        let io: Arc<str> = Arc::from("io");
        let cases = [
            (Demand::NOTHING, None),
            (Demand::ONE_CPU, None),
            (cpu(2.0), None),
            (cpu(0.5), None),
            (Demand::ONE_CPU, Some(io.clone())),
            (Demand::NOTHING, Some(io.clone())),
        ];
        for (demand, queue) in cases {
            let ready = Ready::new(TaskId::from_u64(1), 7, 3, demand.clone(), queue.clone());
            assert_eq!(ready.demand(), &demand);
            assert_eq!(ready.queue(), queue.as_ref());
            let lookahead = demand == Demand::ONE_CPU && queue.is_none();
            assert_eq!(ready.usual == Usual::OneCpu, lookahead, "{demand:?} {queue:?}");
        }
    }

    #[test]
    fn priority_then_fifo() {
        let mut s = Scheduler::new(1.0, &[], &[], usize::MAX);
        for (id, prio) in [(1, 0), (2, 5), (3, 0), (4, 5)] {
            s.push(TaskId::from_u64(id), prio, Demand::default(), None);
        }
        assert_eq!(ids(&drain(&mut s)), vec![2, 4, 1, 3]);
    }

    #[test]
    fn resource_bound_tasks_wait_for_resources_in_order() {
        let mut s = Scheduler::new(2.0, &[], &[], usize::MAX);
        s.push(TaskId::from_u64(1), 0, cpu(1.0), None);
        s.push(TaskId::from_u64(2), 0, cpu(2.0), None);
        s.push(TaskId::from_u64(3), 0, cpu(1.0), None);
        s.push(TaskId::from_u64(4), 0, Demand::default(), None);
        let first = drain(&mut s);
        // Task 2 needs both CPUs: it waits, and task 3 waits behind it (no
        // starvation of big tasks); the resource-free task 4 runs anyway.
        assert_eq!(ids(&first), vec![1, 4]);
        for (_, held) in first {
            s.release(held);
        }
        let second = drain(&mut s);
        assert_eq!(ids(&second), vec![2]);
        for (_, held) in second {
            s.release(held);
        }
        assert_eq!(ids(&drain(&mut s)), vec![3]);
    }

    #[test]
    fn queue_limits_cap_concurrency() {
        let io: Arc<str> = Arc::from("io");
        let mut s = Scheduler::new(8.0, &[], &[(io.clone(), 2)], usize::MAX);
        for id in 1..=5 {
            s.push(TaskId::from_u64(id), 0, Demand::default(), Some(io.clone()));
        }
        s.push(TaskId::from_u64(6), 0, Demand::default(), None);
        let mut running = drain(&mut s);
        assert_eq!(ids(&running), vec![1, 2, 6]);
        let (_, held) = running.remove(0);
        s.release(held);
        assert_eq!(ids(&drain(&mut s)), vec![3]);
    }

    #[test]
    fn in_flight_limit_and_stale_entries() {
        let mut s = Scheduler::new(8.0, &[], &[], 2);
        let mut seqs = Vec::new();
        for id in 1..=4 {
            seqs.push(s.push(TaskId::from_u64(id), 0, Demand::default(), None));
        }
        s.forget(seqs[0]);
        let mut out = Vec::new();
        while let Some((ready, held)) = s.next() {
            out.push((ready.task.as_u64(), held));
        }
        assert_eq!(ids(&out), vec![2, 3]);
        assert_eq!(s.in_flight(), 2);
    }

    #[test]
    fn blocked_tasks_free_their_cpus() {
        let mut s = Scheduler::new(1.0, &[], &[], usize::MAX);
        s.push(TaskId::from_u64(1), 0, cpu(1.0), None);
        s.push(TaskId::from_u64(2), 0, cpu(1.0), None);
        let (_, mut parent) = s.next().unwrap();
        assert!(s.next().is_none());
        s.block(&mut parent);
        let (_, child) = s.next().unwrap();
        s.unblock(&mut parent);
        s.release(child);
        s.release(parent);
        assert_eq!(s.cpus(), (1.0, 1.0));
    }

    #[test]
    fn a_task_waiting_twice_takes_its_cpus_back_only_when_both_waits_end() {
        let mut s = Scheduler::new(1.0, &[], &[], usize::MAX);
        s.push(TaskId::from_u64(1), 0, cpu(1.0), None);
        let (_, mut parent) = s.next().unwrap();
        assert!(s.block(&mut parent));
        assert!(!s.block(&mut parent));
        assert_eq!(s.cpus(), (1.0, 1.0));
        assert!(!s.unblock(&mut parent), "one wait is still open");
        assert_eq!(s.cpus(), (1.0, 1.0));
        assert!(s.unblock(&mut parent));
        assert_eq!(s.cpus(), (0.0, 1.0));
        assert!(!s.unblock(&mut parent), "an unmatched end of a wait changes nothing");
        s.release(parent);
        assert_eq!(s.cpus(), (1.0, 1.0));
    }

    #[test]
    fn releasing_a_waiting_task_gives_back_its_cpus_once() {
        let mut s = Scheduler::new(1.0, &[], &[], usize::MAX);
        s.push(TaskId::from_u64(1), 0, cpu(1.0), None);
        let (_, mut task) = s.next().unwrap();
        s.block(&mut task);
        s.block(&mut task);
        s.release(task);
        assert_eq!(s.cpus(), (1.0, 1.0));
    }
}

/// A loom model of the waiting counter: a task's waits begin and end on
/// the threads that run it (an async task may end a wait on another tokio
/// worker than the one it began on) and reach the manager as messages over
/// one channel, where [`Scheduler::block`] and [`Scheduler::unblock`] count
/// them. Loom's channel stands in for the manager's (both keep each
/// sender's order). Run it with
/// `RUSTFLAGS="--cfg rustyray_loom" cargo test -p rustyray-runtime --no-default-features --lib loom`.
#[cfg(all(test, rustyray_loom))]
mod loom_tests {
    use loom::sync::mpsc;
    use loom::thread;
    use rustyray_core::TaskOptions;

    use super::*;

    enum Wait {
        Begin(usize),
        End(usize),
    }

    #[test]
    fn loom_a_task_takes_its_cpu_back_once_after_its_last_wait() {
        loom::model(|| {
            let (tx, rx) = mpsc::channel();
            // The first wait begins on one thread and ends on another.
            let first = {
                let tx = tx.clone();
                thread::spawn(move || {
                    tx.send(Wait::Begin(0)).unwrap();
                    let later = tx.clone();
                    thread::spawn(move || later.send(Wait::End(0)).unwrap()).join().unwrap();
                })
            };
            // The second is open at the same time, from another thread.
            let second = thread::spawn(move || {
                tx.send(Wait::Begin(1)).unwrap();
                tx.send(Wait::End(1)).unwrap();
            });

            // The manager, applying the messages as they come.
            let mut options = TaskOptions::default();
            options.set_num_cpus(1.0);
            let mut scheduler = Scheduler::new(1.0, &[], &[], usize::MAX);
            let mut held = scheduler.start_now(Demand::of(&options, true));
            let mut open = [false; 2];
            let mut taken_back = 0;
            for _ in 0..4 {
                match rx.recv().unwrap() {
                    Wait::Begin(wait) => {
                        let gave_back = scheduler.block(&mut held);
                        assert_eq!(gave_back, !open.contains(&true), "the CPU was given back twice, or not at first");
                        open[wait] = true;
                    }
                    Wait::End(wait) => {
                        assert!(open[wait], "a wait ended before it began");
                        open[wait] = false;
                        let took_back = scheduler.unblock(&mut held);
                        assert_eq!(took_back, !open.contains(&true), "the CPU was taken back while a wait was open");
                        taken_back += usize::from(took_back);
                    }
                }
                let expected = if open.contains(&true) { 1.0 } else { 0.0 };
                assert_eq!(scheduler.cpus(), (expected, 1.0), "free CPUs do not match the open waits");
            }
            first.join().unwrap();
            second.join().unwrap();
            assert!(taken_back >= 1 && held.waits == 0, "the task ended still waiting");
            scheduler.release(held);
            assert_eq!(scheduler.cpus(), (1.0, 1.0));
        });
    }
}
