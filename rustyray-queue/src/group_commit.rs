//! Group commit: enqueues that arrive while another is being written share
//! the next transaction.
//!
//! A transaction costs a few round trips and, on PostgreSQL, a flush of its
//! log, whatever its size; many producers each enqueueing one job (the
//! service's `POST /api/jobs`, say) would otherwise pay that once per job.
//! Callers queue their jobs and wait; one writer task at a time takes
//! everything queued and writes it in one transaction. A call is still all
//! or none: when a shared transaction fails, each call's jobs are written
//! again on their own, so one call's bad row cannot fail another's. The
//! writer is a task of its own, so a caller that stops waiting (a client
//! that hung up) cannot interrupt a write other callers share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

use crate::db::Db;
use crate::error::{QueueError, Result};
use crate::queue::Queue;
use crate::store::enqueue::{self, NewJob};

/// One call waiting for its jobs to be written.
struct Pending {
    jobs: Vec<NewJob>,
    done: oneshot::Sender<(Vec<NewJob>, Result<()>)>,
}

/// The queue of calls waiting to be written, and whether a writer runs.
#[derive(Default)]
pub(crate) struct GroupCommit {
    pending: Mutex<Vec<Pending>>,
    writing: AtomicBool,
    /// Shared transactions attempted, for tests.
    #[cfg(test)]
    shared: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("writing", &self.writing.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Writes `jobs` (all or none), in a transaction shared with whatever
    /// other calls are waiting; gives the jobs back with the outcome.
    pub(crate) async fn insert(queue: &Queue, jobs: Vec<NewJob>) -> (Vec<NewJob>, Result<()>) {
        let (done, outcome) = oneshot::channel();
        let group = &queue.inner.commits;
        lock(&group.pending).push(Pending { jobs, done });
        if !group.writing.swap(true, Ordering::AcqRel) {
            tokio::spawn(write_pending(Writer { queue: queue.clone(), ended: false }));
        }
        match outcome.await {
            Ok(outcome) => outcome,
            Err(_) => {
                let error = QueueError::Database {
                    url: queue.db().url.to_string(),
                    message: "the enqueue was interrupted (the tokio runtime writing it shut down); \
                              its jobs may or may not have been written"
                        .into(),
                };
                (Vec::new(), Err(error))
            }
        }
    }
}

fn lock(pending: &Mutex<Vec<Pending>>) -> std::sync::MutexGuard<'_, Vec<Pending>> {
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The one writer's claim on `writing`, cleared however the writer ends. If
/// its task is dropped before or during a write (the tokio runtime it was
/// started on shut down) or panics, later calls start a writer of their own
/// instead of waiting for this one for ever, and the calls already waiting
/// hear that the write was interrupted.
struct Writer {
    queue: Queue,
    ended: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let group = &self.queue.inner.commits;
        let waiting = {
            // Under the lock: a call queued from now on finds no writer and
            // starts one.
            let mut pending = lock(&group.pending);
            group.writing.store(false, Ordering::Release);
            std::mem::take(&mut *pending)
        };
        drop(waiting);
    }
}

/// The writer: takes every waiting call and writes them together, until
/// none waits. Exactly one runs at a time (`writing`).
async fn write_pending(mut writer: Writer) {
    let queue = writer.queue.clone();
    let group = &queue.inner.commits;
    let db = queue.db();
    loop {
        let batch = std::mem::take(&mut *lock(&group.pending));
        if batch.is_empty() {
            group.writing.store(false, Ordering::Release);
            // A call queued after the take saw a writer running and did not
            // start one: go on for it, unless another writer already has.
            if lock(&group.pending).is_empty() || group.writing.swap(true, Ordering::AcqRel) {
                // `writing` is clear, or another writer's.
                writer.ended = true;
                return;
            }
            continue;
        }
        #[cfg(test)]
        if batch.len() > 1 {
            group.shared.fetch_add(1, Ordering::Relaxed);
        }
        write(db, batch).await;
    }
}

