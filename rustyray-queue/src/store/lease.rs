//! Leases and recovery: workers register and heartbeat themselves and their
//! running attempts; a reconciler (any worker may run it, two at once are
//! harmless) turns attempts whose heartbeat went silent into LOST ones and
//! requeues or fails their jobs, charging the lost attempt.

use sqlx::Row;

use crate::db::{Db, on_db, on_db_read, sql};
use crate::error::Result;
use crate::model::{JobId, JobOptions, JobState, WorkerInfo};

/// A worker's lease, as registered.
#[derive(Clone, Debug)]
pub struct Lease<'a> {
    /// Unique per process.
    pub id: &'a str,
    /// The host name.
    pub host: &'a str,
    /// The process id.
    pub pid: i64,
    /// The queues it claims from.
    pub queues: &'a [String],
    /// How many attempts it runs at once.
    pub concurrency: u32,
    /// Its runner.
    pub runner: &'a str,
}

/// Registers (or renews) a worker's lease.
pub async fn register(db: &Db, lease: &Lease<'_>) -> Result<()> {
    let text = "INSERT INTO rustyray_workers (id, host, pid, queues, concurrency, runner, started_at, last_heartbeat, state) \
                VALUES (?, ?, ?, ?, ?, ?, {now}, {now}, 'RUNNING') \
                ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, state = 'RUNNING'";
    on_db!(db, pool, kind => {
        sqlx::query(&sql(kind, text))
            .bind(lease.id)
            .bind(lease.host)
            .bind(lease.pid)
            .bind(lease.queues.join(","))
            .bind(i32::try_from(lease.concurrency).unwrap_or(i32::MAX))
            .bind(lease.runner)
            .execute(pool)
            .await
            .map_err(|e| db.error(e))?;
    });
    Ok(())
}

/// What a heartbeat found.
pub struct Heartbeat {
    /// The running jobs a cancel was asked for (job, attempt).
    pub cancels: Vec<(JobId, uuid::Uuid)>,
    /// The attempts of the worker that are still live (SUBMITTED or
    /// RUNNING): any other it still runs was found LOST meanwhile.
    pub live: Vec<uuid::Uuid>,
}

/// Renews the lease and the heartbeat of the attempts the worker `holds`
/// (those it runs or follows right now); returns which of them are still
/// live, and the running jobs a cancel was asked for.
///
/// Only the attempts it holds: an attempt recorded under the worker's id
/// that it does not run (the process before a restart under the same id
/// ran it, or a claim committed while its answer was lost) then goes
/// silent and is found LOST, instead of being kept RUNNING for as long as
/// the worker lives. And RUNNING ones only when `running_too`: an attempt
/// a job process began (SUBMITTED, then RUNNING) heartbeats itself, so
/// that one whose process is gone (its cluster lost) goes silent too,
/// however long its worker follows it.
pub async fn heartbeat(db: &Db, worker: &str, holds: &[uuid::Uuid], running_too: bool) -> Result<Heartbeat> {
    let lease = "UPDATE rustyray_workers SET last_heartbeat = {now}, state = 'RUNNING' WHERE id = ?";
    let held = match db.kind() {
        crate::db::Kind::Sqlite => "SELECT unhex(value) FROM json_each(?)",
        crate::db::Kind::Postgres => "SELECT CAST(value AS uuid) FROM json_array_elements_text(CAST(? AS json))",
    };
    let states = if running_too { "'SUBMITTED', 'RUNNING'" } else { "'SUBMITTED'" };
    let attempts = format!(
        "UPDATE rustyray_attempts SET last_heartbeat = {{now}} \
         WHERE worker_id = ? AND state IN ({states}) AND id IN ({held}) RETURNING id"
    );
    let holds: Vec<String> = holds.iter().map(|id| id.simple().to_string()).collect();
    let holds = super::json_text(&holds)?;
    let cancels = "SELECT id, current_attempt FROM rustyray_jobs \
                   WHERE worker_id = ? AND state = 'RUNNING' AND cancel_requested";
    on_db!(db, pool, kind => {
        sqlx::query(&sql(kind, lease)).bind(worker).execute(pool).await.map_err(|e| db.error(e))?;
        let live = sqlx::query(&sql(kind, &attempts))
            .bind(worker)
            .bind(&holds)
            .fetch_all(pool)
            .await
            .map_err(|e| db.error(e))?;
        let live = live.iter().map(|row| row.try_get(0)).collect::<Result<Vec<uuid::Uuid>, _>>().map_err(|e| db.error(e))?;
        let rows = sqlx::query(&sql(kind, cancels)).bind(worker).fetch_all(pool).await.map_err(|e| db.error(e))?;
        let mut cancels = Vec::with_capacity(rows.len());
        for row in rows {
            let job: uuid::Uuid = row.try_get(0).map_err(|e| db.error(e))?;
            let attempt: Option<uuid::Uuid> = row.try_get(1).map_err(|e| db.error(e))?;
            if let Some(attempt) = attempt {
                cancels.push((JobId(job), attempt));
            }
        }
        Ok(Heartbeat { cancels, live })
    })
}

