//! Reading the lifecycle event outbox that the schema's triggers fill: after
//! a sequence number (the service's feed), not yet published (the broker
//! publisher), and pruning what is older than the retention.

use sqlx::Row;

use crate::db::{Db, Pool, on_db, on_db_read, sql};
use crate::error::{QueueError, Result};
use crate::model::{Event, JobId};

const COLUMNS: &str = "seq, kind, job_id, function, queue, state, attempt, error, args, at";

fn event_from_row<R: Row>(db: &Db, row: &R) -> Result<Event>
where
    usize: sqlx::ColumnIndex<R>,
    uuid::Uuid: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let e = |error: sqlx::Error| db.error(error);
    let seq: i64 = row.try_get(0).map_err(e)?;
    let job_id = JobId(row.try_get(2).map_err(e)?);
    let state: String = row.try_get(5).map_err(e)?;
    let args: Option<String> = row.try_get(8).map_err(e)?;
    let args = match args {
        Some(text) => Some(serde_json::from_str(&text).map_err(|error| QueueError::Codec {
            context: format!("reading the arguments in event {seq} of job {job_id}"),
            message: error.to_string(),
        })?),
        None => None,
    };
    Ok(Event {
        seq,
        kind: row.try_get(1).map_err(e)?,
        job_id,
        function: row.try_get(3).map_err(e)?,
        queue: row.try_get(4).map_err(e)?,
        state: state.parse()?,
        attempt: row.try_get::<i32, _>(6).map_err(e)?.max(0) as u32,
        error: row.try_get(7).map_err(e)?,
        args,
        at: row.try_get(9).map_err(e)?,
    })
}

/// Up to `limit` events with a sequence number above `after`, in order.
pub async fn after(db: &Db, after: i64, limit: u32) -> Result<Vec<Event>> {
    let text = format!("SELECT {COLUMNS} FROM rustyray_events WHERE seq > ? ORDER BY seq LIMIT ?");
    let text = sql(db.kind(), &text);
    on_db_read!(db, pool, _kind => {
        let rows = sqlx::query(&text).bind(after).bind(i64::from(limit)).fetch_all(pool).await.map_err(|e| db.error(e))?;
        rows.iter().map(|row| event_from_row(db, row)).collect()
    })
}

/// Up to `limit` events the broker has not acknowledged, oldest first.
pub async fn unpublished(db: &Db, limit: u32) -> Result<Vec<Event>> {
    let text = format!("SELECT {COLUMNS} FROM rustyray_events WHERE published_at IS NULL ORDER BY seq LIMIT ?");
    let text = sql(db.kind(), &text);
    on_db_read!(db, pool, _kind => {
        let rows = sqlx::query(&text).bind(i64::from(limit)).fetch_all(pool).await.map_err(|e| db.error(e))?;
        rows.iter().map(|row| event_from_row(db, row)).collect()
    })
}

/// Marks events `seqs` as acknowledged by the broker.
pub async fn mark_published(db: &Db, seqs: &[i64]) -> Result<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    match &db.pool {
        Pool::Sqlite(pool) => {
            let list = seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            let text = format!("UPDATE rustyray_events SET published_at = {{now}} WHERE seq IN ({list})");
            sqlx::query(&sql(db.kind(), &text)).execute(pool).await.map_err(|e| db.error(e))?;
        }
        Pool::Postgres(pool) => {
            let text = sql(db.kind(), "UPDATE rustyray_events SET published_at = {now} WHERE seq = ANY(?)");
            sqlx::query(&text).bind(seqs).execute(pool).await.map_err(|e| db.error(e))?;
        }
    }
    Ok(())
}

/// The newest event's sequence number (0 when there is none).
pub async fn last_seq(db: &Db) -> Result<i64> {
    let text = "SELECT COALESCE(MAX(seq), 0) FROM rustyray_events";
    on_db_read!(db, pool, _kind => {
        let seq: i64 = sqlx::query_scalar(text).fetch_one(pool).await.map_err(|e| db.error(e))?;
        Ok(seq)
    })
}

/// Deletes events older than `keep_us` microseconds; returns how many.
pub async fn prune(db: &Db, keep_us: i64) -> Result<u64> {
    let text = sql(db.kind(), "DELETE FROM rustyray_events WHERE at < {now} - ?");
    on_db!(db, pool, _kind => {
        let done = sqlx::query(&text).bind(keep_us).execute(pool).await.map_err(|e| db.error(e))?;
        Ok(done.rows_affected())
    })
}
