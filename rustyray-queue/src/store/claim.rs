//! Claiming: ready jobs become attempts of one worker, atomically.
//!
//! Ready means QUEUED with `run_after <= now`, taken by priority, then age.
//! PostgreSQL skips rows other claimers hold (`FOR UPDATE SKIP LOCKED`);
//! SQLite claims inside one writer transaction. Concurrency limits (per queue,
//! and `*` for all jobs) are read from the `rustyray_limits` table and held
//! across every worker: while any apply, PostgreSQL claimers take a
//! transaction-scoped advisory lock, so two of them never both count the same
//! free slot.

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{Db, Kind, Pool, sql};
use crate::error::{QueueError, Result};
use crate::model::{AttemptState, JobId, JobOptions};
use crate::store::json_text;

/// The advisory lock that serializes limited claims on PostgreSQL.
const CLAIM_LOCK: i64 = 0x7275_7374_7952_6179; // "rustyRay"

/// The queue name that limits every job, whatever its queue.
pub const GLOBAL_LIMIT: &str = "*";

/// One attempt handed to a worker.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The job.
    pub job_id: JobId,
    /// The new attempt's id.
    pub attempt_id: uuid::Uuid,
    /// The attempt's number (1 for the first).
    pub attempt: u32,
    /// Attempts charged, this one included.
    pub charged: u32,
    /// `max_retries + 1`.
    pub max_attempts: u32,
    /// The function's registered name.
    pub function: String,
    /// The arguments, as JSON.
    pub args: serde_json::Value,
    /// The job's options.
    pub options: JobOptions,
    /// The queue.
    pub queue: String,
    /// Why the stored arguments or options could not be read, if they could
    /// not: the worker fails such an attempt instead of running it.
    pub unreadable: Option<String>,
}

/// Who claims, and how.
#[derive(Clone, Debug)]
pub struct Claimer<'a> {
    /// The worker's id.
    pub worker_id: &'a str,
    /// The runner's name (`local`, `ray_job`).
    pub runner: &'a str,
    /// The state new attempts start in: RUNNING when the worker runs them
    /// itself, SUBMITTED when they are handed to a cluster.
    pub initial: AttemptState,
    /// The queues claimed from.
    pub queues: &'a [String],
}

struct Candidate {
    id: JobId,
    priority: i32,
    function: String,
    args: String,
    options: String,
    queue: String,
    max_attempts: i32,
}

const CANDIDATE_COLUMNS: &str = "id, priority, function, args, options, queue, max_attempts";

fn candidate<R: Row>(db: &Db, row: &R) -> Result<Candidate>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    uuid::Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = |error: sqlx::Error| db.error(error);
    Ok(Candidate {
        id: JobId(row.try_get("id").map_err(e)?),
        priority: row.try_get("priority").map_err(e)?,
        function: row.try_get("function").map_err(e)?,
        args: row.try_get("args").map_err(e)?,
        options: row.try_get("options").map_err(e)?,
        queue: row.try_get("queue").map_err(e)?,
        max_attempts: row.try_get("max_attempts").map_err(e)?,
    })
}

/// A marked job as both backends return it: (job, new attempt, runs, charged attempts).
fn marked_row<R: Row>(db: &Db, row: &R) -> Result<(JobId, uuid::Uuid, i32, i32)>
where
    usize: sqlx::ColumnIndex<R>,
    uuid::Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = |error: sqlx::Error| db.error(error);
    Ok((
        JobId(row.try_get(0).map_err(e)?),
        row.try_get(1).map_err(e)?,
        row.try_get(2).map_err(e)?,
        row.try_get(3).map_err(e)?,
    ))
}

/// The groups to select from: each limited queue with its free slots, then
/// the unlimited queues together; and the free slots over all queues.
fn plan(
    queues: &[String],
    limits: &HashMap<String, i64>,
    running: &HashMap<String, i64>,
    n: i64,
) -> (Vec<(String, i64)>, i64) {
    // One group per queue, so each select walks that queue's ready index.
    let mut groups = Vec::new();
    for queue in queues {
        let free = match limits.get(queue) {
            Some(limit) => (limit - running.get(queue).copied().unwrap_or(0)).clamp(0, n),
            None => n,
        };
        if free > 0 {
            groups.push((queue.clone(), free));
        }
    }
    let total = match limits.get(GLOBAL_LIMIT) {
        Some(limit) => (limit - running.values().sum::<i64>()).clamp(0, n),
        None => n,
    };
    (groups, total)
}

