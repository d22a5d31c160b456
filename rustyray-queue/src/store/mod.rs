//! The system of record: every statement the queue runs against its database.
//!
//! Each file is one stage of a job's life: [`enqueue`] writes new jobs,
//! [`claim`] hands ready jobs to a worker as attempts, [`complete`] records
//! how attempts ended, [`attempt`] starts and follows one attempt by its
//! id (a cluster job), [`lease`] keeps workers' leases and heartbeats and
//! turns silent attempts into LOST ones, and this file reads jobs back.
//! Every write that changes a job's state is guarded by the job's current
//! attempt, so a late or duplicate writer (a worker thought dead, a second
//! reconciler) changes nothing.

pub mod attempt;
pub mod claim;
pub mod complete;
pub mod enqueue;
pub mod events;
pub mod lease;

use std::collections::BTreeMap;

use sqlx::Row;

use crate::db::{Db, Kind, on_db, on_db_read, sql};
use crate::error::{QueueError, Result};
use crate::model::{ActiveJob, AttemptInfo, AttemptState, JobFilter, JobId, JobInfo, JobOptions, JobState, QueueStats};

/// The columns a [`JobInfo`] is read from.
pub(crate) const JOB_COLUMNS: &str = "id, function, args, queue, priority, state, name, options, attempts, \
     max_attempts, worker_id, run_after, created_at, started_at, finished_at, result, result_ref, last_error, \
     cancel_requested, idempotency_key";

const ATTEMPT_COLUMNS: &str = "id, attempt, runner, state, charged, worker_id, ray_job_id, submitted_at, started_at, \
     finished_at, last_heartbeat, error_class, error_message, backtrace, result_ref, log_ref";

/// A batch of rows as one JSON array, the way SQLite statements take many
/// rows in one parameter (`json_each(?)`), as PostgreSQL takes arrays.
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(rows: &T) -> Result<String> {
    serde_json::to_string(rows).map_err(|error| QueueError::Codec {
        context: "encoding a batch of rows for SQLite".into(),
        message: error.to_string(),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str, job: JobId) -> Result<T> {
    serde_json::from_str(text).map_err(|error| QueueError::Codec {
        context: format!("reading the stored {what} of job {job}"),
        message: error.to_string(),
    })
}

/// Whether a job's arguments are decoded when read: a caller that hides
/// the arguments of jobs that did not opt in to recording them skips
/// decoding what it would throw away.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Args {
    /// Every job's arguments.
    All,
    /// Only the arguments of jobs whose options say to record them.
    Recorded,
    /// As a listing selects them ([`listed_columns`]): recorded and small.
    Listed,
}

/// A jobs row as a [`JobInfo`] (attempts not filled).
pub(crate) fn job_from_row<R: Row>(db: &Db, row: &R, wanted: Args) -> Result<JobInfo>
where
    for<'a> &'a str: sqlx::ColumnIndex<R> + sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    uuid::Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    bool: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = |error: sqlx::Error| db.error(error);
    let id = JobId(row.try_get("id").map_err(e)?);
    let state: String = row.try_get("state").map_err(e)?;
    let options: String = row.try_get("options").map_err(e)?;
    let result: Option<String> = row.try_get("result").map_err(e)?;
    let mut options: JobOptions = parse_json(&options, "options", id)?;
    options.idempotency_key = row.try_get("idempotency_key").map_err(e)?;
    // A listing selects the arguments only where they are recorded and
    // small enough, and says when it left a value out.
    let args = if wanted == Args::All || options.record_args {
        let args: Option<&str> = row.try_get("args").map_err(e)?;
        args.map(|args| parse_json(args, "arguments", id)).transpose()?
    } else {
        None
    };
    let values_omitted = wanted == Args::Listed && row.try_get("values_omitted").map_err(e)?;
    Ok(JobInfo {
        id,
        function: row.try_get("function").map_err(e)?,
        args,
        queue: row.try_get("queue").map_err(e)?,
        priority: row.try_get("priority").map_err(e)?,
        state: state.parse()?,
        name: row.try_get("name").map_err(e)?,
        options,
        attempts: row.try_get::<i32, _>("attempts").map_err(e)?.max(0) as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts").map_err(e)?.max(0) as u32,
        worker_id: row.try_get("worker_id").map_err(e)?,
        run_after: row.try_get("run_after").map_err(e)?,
        created_at: row.try_get("created_at").map_err(e)?,
        started_at: row.try_get("started_at").map_err(e)?,
        finished_at: row.try_get("finished_at").map_err(e)?,
        result: match result {
            Some(text) => Some(parse_json(&text, "result", id)?),
            None => None,
        },
        result_ref: row.try_get("result_ref").map_err(e)?,
        last_error: row.try_get("last_error").map_err(e)?,
        cancel_requested: row.try_get("cancel_requested").map_err(e)?,
        attempt_list: Vec::new(),
        values_omitted,
    })
}

