//! Plain bodies on workers: a plain attempt of the usual shape (one CPU, no
//! queue) runs on a *worker*, a blocking thread with a [`Mailbox`] in which
//! the manager may leave the next such attempt. When its attempt ends, the
//! worker takes the next one from the mailbox and reports both in one
//! message, then runs it at once, so a stream of CPU tasks keeps each CPU
//! busy without a thread hand-off per task. A worker whose mailbox is empty
//! closes it and returns its thread. Other plain attempts run on the
//! blocking pool alone, or inline on the thread of a task that waits.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use rustyray_core::context;
use rustyray_core::{BodyResult, Error, TaskBody, TaskError, TaskId};
use tokio::sync::mpsc;

use super::{Exec, report};
use crate::protocol::{Finished, Handoff, Msg, Report};
use crate::task::Start;

/// Where the manager leaves a worker its next attempts, in order.
#[derive(Default)]
pub(crate) struct Mailbox {
    state: Mutex<MailboxState>,
    /// Wakes an idle worker when work arrives.
    arrived: Condvar,
}

/// What a mailbox holds and whether it is closed. Every decision about
/// leaving, taking back and taking an attempt is a method here, made under
/// the mailbox's lock; generic over the attempt `S` so the loom model at the
/// end of this file drives this same code.
struct MailboxState<S = Start> {
    next: VecDeque<S>,
    closed: bool,
}

impl<S> Default for MailboxState<S> {
    fn default() -> Self {
        MailboxState { next: VecDeque::new(), closed: false }
    }
}

impl<S> MailboxState<S> {
    /// Leaves `start` after those already here, or gives it back if the
    /// worker closed the mailbox.
    fn offer(&mut self, start: S) -> Result<(), S> {
        if self.closed {
            return Err(start);
        }
        self.next.push_back(start);
        Ok(())
    }

    /// Takes back the attempt `is` picks, if the worker has not taken it.
    /// Searched from the newest: what the manager takes back is almost
    /// always at the back (the newer half of a long mailbox, newest first).
    fn retract(&mut self, is: impl Fn(&S) -> bool) -> Option<S> {
        let index = self.next.iter().rposition(is)?;
        self.next.remove(index)
    }

    /// Closes the mailbox for good, handing back what it held.
    fn close(&mut self) -> VecDeque<S> {
        self.closed = true;
        std::mem::take(&mut self.next)
    }

    /// The worker's next attempt and how many wait behind it.
    fn take(&mut self) -> (Option<S>, usize) {
        let next = self.next.pop_front();
        (next, self.next.len())
    }

    /// The worker waited long enough: its next attempt if one came at the
    /// last moment, else the mailbox is closed (the manager finds out when
    /// it next offers one).
    fn give_up(&mut self) -> Option<S> {
        let next = self.next.pop_front();
        self.closed |= next.is_none();
        next
    }
}

impl Mailbox {
    /// Leaves `start` for the worker, after those already there; gives it
    /// back if the worker has closed its mailbox (it is returning its thread).
    pub(crate) fn offer(&self, start: Start) -> Result<(), Start> {
        self.state.lock().offer(start)?;
        self.arrived.notify_one();
        Ok(())
    }

    /// Takes back the attempt left for `task`, if the worker has not taken it yet.
    pub(crate) fn retract(&self, task: TaskId) -> Option<Start> {
        self.state.lock().retract(|next| next.task == task)
    }

    /// Closes the mailbox for good (the runtime is shutting down).
    pub(crate) fn close(&self) -> VecDeque<Start> {
        self.state.lock().close()
    }

    /// The worker's side: the next attempt and how many wait behind it.
    fn next(&self) -> (Option<Start>, usize) {
        self.state.lock().take()
    }

    /// The worker's side, idle: waits up to `linger` for an attempt; if none
    /// comes, closes the mailbox (the manager finds out when it next offers one).
    fn wait_or_close(&self, linger: std::time::Duration) -> Option<Start> {
        let deadline = Instant::now() + linger;
        let mut state = self.state.lock();
        loop {
            if let (Some(next), _) = state.take() {
                return Some(next);
            }
            if self.arrived.wait_until(&mut state, deadline).timed_out() {
                return state.give_up();
            }
        }
    }
}

