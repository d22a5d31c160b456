//! Recording how attempts ended, in batches: the attempt row gets its final
//! state, and the job moves on (SUCCEEDED, back to QUEUED for a retry,
//! FAILED or CANCELLED). A write whose attempt is no longer the job's current
//! one (it was declared LOST meanwhile) changes nothing.

use sqlx::Row;

use crate::db::{Db, Pool, sql};
use crate::error::Result;
use crate::model::{AttemptState, JobId, JobState};
use crate::store::json_text;

/// How one attempt ended and what becomes of its job.
#[derive(Clone, Debug)]
pub struct Completion {
    /// The job.
    pub job_id: JobId,
    /// The attempt.
    pub attempt_id: uuid::Uuid,
    /// The attempt's final state.
    pub attempt_state: AttemptState,
    /// The job's next state (QUEUED for a retry; a cancel asked for meanwhile
    /// turns that into CANCELLED).
    pub job_state: JobState,
    /// For a retry: how long until it may run again, in µs.
    pub delay_us: i64,
    /// The result as JSON text, when small enough for the row.
    pub result: Option<String>,
    /// Where a large result was put.
    pub result_ref: Option<String>,
    /// The failure's class.
    pub error_class: Option<String>,
    /// The failure's message.
    pub error_message: Option<String>,
    /// The failure's backtrace.
    pub backtrace: Option<String>,
    /// The attempt does not count against the job's retries (released at a
    /// worker's shutdown).
    pub uncharge: bool,
}

impl Completion {
    fn last_error(&self) -> Option<String> {
        match (&self.error_class, &self.error_message) {
            (Some(class), Some(message)) => Some(format!("{class}: {message}")),
            (None, Some(message)) => Some(message.clone()),
            (Some(class), None) => Some(class.clone()),
            (None, None) => None,
        }
    }
}

// SQLite takes the batch as one JSON array of objects (`json_each`): one
// statement per table for the whole batch, each row found by primary key
// (the unary `+` keeps SQLite off the state index, which would scan). Both
// run as one query (one round trip to the connection's thread), the jobs'
// statement moving only the jobs whose attempt the first one just ended.
const SQLITE_ATTEMPTS: &str = "UPDATE rustyray_attempts SET state = c.value ->> '$.attempt_state', \
     finished_at = {now}, started_at = COALESCE(started_at, {now}), error_class = c.value ->> '$.error_class', \
     error_message = c.value ->> '$.error_message', backtrace = c.value ->> '$.backtrace', \
     result_ref = c.value ->> '$.result_ref', charged = NOT (c.value ->> '$.uncharge') \
     FROM json_each(?1) AS c \
     WHERE rustyray_attempts.id = unhex(c.value ->> '$.attempt_id') \
       AND +rustyray_attempts.state IN ('SUBMITTED', 'RUNNING')";

const SQLITE_JOBS: &str = "UPDATE rustyray_jobs SET \
     state = CASE WHEN c.value ->> '$.job_state' = 'QUEUED' AND rustyray_jobs.cancel_requested THEN 'CANCELLED' \
             ELSE c.value ->> '$.job_state' END, \
     run_after = CASE WHEN c.value ->> '$.job_state' = 'QUEUED' THEN {now} + (c.value ->> '$.delay_us') \
                 ELSE rustyray_jobs.run_after END, \
     finished_at = CASE WHEN c.value ->> '$.job_state' = 'QUEUED' AND NOT rustyray_jobs.cancel_requested THEN NULL \
                   ELSE {now} END, \
     result = c.value ->> '$.result', result_ref = c.value ->> '$.result_ref', \
     last_error = COALESCE(c.value ->> '$.last_error', rustyray_jobs.last_error), \
     attempts = rustyray_jobs.attempts - (c.value ->> '$.uncharge'), current_attempt = NULL, worker_id = NULL \
     FROM json_each(?1) AS c \
     WHERE rustyray_jobs.id = unhex(c.value ->> '$.job_id') \
       AND rustyray_jobs.current_attempt = unhex(c.value ->> '$.attempt_id') \
       AND EXISTS (SELECT 1 FROM rustyray_attempts a WHERE a.id = unhex(c.value ->> '$.attempt_id') \
                   AND a.state = c.value ->> '$.attempt_state' AND a.finished_at IS NOT NULL) \
     RETURNING id, state";

/// Both SQLite statements as one write transaction in one query (see
/// [`sqlite_write_once`](crate::db::sqlite_write_once)), both reading the
/// one parameter.
static SQLITE_STATEMENTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// One completion as SQLite reads it from the batch's JSON.
#[derive(serde::Serialize)]
struct SqliteRow<'a> {
    job_id: String,
    attempt_id: String,
    attempt_state: &'static str,
    job_state: &'static str,
    delay_us: i64,
    result: Option<&'a str>,
    result_ref: Option<&'a str>,
    error_class: Option<&'a str>,
    error_message: Option<&'a str>,
    backtrace: Option<&'a str>,
    last_error: Option<String>,
    uncharge: i32,
}