/// Claims up to `n` ready jobs for `claimer`.
pub async fn claim(db: &Db, claimer: &Claimer<'_>, n: usize) -> Result<Vec<Claimed>> {
    if n == 0 || claimer.queues.is_empty() {
        return Ok(Vec::new());
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let kind = db.kind();
    if let (Pool::Postgres(pool), [queue]) = (&db.pool, claimer.queues)
        && let Some((picked, marked)) = claim_unlimited_postgres(db, pool, claimer, queue, n).await?
    {
        return to_claims(picked, marked);
    }
    let mut picked: Vec<Candidate> = Vec::new();
    let mut marked: Vec<(JobId, uuid::Uuid, i32, i32)> = Vec::new();
    // The part both backends share, written once for their two transaction
    // types: read the limits, count what runs where they apply, select each
    // queue's best ready jobs, keep the best `total` of them.
    macro_rules! pick_candidates {
        ($tx:ident) => {{
            let limits: HashMap<String, i64> =
                sqlx::query_as("SELECT queue, CAST(max_running AS BIGINT) FROM rustyray_limits")
                    .fetch_all(&mut *$tx)
                    .await
                    .map_err(|e| db.error(e))?
                    .into_iter()
                    .collect();
            let applies = limits.contains_key(GLOBAL_LIMIT) || claimer.queues.iter().any(|q| limits.contains_key(q));
            let running: HashMap<String, i64> = if applies {
                if kind == Kind::Postgres {
                    sqlx::query(&sql(kind, "SELECT pg_advisory_xact_lock(?)"))
                        .bind(CLAIM_LOCK)
                        .execute(&mut *$tx)
                        .await
                        .map_err(|e| db.error(e))?;
                }
                sqlx::query_as("SELECT queue, COUNT(*) FROM rustyray_jobs WHERE state = 'RUNNING' GROUP BY queue")
                    .fetch_all(&mut *$tx)
                    .await
                    .map_err(|e| db.error(e))?
                    .into_iter()
                    .collect()
            } else {
                HashMap::new()
            };
            let (groups, total) = plan(claimer.queues, &limits, &running, n);
            let lock = if kind == Kind::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
            let select = format!(
                "SELECT {CANDIDATE_COLUMNS} FROM rustyray_jobs WHERE state = 'QUEUED' AND run_after <= {{now}} \
                 AND queue = ? ORDER BY priority DESC, id LIMIT ? {lock}"
            );
            let select = sql(kind, &select);
            for (queue, limit) in groups {
                let rows =
                    sqlx::query(&select).bind(queue).bind(limit).fetch_all(&mut *$tx).await.map_err(|e| db.error(e))?;
                for row in &rows {
                    picked.push(candidate(db, row)?);
                }
            }
            pick(&mut picked, total);
        }};
    }
    match &db.pool {
        Pool::Sqlite(pool) => {
            if let [queue] = claimer.queues {
                let (picked, marked) = claim_unlimited_sqlite(db, pool, claimer, queue, n).await?;
                if !marked.is_empty() {
                    return to_claims(picked, marked);
                }
                // Nothing ready, or a limit applies: the general way tells which.
            }
            let mut tx = pool.begin_with(kind.begin()).await.map_err(|e| db.error(e))?;
            pick_candidates!(tx);
            if !picked.is_empty() {
                // One statement per step for the whole batch: the pairs
                // (job, new attempt) travel as one JSON array. The unary `+`
                // keeps SQLite from walking the state index for every pair:
                // each pair finds its job by primary key.
                let pairs: Vec<[String; 2]> = picked
                    .iter()
                    .map(|c| [c.id.0.simple().to_string(), uuid::Uuid::now_v7().simple().to_string()])
                    .collect();
                let pairs = json_text(&pairs)?;
                let mark = sql(
                    kind,
                    "UPDATE rustyray_jobs SET state = 'RUNNING', attempts = attempts + 1, runs = runs + 1, \
                     current_attempt = unhex(c.value ->> '$[1]'), worker_id = ?, \
                     started_at = COALESCE(started_at, {now}) \
                     FROM json_each(?) AS c \
                     WHERE rustyray_jobs.id = unhex(c.value ->> '$[0]') AND +rustyray_jobs.state = 'QUEUED' \
                     RETURNING id, current_attempt, runs, attempts",
                );
                let rows = sqlx::query(&mark)
                    .bind(claimer.worker_id)
                    .bind(&pairs)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| db.error(e))?;
                for row in &rows {
                    marked.push(marked_row(db, row)?);
                }
                // The jobs just marked are those whose current attempt is the new one.
                let insert = sql(
                    kind,
                    "INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, worker_id, submitted_at, \
                     started_at, last_heartbeat) \
                     SELECT j.current_attempt, j.id, j.runs, ?, ?, ?, {now}, CASE WHEN ? = 'RUNNING' THEN {now} END, \
                            {now} \
                     FROM json_each(?) AS c \
                     JOIN rustyray_jobs j ON j.id = unhex(c.value ->> '$[0]') \
                                         AND j.current_attempt = unhex(c.value ->> '$[1]')",
                );
                sqlx::query(&insert)
                    .bind(claimer.runner)
                    .bind(claimer.initial.as_str())
                    .bind(claimer.worker_id)
                    .bind(claimer.initial.as_str())
                    .bind(&pairs)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db.error(e))?;
            }
            tx.commit().await.map_err(|e| db.error(e))?;
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.map_err(|e| db.error(e))?;
            pick_candidates!(tx);
            if !picked.is_empty() {
                let job_ids: Vec<uuid::Uuid> = picked.iter().map(|c| c.id.0).collect();
                let attempt_ids: Vec<uuid::Uuid> = picked.iter().map(|_| uuid::Uuid::now_v7()).collect();
                let mark = sql(
                    kind,
                    "WITH c AS (SELECT * FROM unnest(?::uuid[], ?::uuid[]) AS c(job_id, attempt_id)), \
                     j AS (UPDATE rustyray_jobs t SET state = 'RUNNING', attempts = t.attempts + 1, runs = t.runs + 1, \
                             current_attempt = c.attempt_id, worker_id = ?, started_at = COALESCE(t.started_at, {now}) \
                           FROM c WHERE t.id = c.job_id AND t.state = 'QUEUED' \
                           RETURNING t.id, t.runs, t.attempts, c.attempt_id), \
                     a AS (INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, worker_id, submitted_at, \
                             started_at, last_heartbeat) \
                           SELECT j.attempt_id, j.id, j.runs, ?, ?, ?, {now}, \
                                  CASE WHEN CAST(? AS TEXT) = 'RUNNING' THEN {now} END, {now} FROM j) \
                     SELECT id, attempt_id, runs, attempts FROM j",
                );
                let rows = sqlx::query(&mark)
                    .bind(job_ids)
                    .bind(attempt_ids)
                    .bind(claimer.worker_id)
                    .bind(claimer.runner)
                    .bind(claimer.initial.as_str())
                    .bind(claimer.worker_id)
                    .bind(claimer.initial.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| db.error(e))?;
                for row in &rows {
                    marked.push(marked_row(db, row)?);
                }
            }
            tx.commit().await.map_err(|e| db.error(e))?;
        }
    }
    to_claims(picked, marked)
}