/// Starts a plain attempt; given a mailbox, it runs on a worker.
pub(crate) fn start_plain(exec: &Exec, start: Start, mailbox: Option<Arc<Mailbox>>) {
    let exec_for_thread = exec.clone();
    if let Some(det) = exec.det.clone() {
        // A deterministic run: on its one thread, after yielding as the seed picks.
        drop(crate::deterministic::spawn(async move {
            det.stagger().await;
            run_plain(&exec_for_thread, start, None);
        }));
        return;
    }
    // The join handle is not needed: outcomes come back as messages.
    drop(exec.handle().spawn_blocking(move || run_plain(&exec_for_thread, start, mailbox)));
}

/// Runs plain attempts on this thread: `start`, then whatever the manager
/// leaves in the mailbox; once it is empty the worker waits a moment for new
/// work before it returns its thread, so a worker (and the CPU the OS has
/// placed it on) carries over from one burst of tasks to the next.
///
/// Reports of short attempts go to the manager in batches: once the mailbox
/// has drained to half of what it held since the last batch (so the manager
/// refills it while half is left), when it runs dry, or after [`REPORT_AGE`].
/// Every report wakes the manager's thread, which takes a CPU from some
/// worker for a moment; batching keeps that to a few times per mailbox, not
/// once per task. A report is held only while the next attempt, expected
/// to run about as long as the last, would end within [`REPORT_AGE`] of the
/// oldest held one (so attempts longer than that are reported at once, as
/// is one before an attempt with a timeout): dependents and the books wait
/// at most about that long.
///
/// Held-back reports wait in [`HELD_REPORTS`]: a body that is about to wait
/// (or to run a task inline) sends them first, see [`flush_held_reports`], so
/// the manager knows which attempt runs on this thread before it hears that
/// the attempt waits.
fn run_plain(exec: &Exec, mut start: Start, mailbox: Option<Arc<Mailbox>>) {
    let mut oldest = crate::timer::now();
    // The most attempts seen waiting in the mailbox since the last report.
    let mut peak = 0;
    loop {
        let (outcome, started) = attempt_blocking(exec, &start);
        let (next, waiting) = match &mailbox {
            Some(mailbox) => mailbox.next(),
            None => (None, 0),
        };
        let handoff = match (&mailbox, &next) {
            (None, _) => Handoff::None,
            (Some(_), Some(next)) if next.lookahead => Handoff::Next(next.task, next.attempt.number),
            (Some(_), Some(_)) => Handoff::Released,
            (Some(_), None) => Handoff::Idle,
        };
        let finished = report(start, outcome, started, handoff);
        let ended = finished.ended;
        let ran = ended.saturating_duration_since(finished.started);
        HELD_REPORTS.with_borrow_mut(|reports| {
            if reports.is_empty() {
                oldest = ended;
            }
            reports.push(Report::Finished(finished));
        });
        let age = ended.saturating_duration_since(oldest);
        peak = peak.max(waiting + 1);
        // A held report goes out when a later attempt ends: hold it only if
        // that attempt, taken to run about as long as this one, ends within
        // `REPORT_AGE` of the oldest held report. A next attempt with a
        // timeout needs the manager to know now that it started.
        let urgent = next.as_ref().is_some_and(|next| next.timed);
        if urgent || next.is_none() || waiting * 2 < peak || age + ran > REPORT_AGE {
            flush_held_reports(exec.sender());
            peak = waiting;
        }
        start = match (next, &mailbox) {
            (Some(next), _) => next,
            (None, Some(mailbox)) => match mailbox.wait_or_close(WORKER_LINGER) {
                Some(next) => {
                    if next.lookahead {
                        // Left here before the manager learned this worker was
                        // idle: tell it the attempt starts (and takes a CPU).
                        let resumed = Report::Resumed {
                            task: next.task,
                            attempt: next.attempt.number,
                            started: crate::timer::now(),
                        };
                        let _ = exec.send(Msg::Reports(vec![resumed]));
                    }
                    next
                }
                None => return,
            },
            (None, None) => return,
        };
    }
}

