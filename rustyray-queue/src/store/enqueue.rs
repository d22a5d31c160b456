//! Writing new jobs: one or many in one transaction, with a wake-up for
//! idle workers (PostgreSQL NOTIFY; in-process workers are woken by the queue).

use crate::db::{Db, Pool, sql};
use crate::error::Result;
use crate::model::{JobId, JobOptions, to_micros};
use crate::store::json_text;

/// Jobs per SQLite statement: one JSON parameter each.
const SQLITE_CHUNK: usize = 2048;

/// A job about to be written.
#[derive(Debug)]
pub struct NewJob {
    /// Its id.
    pub id: JobId,
    /// The function's registered name.
    pub function: String,
    /// The arguments, as JSON text.
    pub args: String,
    /// Its options (checked).
    pub options: JobOptions,
    /// Set by [`insert`] when the job's idempotency key named a job already
    /// stored (or an earlier one of the same write): nothing was written
    /// for it, and `id` is now that job's.
    pub deduplicated: bool,
}

impl NewJob {
    fn columns(&self) -> Result<(String, i64, Option<i64>, String)> {
        // The key lives in its own column only: a worker of the previous
        // version, still running during an upgrade, reads these options.
        let stored = JobOptions { idempotency_key: None, ..self.options.clone() };
        let options = serde_json::to_string(&stored).map_err(|error| crate::error::QueueError::Codec {
            context: format!("encoding the options of a `{}` job", self.function),
            message: error.to_string(),
        })?;
        let delay = self.options.run_after.map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0);
        let at = self.options.run_at.map(to_micros);
        Ok((options, delay, at, self.options.queue_name().to_string()))
    }

    fn max_attempts(&self) -> i32 {
        i32::try_from(self.options.max_retries.saturating_add(1)).unwrap_or(i32::MAX)
    }
}