/// The attempt in the columns of `row` from `base` on, in
/// [`ATTEMPT_COLUMNS`] order; `None` where they are empty (the outer side
/// of a join, for a job with no attempt).
fn attempt_from_row<R: Row>(db: &Db, row: &R, base: usize) -> Result<Option<AttemptInfo>>
where
    usize: sqlx::ColumnIndex<R>,
    uuid::Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    bool: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = |error: sqlx::Error| db.error(error);
    let Some(id) = row.try_get::<Option<uuid::Uuid>, _>(base).map_err(e)? else { return Ok(None) };
    let state: String = row.try_get(base + 3).map_err(e)?;
    Ok(Some(AttemptInfo {
        id,
        attempt: row.try_get::<i32, _>(base + 1).map_err(e)?.max(0) as u32,
        runner: row.try_get(base + 2).map_err(e)?,
        state: state.parse::<AttemptState>()?,
        charged: row.try_get(base + 4).map_err(e)?,
        worker_id: row.try_get(base + 5).map_err(e)?,
        ray_job_id: row.try_get(base + 6).map_err(e)?,
        submitted_at: row.try_get(base + 7).map_err(e)?,
        started_at: row.try_get(base + 8).map_err(e)?,
        finished_at: row.try_get(base + 9).map_err(e)?,
        last_heartbeat: row.try_get(base + 10).map_err(e)?,
        error_class: row.try_get(base + 11).map_err(e)?,
        error_message: row.try_get(base + 12).map_err(e)?,
        backtrace: row.try_get(base + 13).map_err(e)?,
        result_ref: row.try_get(base + 14).map_err(e)?,
        log_ref: row.try_get(base + 15).map_err(e)?,
    }))
}

/// The statement [`job`] runs, in `kind`'s dialect: the job's columns under
/// their own names beside each of its attempts' (a row with empty attempt
/// columns when it has none), so that one round trip answers. The attempt's
/// columns are renamed `attempt_*`, so that no job column's name is taken
/// twice. Built once.
fn job_statement(kind: Kind) -> &'static str {
    fn build(kind: Kind) -> String {
        let prefixed = |table: &str, columns: &str, alias: &str| {
            columns
                .split(',')
                .map(str::trim)
                .map(|column| format!("{table}.{column} AS {alias}{column}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "SELECT {}, {} FROM rustyray_jobs j LEFT JOIN rustyray_attempts a ON a.job_id = j.id \
             WHERE j.id = ? ORDER BY a.attempt",
            prefixed("j", JOB_COLUMNS, ""),
            prefixed("a", ATTEMPT_COLUMNS, "attempt_")
        );
        sql(kind, &text).into_owned()
    }
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| build(Kind::Sqlite));
    static POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| build(Kind::Postgres));
    match kind {
        Kind::Sqlite => &SQLITE,
        Kind::Postgres => &POSTGRES,
    }
}

/// How many columns [`JOB_COLUMNS`] names: the attempt's follow them.
fn job_column_count() -> usize {
    JOB_COLUMNS.split(',').count()
}

