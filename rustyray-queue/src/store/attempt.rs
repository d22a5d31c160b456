//! One attempt, by its id: what a process that runs an attempt away from its
//! worker (a cluster job running `app run-attempt ID`) needs, and what the
//! worker that follows such a job records about it.
//!
//! Starting is guarded like every other write: an attempt starts only while
//! it is SUBMITTED and still its job's current attempt, so one attempt id
//! never runs twice, and a job that was lost, cancelled or retried meanwhile
//! is left alone. Adoption hands a dead worker's cluster attempts to a live
//! worker, which then follows them (their cluster jobs run on without it).

use sqlx::Row;

use crate::db::{Db, on_db, sql};
use crate::error::{QueueError, Result};
use crate::model::{AttemptState, JobId, JobOptions};
use crate::store::claim::Claimed;

/// What [`begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// The attempt is now RUNNING in this process: run it.
    Run(Box<Claimed>),
    /// The attempt may not run: it is not SUBMITTED (it ran already, was
    /// lost, cancelled or released) or no longer its job's current attempt.
    NotRunnable {
        /// Its state, when the attempt exists.
        state: Option<AttemptState>,
    },
}

/// Marks a SUBMITTED attempt RUNNING, if it is still its job's current one,
/// and reads what it runs.
pub async fn begin(db: &Db, attempt_id: uuid::Uuid) -> Result<Begin> {
    let start = "UPDATE rustyray_attempts SET state = 'RUNNING', started_at = {now}, last_heartbeat = {now} \
                 WHERE id = ? AND state = 'SUBMITTED' AND EXISTS (SELECT 1 FROM rustyray_jobs j \
                 WHERE j.id = rustyray_attempts.job_id AND j.current_attempt = rustyray_attempts.id) \
                 RETURNING job_id, attempt";
    let started: Option<(uuid::Uuid, i32)> = on_db!(db, pool, kind => {
        sqlx::query_as(&sql(kind, start)).bind(attempt_id).fetch_optional(pool).await.map_err(|e| db.error(e))?
    });
    let Some((job_id, attempt)) = started else {
        return Ok(Begin::NotRunnable { state: state(db, attempt_id).await? });
    };
    Ok(Begin::Run(Box::new(claimed_for(db, JobId(job_id), attempt_id, attempt).await?)))
}

/// The claim of an existing attempt, read back from its job's row.
async fn claimed_for(db: &Db, job_id: JobId, attempt_id: uuid::Uuid, attempt: i32) -> Result<Claimed> {
    let text = "SELECT function, args, options, queue, attempts, max_attempts FROM rustyray_jobs WHERE id = ?";
    on_db!(db, pool, kind => {
        let row = sqlx::query(&sql(kind, text)).bind(job_id.0).fetch_optional(pool).await.map_err(|e| db.error(e))?;
        let Some(row) = row else { return Err(QueueError::JobNotFound(job_id)) };
        let e = |error: sqlx::Error| db.error(error);
        let args: String = row.try_get("args").map_err(e)?;
        let options: String = row.try_get("options").map_err(e)?;
        let charged: i32 = row.try_get("attempts").map_err(e)?;
        let max_attempts: i32 = row.try_get("max_attempts").map_err(e)?;
        let args = serde_json::from_str::<serde_json::Value>(&args)
            .map_err(|error| format!("reading the stored arguments of job {job_id}: {error}"));
        let options = serde_json::from_str::<JobOptions>(&options)
            .map_err(|error| format!("reading the stored options of job {job_id}: {error}"));
        let (args, options, unreadable) = match (args, options) {
            (Ok(args), Ok(options)) => (args, options, None),
            (Err(problem), _) | (_, Err(problem)) => (serde_json::Value::Null, JobOptions::default(), Some(problem)),
        };
        Ok(Claimed {
            job_id,
            attempt_id,
            attempt: attempt.max(0) as u32,
            charged: charged.max(0) as u32,
            max_attempts: max_attempts.max(1) as u32,
            function: row.try_get("function").map_err(e)?,
            args,
            options,
            queue: row.try_get("queue").map_err(e)?,
            unreadable,
        })
    })
}