/// Writes `jobs` in one transaction: all or none. A job whose idempotency
/// key a job in the table has already (or an earlier one of `jobs`) is not
/// written: its `id` becomes that job's.
pub async fn insert(db: &Db, jobs: &mut [NewJob]) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = jobs.iter().filter_map(|job| job.options.idempotency_key.as_deref()).collect();
    let keyed = !keys.is_empty();
    let keys = json_text(&keys)?;
    match &db.pool {
        Pool::Sqlite(pool) => {
            // The rows travel as JSON arrays, many per statement (`json_each`).
            let kind = db.kind();
            let text = sql(
                kind,
                "INSERT INTO rustyray_jobs (id, function, args, queue, priority, state, run_after, name, options, \
                 max_attempts, created_at, idempotency_key) \
                 SELECT unhex(j.value ->> '$[0]'), j.value ->> '$[1]', j.value ->> '$[2]', j.value ->> '$[3]', \
                        j.value ->> '$[4]', 'QUEUED', COALESCE(j.value ->> '$[5]', {now} + (j.value ->> '$[6]')), \
                        j.value ->> '$[7]', j.value ->> '$[8]', j.value ->> '$[9]', {now}, j.value ->> '$[10]' \
                 FROM json_each(?) AS j WHERE true \
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            );
            let mut tx = pool.begin_with(kind.begin()).await.map_err(|e| db.error(e))?;
            for chunk in jobs.chunks(SQLITE_CHUNK) {
                let mut rows = Vec::with_capacity(chunk.len());
                for job in chunk {
                    let (options, delay, at, queue) = job.columns()?;
                    rows.push((
                        job.id.0.simple().to_string(),
                        job.function.as_str(),
                        job.args.as_str(),
                        queue,
                        job.options.priority,
                        at,
                        delay,
                        job.options.name.as_deref(),
                        options,
                        job.max_attempts(),
                        job.options.idempotency_key.as_deref(),
                    ));
                }
                sqlx::query(&text).bind(json_text(&rows)?).execute(&mut *tx).await.map_err(|e| db.error(e))?;
            }
            let mut found = Vec::new();
            if keyed {
                let text = "SELECT id, idempotency_key FROM rustyray_jobs \
                            WHERE idempotency_key IN (SELECT value FROM json_each(?))";
                found = sqlx::query_as(text).bind(&keys).fetch_all(&mut *tx).await.map_err(|e| db.error(e))?;
            }
            tx.commit().await.map_err(|e| db.error(e))?;
            // Only once committed: jobs written again after a failure keep
            // their own ids.
            take_ids(jobs, found);
        }
        Pool::Postgres(pool) => {
            // One statement for the whole batch: arrays, unnested.
            let mut ids = Vec::with_capacity(jobs.len());
            let mut functions = Vec::with_capacity(jobs.len());
            let mut args = Vec::with_capacity(jobs.len());
            let mut queues = Vec::with_capacity(jobs.len());
            let mut priorities = Vec::with_capacity(jobs.len());
            let mut ats = Vec::with_capacity(jobs.len());
            let mut delays = Vec::with_capacity(jobs.len());
            let mut names = Vec::with_capacity(jobs.len());
            let mut options = Vec::with_capacity(jobs.len());
            let mut max_attempts = Vec::with_capacity(jobs.len());
            let mut idempotency_keys = Vec::with_capacity(jobs.len());
            for job in jobs.iter() {
                let (opts, delay, at, queue) = job.columns()?;
                ids.push(job.id.0);
                functions.push(job.function.clone());
                args.push(job.args.clone());
                queues.push(queue);
                priorities.push(job.options.priority);
                ats.push(at);
                delays.push(delay);
                names.push(job.options.name.clone());
                options.push(opts);
                max_attempts.push(job.max_attempts());
                idempotency_keys.push(job.options.idempotency_key.clone());
            }
            // One statement for the rows and the wake-up: they commit
            // together or not at all, in one round trip. With keys, it shares
            // a transaction with the read of the keys' ids. Rows go in in the
            // order of their keys, so that two batches sharing keys wait for
            // each other in one order and never deadlock.
            let text = sql(
                db.kind(),
                "WITH i AS (INSERT INTO rustyray_jobs (id, function, args, queue, priority, state, run_after, name, \
                 options, max_attempts, created_at, idempotency_key) \
                 SELECT j.id, j.function, j.args, j.queue, j.priority, 'QUEUED', COALESCE(j.at, {now} + j.delay), \
                        j.name, j.options, j.max_attempts, {now}, j.idempotency_key \
                 FROM unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::int[], ?::bigint[], ?::bigint[], \
                             ?::text[], ?::text[], ?::int[], ?::text[]) \
                      AS j(id, function, args, queue, priority, at, delay, name, options, max_attempts, \
                           idempotency_key) \
                 ORDER BY j.idempotency_key \
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                 RETURNING 1) \
                 SELECT pg_notify('rustyray_ready', '') WHERE EXISTS (SELECT 1 FROM i)",
            );
            let insert = sqlx::query(&text)
                .bind(ids)
                .bind(functions)
                .bind(args)
                .bind(queues)
                .bind(priorities)
                .bind(ats)
                .bind(delays)
                .bind(names)
                .bind(options)
                .bind(max_attempts)
                .bind(idempotency_keys);
            if !keyed {
                insert.execute(pool).await.map_err(|e| db.error(e))?;
                return Ok(());
            }
            let mut tx = pool.begin().await.map_err(|e| db.error(e))?;
            insert.execute(&mut *tx).await.map_err(|e| db.error(e))?;
            // A concurrent insert of the same key that won is committed by
            // now (the conflict waited for it), and this statement's
            // snapshot, taken after, sees it.
            let text = sql(
                db.kind(),
                "SELECT id, idempotency_key FROM rustyray_jobs \
                 WHERE idempotency_key IN (SELECT value FROM json_array_elements_text(?::json))",
            );
            let found = sqlx::query_as(&text).bind(&keys).fetch_all(&mut *tx).await.map_err(|e| db.error(e))?;
            tx.commit().await.map_err(|e| db.error(e))?;
            take_ids(jobs, found);
        }
    }
    Ok(())
}

/// Gives each job with an idempotency key the id of the job written under
/// it (its own, or one written before).
fn take_ids(jobs: &mut [NewJob], found: Vec<(uuid::Uuid, String)>) {
    let found: std::collections::HashMap<String, uuid::Uuid> = found.into_iter().map(|(id, key)| (key, id)).collect();
    for job in jobs {
        if let Some(id) = job.options.idempotency_key.as_ref().and_then(|key| found.get(key)) {
            job.deduplicated = job.id.0 != *id;
            job.id = JobId(*id);
        }
    }
}