/// One job with its attempts, in one statement.
pub async fn job(db: &Db, id: JobId, wanted: Args) -> Result<JobInfo> {
    on_db_read!(db, pool, kind => {
        let rows = sqlx::query(job_statement(kind)).bind(id.0).fetch_all(pool).await.map_err(|e| db.error(e))?;
        let Some(first) = rows.first() else { return Err(QueueError::JobNotFound(id)) };
        let mut info = job_from_row(db, first, wanted)?;
        let base = job_column_count();
        info.attempt_list = rows.iter().filter_map(|row| attempt_from_row(db, row, base).transpose()).collect::<Result<_>>()?;
        Ok(info)
    })
}

/// Running jobs with their current attempts, oldest first, at most `limit`.
pub async fn active(db: &Db, limit: u32) -> Result<Vec<ActiveJob>> {
    let text = "SELECT j.id, j.function, j.queue, j.name, a.id, a.attempt, a.state, a.runner, a.worker_id, \
                a.ray_job_id, a.submitted_at, a.started_at, a.last_heartbeat \
                FROM rustyray_jobs j JOIN rustyray_attempts a ON a.id = j.current_attempt \
                WHERE j.state = 'RUNNING' ORDER BY a.submitted_at LIMIT ?";
    on_db_read!(db, pool, kind => {
        let rows = sqlx::query(&sql(kind, text)).bind(i64::from(limit)).fetch_all(pool).await.map_err(|e| db.error(e))?;
        rows.iter()
            .map(|row| {
                let e = |error: sqlx::Error| db.error(error);
                let state: String = row.try_get(6).map_err(e)?;
                Ok(ActiveJob {
                    id: JobId(row.try_get(0).map_err(e)?),
                    function: row.try_get(1).map_err(e)?,
                    queue: row.try_get(2).map_err(e)?,
                    name: row.try_get(3).map_err(e)?,
                    attempt_id: row.try_get(4).map_err(e)?,
                    attempt: row.try_get::<i32, _>(5).map_err(e)?.max(0) as u32,
                    attempt_state: state.parse()?,
                    runner: row.try_get(7).map_err(e)?,
                    worker_id: row.try_get(8).map_err(e)?,
                    ray_job_id: row.try_get(9).map_err(e)?,
                    submitted_at: row.try_get(10).map_err(e)?,
                    started_at: row.try_get(11).map_err(e)?,
                    last_heartbeat: row.try_get(12).map_err(e)?,
                })
            })
            .collect()
    })
}

/// One round trip to the database.
pub async fn ping(db: &Db) -> Result<()> {
    on_db!(db, pool, _kind => {
        sqlx::query("SELECT 1").execute(pool).await.map_err(|e| db.error(e))?;
    });
    Ok(())
}

/// The state of one job, cheaply.
pub async fn job_state(db: &Db, id: JobId) -> Result<JobState> {
    let text = "SELECT state FROM rustyray_jobs WHERE id = ?";
    let state: Option<String> = on_db!(db, pool, kind => {
        sqlx::query_scalar(&sql(kind, text)).bind(id.0).fetch_optional(pool).await.map_err(|e| db.error(e))?
    });
    match state {
        Some(state) => state.parse(),
        None => Err(QueueError::JobNotFound(id)),
    }
}