/// Marks the worker's lease STOPPED (a clean shutdown).
pub async fn stop(db: &Db, worker: &str) -> Result<()> {
    let text = "UPDATE rustyray_workers SET state = 'STOPPED', last_heartbeat = {now} WHERE id = ?";
    on_db!(db, pool, kind => {
        sqlx::query(&sql(kind, text)).bind(worker).execute(pool).await.map_err(|e| db.error(e))?;
    });
    Ok(())
}

/// Workers, newest lease first.
pub async fn workers(db: &Db) -> Result<Vec<WorkerInfo>> {
    let text = "SELECT id, host, pid, queues, concurrency, runner, started_at, last_heartbeat, state \
                FROM rustyray_workers ORDER BY last_heartbeat DESC LIMIT 1000";
    on_db_read!(db, pool, kind => {
        let rows = sqlx::query(&sql(kind, text)).fetch_all(pool).await.map_err(|e| db.error(e))?;
        rows.iter()
            .map(|row| {
                let e = |error: sqlx::Error| db.error(error);
                let queues: String = row.try_get("queues").map_err(e)?;
                Ok(WorkerInfo {
                    id: row.try_get("id").map_err(e)?,
                    host: row.try_get("host").map_err(e)?,
                    pid: row.try_get("pid").map_err(e)?,
                    queues: queues.split(',').filter(|q| !q.is_empty()).map(str::to_string).collect(),
                    concurrency: row.try_get::<i32, _>("concurrency").map_err(e)?.max(0) as u32,
                    runner: row.try_get("runner").map_err(e)?,
                    started_at: row.try_get("started_at").map_err(e)?,
                    last_heartbeat: row.try_get("last_heartbeat").map_err(e)?,
                    state: row.try_get("state").map_err(e)?,
                })
            })
            .collect()
    })
}

/// Sets (or, with `None`, removes) the limit on RUNNING jobs of `queue`
/// across all workers; `*` limits all jobs.
pub async fn set_limit(db: &Db, queue: &str, max_running: Option<u32>) -> Result<()> {
    on_db!(db, pool, kind => {
        match max_running {
            Some(limit) => {
                let text = "INSERT INTO rustyray_limits (queue, max_running) VALUES (?, ?) \
                            ON CONFLICT (queue) DO UPDATE SET max_running = excluded.max_running";
                sqlx::query(&sql(kind, text))
                    .bind(queue)
                    .bind(i32::try_from(limit).unwrap_or(i32::MAX))
                    .execute(pool)
                    .await
                    .map_err(|e| db.error(e))?;
            }
            None => {
                sqlx::query(&sql(kind, "DELETE FROM rustyray_limits WHERE queue = ?"))
                    .bind(queue)
                    .execute(pool)
                    .await
                    .map_err(|e| db.error(e))?;
            }
        }
    });
    Ok(())
}