/// The claims of the `marked` jobs, read from their `picked` rows, in the
/// order they were picked.
fn to_claims(picked: Vec<Candidate>, marked: Vec<(JobId, uuid::Uuid, i32, i32)>) -> Result<Vec<Claimed>> {
    let order: HashMap<JobId, usize> = picked.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let mut by_id: HashMap<JobId, Candidate> = picked.into_iter().map(|c| (c.id, c)).collect();
    let mut claimed = Vec::with_capacity(marked.len());
    for (job_id, attempt_id, runs, charged) in marked {
        let Some(c) = by_id.remove(&job_id) else { continue };
        let args = serde_json::from_str(&c.args).map_err(|error| QueueError::Codec {
            context: format!("reading the stored arguments of job {job_id}"),
            message: error.to_string(),
        });
        let options = serde_json::from_str(&c.options).map_err(|error| QueueError::Codec {
            context: format!("reading the stored options of job {job_id}"),
            message: error.to_string(),
        });
        // A row that cannot be read still becomes an attempt; the worker
        // fails it with this error instead of leaving it RUNNING.
        let (args, options, unreadable) = match (args, options) {
            (Ok(args), Ok(options)) => (args, options, None),
            (Err(error), _) | (_, Err(error)) => {
                (serde_json::Value::Null, JobOptions::default(), Some(error.to_string()))
            }
        };
        claimed.push(Claimed {
            job_id,
            attempt_id,
            attempt: runs.max(0) as u32,
            charged: charged.max(0) as u32,
            max_attempts: c.max_attempts.max(1) as u32,
            function: c.function,
            args,
            options,
            queue: c.queue,
            unreadable,
        });
    }
    // Start them in the order they were picked: priority, then age.
    claimed.sort_by_key(|c| order.get(&c.job_id).copied().unwrap_or(usize::MAX));
    Ok(claimed)
}