/// Jobs a filter selects, newest first, with the arguments only of jobs
/// that record them.
pub async fn jobs(db: &Db, filter: &JobFilter) -> Result<Vec<JobInfo>> {
    // No stored queue, function or name holds NUL, and PostgreSQL refuses
    // it in a statement's text: such a filter matches nothing, on both.
    let texts = [&filter.queue, &filter.function, &filter.search];
    if texts.iter().any(|text| text.as_deref().is_some_and(|text| text.contains('\0'))) {
        return Ok(Vec::new());
    }
    let mut clauses: Vec<&str> = Vec::new();
    let kind = db.kind();
    if filter.state.is_some() {
        clauses.push("state = ?");
    }
    if filter.queue.is_some() {
        clauses.push("queue = ?");
    }
    if filter.function.is_some() {
        clauses.push("function = ?");
    }
    if filter.created_after.is_some() {
        clauses.push("created_at >= ?");
    }
    if filter.created_before.is_some() {
        clauses.push("created_at < ?");
    }
    if filter.before.is_some() {
        clauses.push("id < ?");
    }
    let search_id = filter.search.as_deref().and_then(|s| s.parse::<JobId>().ok());
    let search_like = filter.search.as_deref().filter(|s| !s.is_empty()).map(|s| {
        let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    if search_id.is_some() {
        clauses.push("id = ?");
    } else if search_like.is_some() {
        // Without regard to case on both (SQLite's LIKE already is, for ASCII).
        clauses.push(match kind {
            Kind::Sqlite => "(function LIKE ? ESCAPE '\\' OR COALESCE(name, '') LIKE ? ESCAPE '\\')",
            Kind::Postgres => "(function ILIKE ? ESCAPE '\\' OR COALESCE(name, '') ILIKE ? ESCAPE '\\')",
        });
    }
    let limit = i64::from(filter.limit.unwrap_or(100).clamp(1, JobFilter::MAX_LIMIT));
    let text = format!(
        "SELECT {} FROM rustyray_jobs {} {} ORDER BY id DESC LIMIT ?",
        listed_columns(kind),
        if clauses.is_empty() { "" } else { "WHERE" },
        clauses.join(" AND ")
    );
    on_db_read!(db, pool, kind => {
        let text = sql(kind, &text);
        let mut q = sqlx::query(&text);
        if let Some(state) = filter.state {
            q = q.bind(state.as_str());
        }
        if let Some(queue) = &filter.queue {
            q = q.bind(queue.as_str());
        }
        if let Some(function) = &filter.function {
            q = q.bind(function.as_str());
        }
        if let Some(after) = filter.created_after {
            q = q.bind(after);
        }
        if let Some(before) = filter.created_before {
            q = q.bind(before);
        }
        if let Some(before) = filter.before {
            q = q.bind(before.0);
        }
        if let Some(id) = search_id {
            q = q.bind(id.0);
        } else if let Some(like) = &search_like {
            q = q.bind(like.clone()).bind(like.clone());
        }
        let rows = q.bind(limit).fetch_all(pool).await.map_err(|e| db.error(e))?;
        rows.iter().map(|row| job_from_row(db, row, Args::Listed)).collect()
    })
}

/// [`JOB_COLUMNS`] as a listing selects them: the arguments only where the
/// job records them, and no argument list or result over
/// [`JobInfo::LISTED_VALUE_MAX`] bytes (a `values_omitted` column says so),
/// the last error cut there. Sizes come from `octet_length`, which reads
/// neither a large PostgreSQL value nor SQLite's overflow pages. Built once.
fn listed_columns(kind: Kind) -> &'static str {
    fn build(kind: Kind) -> String {
        let max = JobInfo::LISTED_VALUE_MAX;
        let recorded = match kind {
            Kind::Sqlite => "COALESCE(options ->> '$.record_args', 0)",
            Kind::Postgres => "COALESCE((options::jsonb ->> 'record_args')::boolean, FALSE)",
        };
        JOB_COLUMNS
            .split(',')
            .map(str::trim)
            .map(|column| match column {
                "args" => format!("CASE WHEN {recorded} AND octet_length(args) <= {max} THEN args END AS args"),
                "result" => format!("CASE WHEN octet_length(result) <= {max} THEN result END AS result"),
                "last_error" => format!("substr(last_error, 1, {max}) AS last_error"),
                column => column.to_string(),
            })
            .chain([format!(
                "(({recorded} AND octet_length(args) > {max}) OR COALESCE(octet_length(result), 0) > {max}) AS values_omitted"
            )])
            .collect::<Vec<_>>()
            .join(", ")
    }
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| build(Kind::Sqlite));
    static POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| build(Kind::Postgres));
    match kind {
        Kind::Sqlite => &SQLITE,
        Kind::Postgres => &POSTGRES,
    }
}