/// What one heartbeat of a single attempt found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Beat {
    /// The attempt is still SUBMITTED or RUNNING.
    pub live: bool,
    /// A cancel of its job was asked for.
    pub cancel_requested: bool,
}

/// Renews one attempt's heartbeat (the process running it does this).
pub async fn heartbeat(db: &Db, attempt_id: uuid::Uuid) -> Result<Beat> {
    let beat = "UPDATE rustyray_attempts SET last_heartbeat = {now} WHERE id = ? AND state IN ('SUBMITTED', 'RUNNING')";
    // Through the attempt's job id: `current_attempt` has no index, and a
    // look by it read the whole jobs table at every beat of every attempt.
    let cancel = "SELECT j.cancel_requested FROM rustyray_attempts a JOIN rustyray_jobs j ON j.id = a.job_id \
                  WHERE a.id = ? AND j.current_attempt = a.id";
    on_db!(db, pool, kind => {
        let n = sqlx::query(&sql(kind, beat)).bind(attempt_id).execute(pool).await.map_err(|e| db.error(e))?.rows_affected();
        let cancel: Option<bool> =
            sqlx::query_scalar(&sql(kind, cancel)).bind(attempt_id).fetch_optional(pool).await.map_err(|e| db.error(e))?;
        Ok(Beat { live: n == 1, cancel_requested: cancel.unwrap_or(false) })
    })
}

/// Records where an attempt runs on a cluster: the cluster's job id and
/// where its log can be read.
pub async fn set_cluster_job(db: &Db, attempt_id: uuid::Uuid, cluster_job_id: &str, log_ref: &str) -> Result<()> {
    let text = "UPDATE rustyray_attempts SET ray_job_id = ?, log_ref = ? WHERE id = ?";
    on_db!(db, pool, kind => {
        sqlx::query(&sql(kind, text)).bind(cluster_job_id).bind(log_ref).bind(attempt_id).execute(pool).await.map_err(|e| db.error(e))?;
    });
    Ok(())
}

/// An attempt's state, `None` when there is no such attempt.
pub async fn state(db: &Db, attempt_id: uuid::Uuid) -> Result<Option<AttemptState>> {
    let text = "SELECT state FROM rustyray_attempts WHERE id = ?";
    let state: Option<String> = on_db!(db, pool, kind => {
        sqlx::query_scalar(&sql(kind, text)).bind(attempt_id).fetch_optional(pool).await.map_err(|e| db.error(e))?
    });
    state.map(|s| s.parse()).transpose()
}

/// Hands `worker` the live attempts of `runner` whose own worker has been
/// silent for `silent_us` (or stopped): their cluster jobs run on, and the
/// new worker follows them. Each is still its job's current attempt.
pub async fn adopt(db: &Db, worker: &str, runner: &str, silent_us: i64) -> Result<Vec<Claimed>> {
    let find = "SELECT a.id, a.job_id, a.attempt, a.worker_id FROM rustyray_attempts a \
                JOIN rustyray_jobs j ON j.id = a.job_id AND j.current_attempt = a.id \
                LEFT JOIN rustyray_workers w ON w.id = a.worker_id \
                WHERE a.runner = ? AND a.state IN ('SUBMITTED', 'RUNNING') AND COALESCE(a.worker_id, '') <> ? \
                AND (w.id IS NULL OR w.state <> 'RUNNING' OR w.last_heartbeat < {now} - ?)";
    let take = "UPDATE rustyray_attempts SET worker_id = ?, last_heartbeat = {now} \
                WHERE id = ? AND COALESCE(worker_id, '') = ? AND state IN ('SUBMITTED', 'RUNNING')";
    let job = "UPDATE rustyray_jobs SET worker_id = ? WHERE id = ? AND current_attempt = ?";
    let found: Vec<(uuid::Uuid, uuid::Uuid, i32, Option<String>)> = on_db!(db, pool, kind => {
        sqlx::query_as(&sql(kind, find)).bind(runner).bind(worker).bind(silent_us).fetch_all(pool).await.map_err(|e| db.error(e))?
    });
    let mut adopted = Vec::with_capacity(found.len());
    for (attempt_id, job_id, attempt, old) in found {
        let old = old.unwrap_or_default();
        let taken = on_db!(db, pool, kind => {
            let n = sqlx::query(&sql(kind, take)).bind(worker).bind(attempt_id).bind(&old).execute(pool).await.map_err(|e| db.error(e))?.rows_affected();
            if n == 1 {
                sqlx::query(&sql(kind, job)).bind(worker).bind(job_id).bind(attempt_id).execute(pool).await.map_err(|e| db.error(e))?;
            }
            n == 1
        });
        if taken {
            adopted.push(claimed_for(db, JobId(job_id), attempt_id, attempt).await?);
        }
    }
    Ok(adopted)
}

