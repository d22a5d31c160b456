//! One ready line: tasks in the order they run (higher priority first,
//! earlier place in line first), as a heap with a first-in-first-out line
//! beside it for the usual task.
//!
//! Almost every task has priority 0 and its kind's usual demand, and joins
//! the line with a place after everyone in it: for those, the order of
//! arrival already is the order of running. They wait in a `VecDeque` of
//! two words each, pushed and popped without sifting; the rest (another
//! priority, an unusual demand or queue, or a task put back at an earlier
//! place) wait in the heap. The front of the line is whichever of the two
//! fronts goes first. A million tasks made ready at once by one object
//! cost 16 MiB here rather than the heap's 32.

use std::collections::{BinaryHeap, VecDeque};

use rustyray_core::TaskId;

use super::{Ready, Usual};

/// One ready line (see the module docs).
#[derive(Debug)]
pub(super) struct Line {
    heap: BinaryHeap<Ready>,
    /// Tasks of priority 0 with this line's usual demand, in place order.
    fifo: VecDeque<(TaskId, u64)>,
    /// The demand every task in `fifo` has.
    usual: Usual,
}

/// The front of a line, looked at.
pub(super) struct Front<'a> {
    pub(super) priority: i32,
    pub(super) seq: u64,
    /// The task, if it waits in the heap (a task in the FIFO has its line's usual demand).
    ready: Option<&'a Ready>,
    usual: Usual,
}

impl Front<'_> {
    /// Whether it runs before `other`.
    pub(super) fn before(&self, other: &Front<'_>) -> bool {
        (self.priority, std::cmp::Reverse(self.seq)) > (other.priority, std::cmp::Reverse(other.seq))
    }

    /// What it will hold while it runs.
    pub(super) fn demand(&self) -> &super::Demand {
        match self.ready {
            Some(ready) => ready.demand(),
            None => self.usual.demand(),
        }
    }

    /// Whether it has the usual plain shape: one CPU, no queue.
    pub(super) fn is_one_cpu(&self) -> bool {
        self.ready.map_or(self.usual, |ready| ready.usual) == Usual::OneCpu
    }
}

impl Line {
    pub(super) fn new(usual: Usual) -> Self {
        Line { heap: BinaryHeap::new(), fifo: VecDeque::new(), usual }
    }

    pub(super) fn push(&mut self, ready: Ready) {
        let in_order = self.fifo.back().is_none_or(|&(_, last)| last < ready.seq);
        if ready.priority == 0 && ready.usual == self.usual && in_order {
            self.fifo.push_back((ready.task, ready.seq));
        } else {
            self.heap.push(ready);
        }
    }

    /// Whether the heap's top runs before the FIFO's front (`None`: both empty).
    fn heap_first(&self) -> Option<bool> {
        match (self.heap.peek(), self.fifo.front()) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(top), Some(&(_, seq))) => Some(top.priority > 0 || (top.priority == 0 && top.seq < seq)),
        }
    }

    pub(super) fn peek(&self) -> Option<Front<'_>> {
        if self.heap_first()? {
            let top = self.heap.peek()?;
            Some(Front { priority: top.priority, seq: top.seq, ready: Some(top), usual: self.usual })
        } else {
            let &(_, seq) = self.fifo.front()?;
            Some(Front { priority: 0, seq, ready: None, usual: self.usual })
        }
    }

    pub(super) fn pop(&mut self) -> Option<Ready> {
        if self.heap_first()? {
            self.heap.pop()
        } else {
            let (task, seq) = self.fifo.pop_front()?;
            Some(Ready::usual(task, seq, self.usual))
        }
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len() + self.fifo.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.fifo.is_empty()
    }

    pub(super) fn shrink_to(&mut self, capacity: usize) {
        self.heap.shrink_to(capacity);
        self.fifo.shrink_to(capacity);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::scheduler::Demand;

    /// One step against a line: a task joins (with a fresh place, or put
    /// back at the place of one taken earlier), or the front is taken.
    #[derive(Clone, Debug)]
    enum Step {
        Join { priority: i32, demand: u8, queue: bool },
        PutBack { taken: usize },
        Take,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (prop_oneof![4 => Just(0), 1 => Just(1), 1 => Just(-1)], 0..3u8, proptest::bool::weighted(0.1))
                .prop_map(|(priority, demand, queue)| Step::Join { priority, demand, queue }),
            1 => (0..64usize).prop_map(|taken| Step::PutBack { taken }),
            3 => Just(Step::Take),
        ]
    }

    fn demand(kind: u8) -> Demand {
        match kind {
            0 => Demand::NOTHING,
            1 => Demand::ONE_CPU,
            _ => Demand { cpus: 2 * Demand::ONE_CPU.cpus, ..Demand::NOTHING },
        }
    }

    proptest! {
        /// Whatever joins and leaves, a line gives its tasks out in the order
        /// one heap of them would, and with the demand and queue each joined with.
        #[test]
        fn a_line_runs_tasks_in_the_order_of_one_heap(usual in prop_oneof![Just(Usual::Nothing), Just(Usual::OneCpu)],
                                                      steps in proptest::collection::vec(step(), 1..200)) {
            let mut line = Line::new(usual);
            let mut model: BinaryHeap<Ready> = BinaryHeap::new();
            let mut taken: Vec<(u64, i32, u8, bool)> = Vec::new();
            let mut joined = std::collections::HashMap::new();
            let mut next_seq = 0;
            let io: Arc<str> = Arc::from("io");
            for step in steps {
                let join = match step {
                    Step::Join { priority, demand, queue } => {
                        next_seq += 1;
                        Some((next_seq, priority, demand, queue))
                    }
                    Step::PutBack { taken: i } if !taken.is_empty() => Some(taken.swap_remove(i % taken.len())),
                    Step::PutBack { .. } => None,
                    Step::Take => {
                        let front = line.peek().map(|front| (front.priority, front.seq, front.demand().clone()));
                        let got = line.pop();
                        let want = model.pop();
                        prop_assert_eq!(got.as_ref().map(|r| (r.seq, r.priority)), want.as_ref().map(|r| (r.seq, r.priority)));
                        if let Some(got) = got {
                            let (priority, demand_kind, queue) = joined[&got.seq];
                            prop_assert_eq!(front, Some((got.priority, got.seq, got.demand().clone())));
                            prop_assert_eq!(got.demand(), &demand(demand_kind));
                            prop_assert_eq!(got.queue().is_some(), queue);
                            taken.push((got.seq, priority, demand_kind, queue));
                        }
                        None
                    }
                };
                if let Some((seq, priority, demand_kind, queue)) = join {
                    joined.insert(seq, (priority, demand_kind, queue));
                    let task = TaskId::from_u64(seq);
                    let queue = queue.then(|| io.clone());
                    line.push(Ready::new(task, seq, priority, demand(demand_kind), queue.clone()));
                    model.push(Ready::new(task, seq, priority, demand(demand_kind), queue));
                }
                prop_assert_eq!(line.len(), model.len());
                prop_assert_eq!(line.is_empty(), model.is_empty());
            }
        }
    }
}