/// Counts per state and queue, run times, live workers.
pub async fn stats(db: &Db, alive_within_us: i64) -> Result<QueueStats> {
    let mut stats = QueueStats::default();
    type Counts = Vec<(String, String, i64)>;
    let (counts, lost, durations, alive): (Counts, i64, Vec<i64>, i64) = on_db_read!(db, pool, kind => {
        let counts = sqlx::query_as(&sql(kind, "SELECT queue, state, COUNT(*) FROM rustyray_jobs GROUP BY queue, state"))
            .fetch_all(&mut *pool).await.map_err(|e| db.error(e))?;
        let lost = sqlx::query_scalar(&sql(kind, "SELECT COUNT(*) FROM rustyray_attempts WHERE state = 'LOST'"))
            .fetch_one(&mut *pool).await.map_err(|e| db.error(e))?;
        let durations = sqlx::query_scalar(&sql(kind,
            "SELECT finished_at - started_at FROM rustyray_attempts \
             WHERE state = 'SUCCEEDED' AND started_at IS NOT NULL AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT 10000"))
            .fetch_all(&mut *pool).await.map_err(|e| db.error(e))?;
        let alive = sqlx::query_scalar(&sql(kind,
            "SELECT COUNT(*) FROM rustyray_workers WHERE state = 'RUNNING' AND last_heartbeat >= {now} - ?"))
            .bind(alive_within_us).fetch_one(&mut *pool).await.map_err(|e| db.error(e))?;
        (counts, lost, durations, alive)
    });
    for state in JobState::ALL {
        stats.by_state.insert(state.as_str().to_string(), 0);
    }
    for (queue, state, count) in counts {
        let count = count.max(0) as u64;
        *stats.by_state.entry(state.clone()).or_default() += count;
        *stats.by_queue.entry(queue).or_insert_with(BTreeMap::new).entry(state).or_default() += count;
    }
    stats.lost_attempts = lost.max(0) as u64;
    stats.workers_alive = alive.max(0) as u64;
    let mut durations: Vec<f64> = durations.into_iter().map(|us| us.max(0) as f64 / 1e6).collect();
    if !durations.is_empty() {
        durations.sort_by(f64::total_cmp);
        stats.run_time_mean = durations.iter().sum::<f64>() / durations.len() as f64;
        let at = |q: f64| durations[((durations.len() - 1) as f64 * q).round() as usize];
        stats.run_time_p50 = at(0.5);
        stats.run_time_p99 = at(0.99);
    }
    Ok(stats)
}

/// Asks a job to stop: a QUEUED job is CANCELLED at once; a RUNNING one is
/// flagged, and its worker stops it. Returns the state after the call.
pub async fn cancel(db: &Db, id: JobId) -> Result<JobState> {
    let queued = "UPDATE rustyray_jobs SET state = 'CANCELLED', finished_at = {now}, cancel_requested = TRUE, \
                  last_error = 'Cancelled: cancelled while queued' WHERE id = ? AND state = 'QUEUED'";
    let running = "UPDATE rustyray_jobs SET cancel_requested = TRUE WHERE id = ? AND state = 'RUNNING'";
    let done = on_db!(db, pool, kind => {
        let n = if kind == Kind::Postgres {
            // Waiters in other processes hear of the end at once, in the
            // same statement: a cancel that happened is never reported as
            // failed by a notification that did not go out.
            let text = format!(
                "WITH c AS ({} RETURNING id) SELECT pg_notify('rustyray_events', id::text || ':CANCELLED') FROM c",
                sql(kind, queued)
            );
            sqlx::query(&text).bind(id.0).fetch_all(pool).await.map_err(|e| db.error(e))?.len() as u64
        } else {
            sqlx::query(&sql(kind, queued)).bind(id.0).execute(pool).await.map_err(|e| db.error(e))?.rows_affected()
        };
        if n == 1 {
            Some(JobState::Cancelled)
        } else {
            let n = sqlx::query(&sql(kind, running)).bind(id.0).execute(pool).await.map_err(|e| db.error(e))?.rows_affected();
            if n == 1 {
                if kind == Kind::Postgres {
                    sqlx::query("SELECT pg_notify('rustyray_cancel', $1)").bind(id.to_string()).execute(pool).await.map_err(|e| db.error(e))?;
                }
                Some(JobState::Running)
            } else {
                None
            }
        }
    });
    match done {
        Some(state) => Ok(state),
        None => match job_state(db, id).await? {
            JobState::Cancelled => Ok(JobState::Cancelled),
            // It moved between the two statements (claimed, or ended): try once more.
            JobState::Queued | JobState::Running => Box::pin(cancel(db, id)).await,
            state => Err(QueueError::WrongState { job: id, state, operation: "cancel", allowed: "QUEUED or RUNNING" }),
        },
    }
}