/// The common claim on PostgreSQL (one queue, no limit on it nor a global
/// one) as one statement, so one round trip and its own transaction: check
/// that no limit applies, lock the queue's best ready jobs (skipping those
/// other claimers hold), mark them RUNNING and insert their attempts.
/// `None` when a limit applies: the caller claims the general way, which
/// counts running jobs under the claim lock.
async fn claim_unlimited_postgres(
    db: &Db,
    pool: &sqlx::PgPool,
    claimer: &Claimer<'_>,
    queue: &str,
    n: i64,
) -> Result<Option<(Vec<Candidate>, Vec<(JobId, uuid::Uuid, i32, i32)>)>> {
    // Attempt ids are made here (UUID v7, time-ordered like job ids) and
    // handed to the picked jobs in pick order.
    let attempt_ids: Vec<uuid::Uuid> = (0..n.min(4096)).map(|_| uuid::Uuid::now_v7()).collect();
    let text = sql(
        Kind::Postgres,
        "WITH l AS (SELECT EXISTS (SELECT 1 FROM rustyray_limits WHERE queue IN (?, ?)) AS limited), \
         p AS (SELECT t.id, t.priority, t.function, t.args, t.options, t.queue, t.max_attempts \
               FROM rustyray_jobs t \
               WHERE t.state = 'QUEUED' AND t.run_after <= {now} AND t.queue = ? AND NOT (SELECT limited FROM l) \
               ORDER BY t.priority DESC, t.id LIMIT ? FOR UPDATE OF t SKIP LOCKED), \
         c AS (SELECT p.*, (CAST(? AS uuid[]))[CAST(row_number() OVER (ORDER BY p.priority DESC, p.id) AS INT)] AS attempt_id \
               FROM p), \
         j AS (UPDATE rustyray_jobs t SET state = 'RUNNING', attempts = t.attempts + 1, runs = t.runs + 1, \
                 current_attempt = c.attempt_id, worker_id = ?, started_at = COALESCE(t.started_at, {now}) \
               FROM c WHERE t.id = c.id \
               RETURNING t.id, c.attempt_id, t.runs, t.attempts, c.priority, c.function, c.args, c.options, \
                         c.queue, c.max_attempts), \
         a AS (INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, worker_id, submitted_at, \
                 started_at, last_heartbeat) \
               SELECT j.attempt_id, j.id, j.runs, ?, ?, ?, {now}, \
                      CASE WHEN CAST(? AS TEXT) = 'RUNNING' THEN {now} END, {now} FROM j) \
         SELECT l.limited, j.id, j.attempt_id, j.runs, j.attempts, j.priority, j.function, j.args, j.options, \
                j.queue, j.max_attempts \
         FROM l LEFT JOIN j ON TRUE",
    );
    let rows = sqlx::query(&text)
        .bind(GLOBAL_LIMIT)
        .bind(queue)
        .bind(queue)
        .bind(i64::try_from(attempt_ids.len()).unwrap_or(n))
        .bind(&attempt_ids)
        .bind(claimer.worker_id)
        .bind(claimer.runner)
        .bind(claimer.initial.as_str())
        .bind(claimer.worker_id)
        .bind(claimer.initial.as_str())
        .fetch_all(pool)
        .await
        .map_err(|e| db.error(e))?;
    let e = |error: sqlx::Error| db.error(error);
    let mut picked = Vec::with_capacity(rows.len());
    let mut marked = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<bool, _>(0).map_err(e)? {
            return Ok(None);
        }
        let Some(id) = row.try_get::<Option<uuid::Uuid>, _>(1).map_err(e)? else { continue };
        let id = JobId(id);
        marked.push((id, row.try_get(2).map_err(e)?, row.try_get(3).map_err(e)?, row.try_get(4).map_err(e)?));
        picked.push(Candidate {
            id,
            priority: row.try_get(5).map_err(e)?,
            function: row.try_get(6).map_err(e)?,
            args: row.try_get(7).map_err(e)?,
            options: row.try_get(8).map_err(e)?,
            queue: row.try_get(9).map_err(e)?,
            max_attempts: row.try_get(10).map_err(e)?,
        });
    }
    // The rows come back in no particular order: pick order is priority, then age.
    picked.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    Ok(Some((picked, marked)))
}