thread_local! {
    /// A worker's reports that it holds back to send in one batch.
    static HELD_REPORTS: std::cell::RefCell<Vec<Report>> = const { std::cell::RefCell::new(Vec::new()) };
    /// How many of them announce a direct actor call (see [`hold_finished`]).
    static HELD_ANNOUNCEMENTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Holds `report` back on this thread, to go with the next batch; returns
/// whether it is the first held. An actor's thread holds its calls'
/// reports here too, so that a call that waits sends them first, as a
/// plain body does (see [`flush_held_reports`]).
pub(crate) fn hold_report(report: Report) -> bool {
    if matches!(report, Report::Announce(_)) {
        HELD_ANNOUNCEMENTS.set(HELD_ANNOUNCEMENTS.get() + 1);
    }
    HELD_REPORTS.with_borrow_mut(|reports| {
        reports.push(report);
        reports.len() == 1
    })
}

/// Holds the report of an ended attempt back, as [`hold_report`] does; if
/// the attempt is a direct actor call whose announcement is still held here
/// (see `actor::direct`), the two become one report. Returns whether it is
/// the first held.
pub(crate) fn hold_finished(finished: Finished) -> bool {
    // Most attempts have no announcement held: no need to look for one.
    let announcements = HELD_ANNOUNCEMENTS.get();
    HELD_REPORTS.with_borrow_mut(|reports| {
        let announced = if announcements == 0 {
            None
        } else {
            reports
                .iter()
                .rposition(|report| matches!(report, Report::Announce(call) if call.task() == Some(finished.task)))
        };
        match announced {
            Some(at) => {
                if let Report::Announce(call) = &mut reports[at] {
                    let call = std::mem::take(call);
                    reports[at] = Report::Ran(call, finished);
                    HELD_ANNOUNCEMENTS.set(announcements - 1);
                }
            }
            None => reports.push(Report::Finished(finished)),
        }
        reports.len() == 1
    })
}

/// Sends the reports this thread's worker holds back, if any. Called before a
/// body on this thread tells the manager it waits or claims a task: the
/// manager must first learn that the attempt started (it may have been
/// handed over in a held report), or the wait would be news about an attempt
/// it does not know runs, and the CPU would stay held while the body waits.
///
/// The next batch starts at the size of this one (capped at [`HELD_ROOM`]):
/// a burst of short calls fills batches of about the same size, and
/// growing each from empty cost a reallocation and a copy per doubling.
pub(crate) fn flush_held_reports(tx: &mpsc::UnboundedSender<Msg>) {
    let reports = HELD_REPORTS.with_borrow_mut(|held| {
        if held.is_empty() {
            return Vec::new();
        }
        HELD_ANNOUNCEMENTS.set(0);
        std::mem::replace(held, Vec::with_capacity(held.len().min(HELD_ROOM)))
    });
    if !reports.is_empty() {
        let _ = tx.send(Msg::Reports(reports));
    }
}

/// The most reports a thread makes room for ahead of its next batch.
const HELD_ROOM: usize = 256;

/// How long an idle worker waits for new work before it returns its thread.
const WORKER_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// The longest a worker holds a report back.
const REPORT_AGE: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs a plain attempt on the calling thread, which waits for it (inline).
pub(crate) fn run_inline(exec: &Exec, start: Start) {
    let (outcome, started) = attempt_blocking(exec, &start);
    let _ = exec.send(Msg::Finished(Box::new(report(start, outcome, started, Handoff::None))));
}

/// Runs a plain body on this thread, in its task's context, catching panics.
fn attempt_blocking(exec: &Exec, start: &Start) -> (BodyResult, Instant) {
    let started = crate::timer::now();
    if start.output.is_ready() {
        // Cancelled from its ref before it started: the body need not run.
        return (Ok(Arc::new(())), started);
    }
    let TaskBody::Plain(body) = &start.body else {
        let fault = Error::Internal { reason: "a plain attempt was handed a body that is not plain" };
        return (Err(TaskError::Error(fault)), started);
    };
    let ctx = exec.context(start, start.releases_on_wait, true);
    let _entered = context::enter(ctx);
    let _span = start.span.enter();
    let outcome =
        catch_unwind(AssertUnwindSafe(|| body(start.attempt))).unwrap_or_else(|p| Err(crate::panic::into_error(p)));
    (outcome, started)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustyray_core::{Attempt, BodyResult, Error, FunctionId, ObjectCell, TaskBody, TaskError, TaskId};
    use tokio::sync::mpsc;

    use super::attempt_blocking;
    use crate::executor::Exec;
    use crate::task::Start;

    #[tokio::test]
    async fn a_plain_attempt_given_an_async_body_is_an_internal_fault() {
        let rt = crate::Runtime::builder().num_cpus(1).build().expect("a runtime builds inside tokio");
        let (tx, _rx) = mpsc::unbounded_channel();
        let exec = Exec::new(rt.runner(), tx, tokio::runtime::Handle::current(), None);
        let task = TaskId::from_u64(1);
        let start = Start {
            task,
            attempt: Attempt { number: 1, last: true },
            body: TaskBody::future(|_| async {
                let done: BodyResult = Ok(Arc::new(()));
                done
            }),
            output: ObjectCell::pending(task, FunctionId::new(&"t::f"), None, rt.runner()),
            releases_on_wait: false,
            abandon: None,
            lookahead: false,
            timed: false,
            span: tracing::Span::none(),
            unannounced: crate::task::Unannounced::NONE,
        };
        let (outcome, _) = attempt_blocking(&exec, &start);
        assert!(matches!(outcome, Err(TaskError::Error(Error::Internal { .. }))), "{outcome:?}");
        rt.shutdown().await;
    }
}

/// A loom model of the mailbox: the manager leaving attempts and taking
/// one back while the worker takes them, and gives up and closes when it
/// finds none, through [`MailboxState`]'s own methods. Every attempt runs
/// exactly once: on the worker, or, when it was handed back (the mailbox
/// had closed) or taken back, where the manager sends it instead. Run it
/// with `RUSTFLAGS="--cfg rustyray_loom" cargo test -p rustyray-runtime --no-default-features --lib loom`.
#[cfg(all(test, rustyray_loom))]
mod loom_tests {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::MailboxState;

    /// Runs attempt `n`: sets its bit, which must not be set yet.
    fn run(ran: &AtomicUsize, n: u32) {
        let before = ran.fetch_or(1 << n, Ordering::SeqCst);
        assert_eq!(before & (1 << n), 0, "attempt {n} ran twice");
    }

    #[test]
    fn loom_every_attempt_left_in_a_mailbox_runs_once() {
        loom::model(|| {
            let mailbox = Arc::new(Mutex::new(MailboxState::<u32>::default()));
            let ran = Arc::new(AtomicUsize::new(0));
            // The worker: takes attempts until it finds none, and then (its
            // linger over at once, the racy case) gives up.
            let worker = {
                let (mailbox, ran) = (mailbox.clone(), ran.clone());
                thread::spawn(move || {
                    loop {
                        let next = {
                            let mut state = mailbox.lock().unwrap();
                            match state.take() {
                                (Some(next), _) => Some(next),
                                (None, _) => state.give_up(),
                            }
                        };
                        match next {
                            Some(n) => run(&ran, n),
                            None => return,
                        }
                    }
                })
            };
            // The manager: leaves attempts 0 and 1, then takes 1 back; what
            // comes back to it runs elsewhere.
            for n in 0..2 {
                if let Err(n) = mailbox.lock().unwrap().offer(n) {
                    run(&ran, n);
                }
            }
            if let Some(n) = mailbox.lock().unwrap().retract(|&n| n == 1) {
                run(&ran, n);
            }
            worker.join().unwrap();
            let state = mailbox.lock().unwrap();
            assert!(state.closed && state.next.is_empty(), "the worker left with attempts in its mailbox");
            assert_eq!(ran.load(Ordering::SeqCst), 0b11, "an attempt was lost");
        });
    }
}