async fn write(db: &Db, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        if let Some(Pending { mut jobs, done }) = batch.pop() {
            let outcome = enqueue::insert(db, &mut jobs).await;
            let _ = done.send((jobs, outcome));
        }
        return;
    }
    let sizes: Vec<usize> = batch.iter().map(|p| p.jobs.len()).collect();
    let mut all: Vec<NewJob> = Vec::with_capacity(sizes.iter().sum());
    let mut waiters = Vec::with_capacity(batch.len());
    for Pending { jobs, done } in batch {
        all.extend(jobs);
        waiters.push(done);
    }
    let shared = enqueue::insert(db, &mut all).await;
    let mut rest = all.into_iter();
    for (size, done) in sizes.into_iter().zip(waiters) {
        let mut jobs: Vec<NewJob> = rest.by_ref().take(size).collect();
        match &shared {
            Ok(()) => {
                let _ = done.send((jobs, Ok(())));
            }
            // Each call on its own: its outcome is its own rows'.
            Err(_) => {
                let outcome = enqueue::insert(db, &mut jobs).await;
                let _ = done.send((jobs, outcome));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobFilter, JobId, JobOptions};

    fn job(id: JobId) -> NewJob {
        NewJob {
            id,
            function: "tests::f".into(),
            args: "[]".into(),
            options: JobOptions::default(),
            deduplicated: false,
        }
    }

    #[tokio::test]
    async fn calls_waiting_together_share_a_transaction_yet_fail_alone() {
        let q = Queue::connect("sqlite::memory:").await.unwrap();
        let taken = JobId::new();
        let (_, first) = GroupCommit::insert(&q, vec![job(taken)]).await;
        first.unwrap();
        // All three are queued before the writer task first runs (one thread),
        // so they are written as one batch; the middle one repeats an id.
        let (a, b, c) = (JobId::new(), JobId::new(), JobId::new());
        let ((_, ok_a), (_, dup), (_, ok_c)) = tokio::join!(
            GroupCommit::insert(&q, vec![job(a)]),
            GroupCommit::insert(&q, vec![job(b), job(taken)]),
            GroupCommit::insert(&q, vec![job(c)]),
        );
        ok_a.unwrap();
        assert!(dup.is_err(), "a call with a repeated id fails");
        ok_c.unwrap();
        let ids: Vec<JobId> = q.jobs(JobFilter::default()).await.unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        for id in [taken, a, c] {
            assert!(ids.contains(&id), "{id} written");
        }
        assert!(!ids.contains(&b), "the failed call wrote none of its jobs");
        assert_eq!(q.inner.commits.shared.load(Ordering::Relaxed), 1, "the three were tried as one transaction");
    }

    #[tokio::test]
    async fn a_writer_lost_with_its_runtime_does_not_hold_up_later_calls() {
        let q = Queue::connect("sqlite::memory:").await.unwrap();
        // A call on another runtime starts the writer there; that runtime
        // shuts down before the writer ever runs.
        let other = q.clone();
        let lost = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut call = std::pin::pin!(GroupCommit::insert(&other, vec![job(JobId::new())]));
                assert!(futures::poll!(&mut call).is_pending(), "queued, with a writer spawned");
                // Its caller stops waiting too.
            });
        });
        lost.join().unwrap();
        let id = JobId::new();
        let written = tokio::time::timeout(std::time::Duration::from_secs(10), GroupCommit::insert(&q, vec![job(id)]));
        let (_, outcome) = written.await.expect("a later call is written, not left waiting for the lost writer");
        outcome.unwrap();
        let ids: Vec<JobId> = q.jobs(JobFilter::default()).await.unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(ids, vec![id], "the lost call's job was never written");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_calls_are_all_written_once() {
        let q = Queue::connect("sqlite::memory:").await.unwrap();
        let calls = (0..200).map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let id = JobId::new();
                GroupCommit::insert(&q, vec![job(id)]).await.1.map(|()| id)
            })
        });
        let mut written = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            written.push(call.await.unwrap().unwrap());
        }
        let stats = q.stats().await.unwrap();
        assert_eq!(stats.count(crate::model::JobState::Queued), 200);
        written.sort();
        written.dedup();
        assert_eq!(written.len(), 200);
    }
}