/// The common claim on SQLite (one queue, no limit on it nor a global one)
/// as one write transaction in one round trip (see
/// [`sqlite_write_once`](crate::db::sqlite_write_once)): one statement
/// picks the queue's best ready jobs and marks them RUNNING, the next inserts
/// their attempts (this worker's RUNNING jobs whose current attempt is one
/// of the new ids). Nothing is claimed when a limit applies.
async fn claim_unlimited_sqlite(
    db: &Db,
    pool: &sqlx::SqlitePool,
    claimer: &Claimer<'_>,
    queue: &str,
    n: i64,
) -> Result<(Vec<Candidate>, Vec<(JobId, uuid::Uuid, i32, i32)>)> {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let attempt_ids: Vec<String> = (0..n.min(4096)).map(|_| uuid::Uuid::now_v7().simple().to_string()).collect();
    // `?1` worker, `?2` queue, `?3` how many, `?4` the attempt ids (handed
    // out in pick order), `?5` runner, `?6` the attempts' first state. One
    // write transaction, sent to the connection's thread in one go.
    let text = TEXT.get_or_init(|| {
        crate::db::sqlite_transaction(&sql(
            Kind::Sqlite,
            "UPDATE rustyray_jobs SET state = 'RUNNING', attempts = attempts + 1, runs = runs + 1, \
               current_attempt = unhex(c.attempt), worker_id = ?1, started_at = COALESCE(started_at, {now}) \
             FROM (SELECT p.id, a.value AS attempt \
                   FROM (SELECT id, row_number() OVER (ORDER BY priority DESC, id) - 1 AS k \
                         FROM (SELECT id, priority FROM rustyray_jobs \
                               WHERE state = 'QUEUED' AND queue = ?2 AND run_after <= {now} \
                                 AND NOT EXISTS (SELECT 1 FROM rustyray_limits WHERE queue IN ('*', ?2)) \
                               ORDER BY priority DESC, id LIMIT ?3)) AS p \
                   JOIN json_each(?4) AS a ON a.key = p.k) AS c \
             WHERE rustyray_jobs.id = c.id \
             RETURNING id, current_attempt, runs, attempts, priority, function, args, options, queue, max_attempts; \
             INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, worker_id, submitted_at, started_at, \
               last_heartbeat) \
             SELECT j.current_attempt, j.id, j.runs, ?5, ?6, ?1, {now}, CASE WHEN ?6 = 'RUNNING' THEN {now} END, {now} \
             FROM rustyray_jobs j \
             WHERE j.worker_id = ?1 AND j.state = 'RUNNING' \
               AND j.current_attempt IN (SELECT unhex(value) FROM json_each(?4))",
        ))
    });
    let mut args = sqlx::sqlite::SqliteArguments::default();
    crate::db::sqlite_arg(db, &mut args, claimer.worker_id.to_string())?;
    crate::db::sqlite_arg(db, &mut args, queue.to_string())?;
    crate::db::sqlite_arg(db, &mut args, i64::try_from(attempt_ids.len()).unwrap_or(n))?;
    crate::db::sqlite_arg(db, &mut args, json_text(&attempt_ids)?)?;
    crate::db::sqlite_arg(db, &mut args, claimer.runner.to_string())?;
    crate::db::sqlite_arg(db, &mut args, claimer.initial.as_str().to_string())?;
    let rows = crate::db::sqlite_write_once(db, pool, text, args).await?;
    let e = |error: sqlx::Error| db.error(error);
    let mut picked = Vec::with_capacity(rows.len());
    let mut marked = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = JobId(row.try_get(0).map_err(e)?);
        marked.push((id, row.try_get(1).map_err(e)?, row.try_get(2).map_err(e)?, row.try_get(3).map_err(e)?));
        picked.push(Candidate {
            id,
            priority: row.try_get(4).map_err(e)?,
            function: row.try_get(5).map_err(e)?,
            args: row.try_get(6).map_err(e)?,
            options: row.try_get(7).map_err(e)?,
            queue: row.try_get(8).map_err(e)?,
            max_attempts: row.try_get(9).map_err(e)?,
        });
    }
    // RETURNING gives no order: pick order is priority, then age.
    picked.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    Ok((picked, marked))
}

/// Keeps the `total` best candidates: priority first, then age.
fn pick(candidates: &mut Vec<Candidate>, total: i64) {
    candidates.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    candidates.truncate(usize::try_from(total).unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_queues_get_their_free_slots_and_the_global_limit_caps_all() {
        let queues = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let limits = HashMap::from([("a".to_string(), 2), (GLOBAL_LIMIT.to_string(), 5)]);
        let running = HashMap::from([("a".to_string(), 1), ("c".to_string(), 2)]);
        let (groups, total) = plan(&queues, &limits, &running, 10);
        assert_eq!(groups, vec![("a".to_string(), 1), ("b".to_string(), 10), ("c".to_string(), 10)]);
        assert_eq!(total, 2);
        let full = HashMap::from([("a".to_string(), 2)]);
        let (groups, _) = plan(&queues, &limits, &full, 10);
        assert_eq!(groups.len(), 2, "a full queue is not selected from");
    }
}