/// Runs a FAILED or CANCELLED job again, as a new attempt with its retries
/// restored.
pub async fn retry(db: &Db, id: JobId) -> Result<()> {
    let text = "UPDATE rustyray_jobs SET state = 'QUEUED', run_after = {now}, finished_at = NULL, attempts = 0, \
                cancel_requested = FALSE, result = NULL, result_ref = NULL \
                WHERE id = ? AND state IN ('FAILED', 'CANCELLED')";
    let n = on_db!(db, pool, kind => {
        let n = sqlx::query(&sql(kind, text)).bind(id.0).execute(pool).await.map_err(|e| db.error(e))?.rows_affected();
        if n == 1 && kind == Kind::Postgres {
            sqlx::query("SELECT pg_notify('rustyray_ready', '')").execute(pool).await.map_err(|e| db.error(e))?;
        }
        n
    });
    if n == 1 {
        return Ok(());
    }
    let state = job_state(db, id).await?;
    Err(QueueError::WrongState { job: id, state, operation: "retry", allowed: "FAILED or CANCELLED" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{ConnectOptions, Pool};
    use crate::store::enqueue::NewJob;

    fn new_job(record_args: bool) -> NewJob {
        let options = JobOptions { record_args, ..JobOptions::default() };
        NewJob { id: JobId::new(), function: "tests::f".into(), args: "[7]".into(), options, deduplicated: false }
    }

    #[tokio::test]
    async fn one_statement_reads_a_job_with_its_attempts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/jobs.db", dir.path().display()), &ConnectOptions::default())
            .await
            .unwrap();
        let mut jobs = [new_job(false), new_job(true)];
        let (tried, fresh) = (jobs[0].id, jobs[1].id);
        enqueue::insert(&db, &mut jobs).await.unwrap();
        let Pool::Sqlite(pool) = &db.pool else { panic!("a SQLite pool") };
        // Written out of order: the read puts them in attempt order.
        for (attempt, state) in [(2, "RUNNING"), (1, "FAILED")] {
            sqlx::query(
                "INSERT INTO rustyray_attempts (id, job_id, attempt, runner, state, submitted_at, last_heartbeat) \
                 VALUES (?, ?, ?, 'local', ?, 1, 1)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(tried.0)
            .bind(attempt)
            .bind(state)
            .execute(pool)
            .await
            .unwrap();
        }
        let info = job(&db, tried, Args::All).await.unwrap();
        let attempts: Vec<(u32, AttemptState)> = info.attempt_list.iter().map(|a| (a.attempt, a.state)).collect();
        assert_eq!(attempts, [(1, AttemptState::Failed), (2, AttemptState::Running)]);
        assert_eq!(info.args, Some(serde_json::json!([7])));
        // Arguments the job did not opt in to recording are not decoded.
        assert_eq!(job(&db, tried, Args::Recorded).await.unwrap().args, None);
        let info = job(&db, fresh, Args::Recorded).await.unwrap();
        assert!(info.attempt_list.is_empty(), "no attempt yet: {:?}", info.attempt_list);
        assert_eq!(info.args, Some(serde_json::json!([7])), "a job that records its arguments shows them");
        assert!(matches!(job(&db, JobId::new(), Args::All).await, Err(QueueError::JobNotFound(_))));
    }
}