impl<'a> SqliteRow<'a> {
    fn new(c: &'a Completion) -> Self {
        SqliteRow {
            job_id: c.job_id.0.simple().to_string(),
            attempt_id: c.attempt_id.simple().to_string(),
            attempt_state: c.attempt_state.as_str(),
            job_state: c.job_state.as_str(),
            delay_us: c.delay_us,
            result: c.result.as_deref(),
            result_ref: c.result_ref.as_deref(),
            error_class: c.error_class.as_deref(),
            error_message: c.error_message.as_deref(),
            backtrace: c.backtrace.as_deref(),
            last_error: c.last_error(),
            uncharge: i32::from(c.uncharge),
        }
    }
}

const POSTGRES_BATCH: &str = "WITH d AS ( \
       SELECT * FROM unnest(?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], \
                            ?::text[], ?::text[], ?::text[], ?::text[], ?::int[]) \
         AS d(job_id, attempt_id, attempt_state, job_state, delay_us, result, result_ref, error_class, \
              error_message, backtrace, last_error, uncharge)), \
     a AS ( \
       UPDATE rustyray_attempts t SET state = d.attempt_state, finished_at = {now}, \
              started_at = COALESCE(t.started_at, {now}), error_class = d.error_class, \
              error_message = d.error_message, backtrace = d.backtrace, result_ref = d.result_ref, \
              charged = (d.uncharge = 0) \
       FROM d WHERE t.id = d.attempt_id AND t.state IN ('SUBMITTED', 'RUNNING') RETURNING t.id), \
     m AS (UPDATE rustyray_jobs j SET \
       state = CASE WHEN d.job_state = 'QUEUED' AND j.cancel_requested THEN 'CANCELLED' ELSE d.job_state END, \
       run_after = CASE WHEN d.job_state = 'QUEUED' THEN {now} + d.delay_us ELSE j.run_after END, \
       finished_at = CASE WHEN d.job_state = 'QUEUED' AND NOT j.cancel_requested THEN NULL ELSE {now} END, \
       result = d.result, result_ref = d.result_ref, last_error = COALESCE(d.last_error, j.last_error), \
       attempts = j.attempts - d.uncharge, current_attempt = NULL, worker_id = NULL \
     FROM d JOIN a ON a.id = d.attempt_id \
     WHERE j.id = d.job_id AND j.current_attempt = d.attempt_id \
     RETURNING j.id, j.state) \
     SELECT m.id, m.state, pg_notify('rustyray_events', m.id::text || ':' || m.state) FROM m";

/// Records `batch` in one transaction; returns the jobs that moved, with
/// their new state. On either backend that is one round trip; on PostgreSQL
/// one statement, which also tells other processes' listeners which jobs
/// moved.
pub async fn complete(db: &Db, batch: &[Completion]) -> Result<Vec<(JobId, JobState)>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let kind = db.kind();
    let mut moved = Vec::with_capacity(batch.len());
    match &db.pool {
        Pool::Sqlite(pool) => {
            let rows: Vec<SqliteRow<'_>> = batch.iter().map(SqliteRow::new).collect();
            let text = SQLITE_STATEMENTS.get_or_init(|| {
                crate::db::sqlite_transaction(&format!("{}; {}", sql(kind, SQLITE_ATTEMPTS), sql(kind, SQLITE_JOBS)))
            });
            let mut args = sqlx::sqlite::SqliteArguments::default();
            crate::db::sqlite_arg(db, &mut args, json_text(&rows)?)?;
            let moved_rows = crate::db::sqlite_write_once(db, pool, text, args).await?;
            for row in moved_rows {
                let id: uuid::Uuid = row.try_get(0).map_err(|e| db.error(e))?;
                let state: String = row.try_get(1).map_err(|e| db.error(e))?;
                moved.push((JobId(id), state.parse()?));
            }
        }
        Pool::Postgres(pool) => {
            let text = sql(kind, POSTGRES_BATCH);
            let rows = sqlx::query(&text)
                .bind(batch.iter().map(|c| c.job_id.0).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.attempt_id).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.attempt_state.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.job_state.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.delay_us).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.result.clone()).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.result_ref.clone()).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.error_class.clone()).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.error_message.clone()).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| c.backtrace.clone()).collect::<Vec<_>>())
                .bind(batch.iter().map(Completion::last_error).collect::<Vec<_>>())
                .bind(batch.iter().map(|c| i32::from(c.uncharge)).collect::<Vec<_>>())
                .fetch_all(pool)
                .await
                .map_err(|e| db.error(e))?;
            for row in rows {
                let id: uuid::Uuid = row.try_get(0).map_err(|e| db.error(e))?;
                let state: String = row.try_get(1).map_err(|e| db.error(e))?;
                moved.push((JobId(id), state.parse()?));
            }
        }
    }
    Ok(moved)
}