/// One attempt found silent and what became of its job.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The job.
    pub job_id: JobId,
    /// The LOST attempt.
    pub attempt_id: uuid::Uuid,
    /// The worker that held it.
    pub worker_id: Option<String>,
    /// The job's new state (QUEUED for a retry, FAILED when spent).
    pub job_state: Option<JobState>,
}

/// Marks attempts silent for longer than `stuck_us` LOST and moves their
/// jobs on, in one transaction; marks silent workers DEAD.
pub async fn reconcile(db: &Db, stuck_us: i64) -> Result<Vec<Recovered>> {
    let lose = "UPDATE rustyray_attempts SET state = 'LOST', finished_at = {now}, error_class = 'Lost', \
                error_message = 'worker ' || COALESCE(worker_id, 'unknown') || ' stopped heartbeating; the attempt was lost' \
                WHERE state IN ('SUBMITTED', 'RUNNING') AND last_heartbeat < {now} - ? \
                RETURNING id, job_id, worker_id";
    let job = "SELECT attempts, options FROM rustyray_jobs WHERE id = ? AND current_attempt = ?";
    let requeue = "UPDATE rustyray_jobs SET \
                   state = CASE WHEN cancel_requested THEN 'CANCELLED' WHEN attempts < max_attempts THEN 'QUEUED' ELSE 'FAILED' END, \
                   run_after = {now} + ?, \
                   finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN {now} ELSE NULL END, \
                   last_error = ?, current_attempt = NULL, worker_id = NULL \
                   WHERE id = ? AND current_attempt = ? RETURNING state";
    let dead = "UPDATE rustyray_workers SET state = 'DEAD' WHERE state = 'RUNNING' AND last_heartbeat < {now} - ?";
    on_db!(db, pool, kind => {
        let mut tx = pool.begin_with(kind.begin()).await.map_err(|e| db.error(e))?;
        let rows = sqlx::query(&sql(kind, lose)).bind(stuck_us).fetch_all(&mut *tx).await.map_err(|e| db.error(e))?;
        let mut recovered = Vec::with_capacity(rows.len());
        for row in rows {
            let e = |error: sqlx::Error| db.error(error);
            let attempt_id: uuid::Uuid = row.try_get(0).map_err(e)?;
            let job_id = JobId(row.try_get(1).map_err(e)?);
            let worker_id: Option<String> = row.try_get(2).map_err(e)?;
            let current = sqlx::query(&sql(kind, job))
                .bind(job_id.0)
                .bind(attempt_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
            let mut job_state = None;
            if let Some(current) = current {
                let attempts: i32 = current.try_get(0).map_err(e)?;
                let options: String = current.try_get(1).map_err(e)?;
                let options: JobOptions = serde_json::from_str(&options).unwrap_or_default();
                let delay = options.retry_delay(attempts.max(1) as u32);
                let message = format!(
                    "Lost: worker {} stopped heartbeating; the attempt was lost",
                    worker_id.as_deref().unwrap_or("?")
                );
                let state: Option<String> = sqlx::query_scalar(&sql(kind, requeue))
                    .bind(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX))
                    .bind(message)
                    .bind(job_id.0)
                    .bind(attempt_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(e)?;
                job_state = state.and_then(|s| s.parse().ok());
            }
            if kind == crate::db::Kind::Postgres
                && let Some(state) = job_state
            {
                // Delivered at commit: waiters and idle workers of other
                // processes hear of the move at once, as of any other.
                let channel = if state == JobState::Queued { "rustyray_ready" } else { "rustyray_events" };
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(channel)
                    .bind(format!("{job_id}:{state}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
            }
            recovered.push(Recovered { job_id, attempt_id, worker_id, job_state });
        }
        sqlx::query(&sql(kind, dead)).bind(stuck_us).execute(&mut *tx).await.map_err(|e| db.error(e))?;
        tx.commit().await.map_err(|e| db.error(e))?;
        Ok(recovered)
    })
}