/// The live attempts of `runner` recorded under `worker` itself: those an
/// earlier process under the same worker id submitted to a cluster, where
/// they run on. A worker starting up follows them, as it would a silent
/// worker's (see [`adopt`]).
pub async fn own_orphans(db: &Db, worker: &str, runner: &str) -> Result<Vec<Claimed>> {
    let find = "SELECT a.id, a.job_id, a.attempt FROM rustyray_attempts a \
                JOIN rustyray_jobs j ON j.id = a.job_id AND j.current_attempt = a.id \
                WHERE a.runner = ? AND a.worker_id = ? AND a.state IN ('SUBMITTED', 'RUNNING')";
    let found: Vec<(uuid::Uuid, uuid::Uuid, i32)> = on_db!(db, pool, kind => {
        sqlx::query_as(&sql(kind, find)).bind(runner).bind(worker).fetch_all(pool).await.map_err(|e| db.error(e))?
    });
    let mut orphans = Vec::with_capacity(found.len());
    for (attempt_id, job_id, attempt) in found {
        orphans.push(claimed_for(db, JobId(job_id), attempt_id, attempt).await?);
    }
    Ok(orphans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{ConnectOptions, Pool};
    use crate::model::{JobId, JobOptions};
    use crate::store::enqueue::{self, NewJob};

    #[tokio::test]
    async fn a_beat_sees_a_cancel_of_its_job_only_while_it_is_the_current_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/jobs.db", dir.path().display());
        let db = Db::connect(&url, &ConnectOptions::default()).await.unwrap();
        let mut job = NewJob {
            id: JobId::new(),
            function: "tests::f".into(),
            args: "[]".into(),
            options: JobOptions::default(),
            deduplicated: false,
        };
        enqueue::insert(&db, std::slice::from_mut(&mut job)).await.unwrap();
        let Pool::Sqlite(pool) = &db.pool else { panic!("a SQLite pool") };
        let (old, current) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        for (attempt, (id, state)) in [(old, "FAILED"), (current, "RUNNING")].into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, submitted_at, last_heartbeat) \
                 VALUES (?, ?, ?, 'ray', ?, 1, 1)",
            )
            .bind(id)
            .bind(job.id.0)
            .bind(attempt as i64 + 1)
            .bind(state)
            .execute(pool)
            .await
            .unwrap();
        }
        let set = "UPDATE rustyray_jobs SET state = 'RUNNING', current_attempt = ?, cancel_requested = ? WHERE id = ?";
        sqlx::query(set).bind(current).bind(false).bind(job.id.0).execute(pool).await.unwrap();
        assert_eq!(heartbeat(&db, current).await.unwrap(), Beat { live: true, cancel_requested: false });
        sqlx::query(set).bind(current).bind(true).bind(job.id.0).execute(pool).await.unwrap();
        assert_eq!(heartbeat(&db, current).await.unwrap(), Beat { live: true, cancel_requested: true });
        assert_eq!(heartbeat(&db, old).await.unwrap(), Beat { live: false, cancel_requested: false });
    }
}
