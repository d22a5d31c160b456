//! The database connection: SQLite (embedded, WAL) or PostgreSQL, their
//! migrations, and SQL written once for both.
//!
//! Statements are written with `?` placeholders and a `{now}` token; [`sql`]
//! turns them into each backend's dialect (`$1..` for PostgreSQL) and reads
//! the clock in the database, so that every worker of a PostgreSQL queue
//! agrees on time. Times are microseconds since the Unix epoch, in BIGINTs.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{QueueError, Result, redact_url};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a queue lives in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An SQLite file: one machine, any number of processes.
    Sqlite,
    /// PostgreSQL: any number of machines.
    Postgres,
}

/// A pool of connections to one of the two backends.
#[derive(Clone, Debug)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A connected, migrated database.
#[derive(Clone, Debug)]
pub struct Db {
    /// The connections.
    pub pool: Pool,
    /// Read-only connections to a SQLite file, for statements that only
    /// read: WAL lets them run beside the one writer instead of queueing
    /// behind it. `None` for PostgreSQL (its pool serves both) and for an
    /// in-memory SQLite database (one connection is the database).
    pub reader: Option<Readers>,
    /// The URL without its password, for messages.
    pub url: Arc<str>,
}

/// Like [`on_db`], for statements that only read, with `$pool` bound to
/// one connection (`&mut`; reborrow it as `&mut *$pool` to run several
/// statements): on a SQLite file a read-only one from [`Readers`], which
/// does not wait for the writer. Returns the error from the enclosing
/// function when no connection can be had.
macro_rules! on_db_read {
    ($db:expr, $pool:ident, $kind:ident => $body:expr) => {
        match (&$db.pool, &$db.reader) {
            (_, Some(readers)) => {
                let mut connection = readers.get().await.map_err(|e| $db.error(e))?;
                #[allow(unused_variables)]
                let $kind = $crate::db::Kind::Sqlite;
                let $pool = &mut *connection;
                $body
            }
            ($crate::db::Pool::Sqlite(pool), None) => {
                let mut connection = pool.acquire().await.map_err(|e| $db.error(e))?;
                #[allow(unused_variables)]
                let $kind = $crate::db::Kind::Sqlite;
                let $pool = &mut *connection;
                $body
            }
            ($crate::db::Pool::Postgres(pool), None) => {
                let mut connection = pool.acquire().await.map_err(|e| $db.error(e))?;
                #[allow(unused_variables)]
                let $kind = $crate::db::Kind::Postgres;
                let $pool = &mut *connection;
                $body
            }
        }
    };
}
pub(crate) use on_db_read;

/// Runs `$body` with `$pool` bound to the backend's pool and `$kind` to its [`Kind`].
macro_rules! on_db {
    ($db:expr, $pool:ident, $kind:ident => $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $kind = $crate::db::Kind::Sqlite;
                $body
            }
            $crate::db::Pool::Postgres($pool) => {
                #[allow(unused_variables)]
                let $kind = $crate::db::Kind::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_db;

impl Kind {
    /// The statement that opens a write transaction: SQLite takes the write
    /// lock at once (so two claimers never both read, then both write).
    pub fn begin(self) -> &'static str {
        match self {
            Kind::Sqlite => "BEGIN IMMEDIATE",
            Kind::Postgres => "BEGIN",
        }
    }
}

/// Whether `error` is the database refusing a value it was given, which no
/// retry cures: a value that cannot be encoded, PostgreSQL's data exceptions
/// and constraint violations (SQLSTATE classes 22 and 23), SQLite's
/// constraint, too-big and type-mismatch results. Outages, locks, timeouts,
/// a full disk or a read-only server are not.
pub(crate) fn refuses_value(kind: Kind, error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(error) => {
            let Some(code) = error.code() else { return false };
            match kind {
                // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, with
                // their extended codes (the primary code is the low byte).
                Kind::Sqlite => code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 18..=20)),
                Kind::Postgres => code.starts_with("22") || code.starts_with("23"),
            }
        }
        _ => false,
    }
}

/// Runs `statements` (SQLite text, `;`-separated, bound to `args`) as one
/// write transaction in a single hand-off to the connection's thread: the
/// text is `BEGIN IMMEDIATE; ..; COMMIT`, so a batch costs one trip instead
/// of three (begin, statements, commit). Returns the rows the statements
/// return. A failing statement rolls the transaction back and the
/// connection is closed, not pooled; and the work runs as a task of its
/// own, so a caller that stops waiting cannot leave the connection inside
/// an open transaction.
pub(crate) async fn sqlite_write_once(
    db: &Db,
    pool: &SqlitePool,
    statements: &'static str,
    args: sqlx::sqlite::SqliteArguments<'static>,
) -> Result<Vec<sqlx::sqlite::SqliteRow>> {
    let pool = pool.clone();
    let work = tokio::spawn(async move {
        let mut conn = pool.acquire().await?;
        match sqlx::query_with(statements, args).fetch_all(&mut *conn).await {
            Ok(rows) => Ok(rows),
            Err(error) => {
                // Whichever statement failed, nothing of the batch stays
                // (`ROLLBACK` fails where no transaction is open). The
                // connection is then closed rather than pooled, so a
                // rollback that failed otherwise cannot leak a transaction
                // to the next batch: errors here are rare, a new
                // connection is cheap.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                conn.close_on_drop();
                Err(error)
            }
        }
    });
    match work.await {
        Ok(outcome) => outcome.map_err(|error| db.error(error)),
        // Only a panic in the driver or a runtime shutting down gets here.
        Err(_) => Err(db.error(sqlx::Error::WorkerCrashed)),
    }
}

/// Adds `value` to the arguments of a [`sqlite_write_once`] batch.
pub(crate) fn sqlite_arg<T>(db: &Db, args: &mut sqlx::sqlite::SqliteArguments<'static>, value: T) -> Result<()>
where
    T: 'static + sqlx::Encode<'static, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    sqlx::Arguments::add(args, value).map_err(|error| db.error(sqlx::Error::Encode(error)))
}

/// `statements` inside `BEGIN IMMEDIATE; ..; COMMIT`, for [`sqlite_write_once`].
pub(crate) fn sqlite_transaction(statements: &str) -> String {
    format!("{}; {statements}; COMMIT", Kind::Sqlite.begin())
}

/// The backend's SQL for a statement written with `?` and `{now}`. Every
/// `?` is a placeholder, even inside a string literal: write none there.
pub fn sql(kind: Kind, text: &str) -> Cow<'_, str> {
    let now = match kind {
        Kind::Sqlite => "CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
        Kind::Postgres => "CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)",
    };
    let text: Cow<'_, str> =
        if text.contains("{now}") { Cow::Owned(text.replace("{now}", now)) } else { Cow::Borrowed(text) };
    match kind {
        Kind::Sqlite => text,
        Kind::Postgres if !text.contains('?') => text,
        Kind::Postgres => {
            let mut out = String::with_capacity(text.len() + 16);
            let mut n = 0;
            for c in text.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            Cow::Owned(out)
        }
    }
}

/// How a queue connects.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long to wait for a connection.
    pub acquire_timeout: Duration,
    /// Connections to a SQLite file (default 1).
    pub sqlite_connections: u32,
    /// Read-only connections to a SQLite file, for reads (default 4).
    pub sqlite_readers: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            sqlite_connections: 1,
            sqlite_readers: 4,
        }
    }
}

/// How long a connection may sit in its pool before it is pinged as it is
/// handed out again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// The read-only connections to a SQLite file.
///
/// Not a sqlx pool: sqlx pings every connection it takes back, a second
/// hand-off to the connection's thread per statement, which for a file (it
/// cannot drop a connection the way a server can) only costs. A read that is
/// dropped half-way leaves nothing behind (the connection's thread finishes
/// or resets the statement before it takes the next one), so connections go
/// back as they are. One last handed out a second or more ago is pinged
/// before it is handed out again (as PostgreSQL's are after a second idle), so a connection whose thread
/// died is replaced once the load lets up rather than kept for good.
#[derive(Clone)]
pub struct Readers(deadpool::managed::Pool<ReadOnly>);

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.0.status();
        f.debug_struct("Readers").field("size", &status.size).field("max_size", &status.max_size).finish()
    }
}

/// Opens read-only connections to a SQLite file.
pub struct ReadOnly(SqliteConnectOptions);

impl deadpool::managed::Manager for ReadOnly {
    type Type = sqlx::SqliteConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> std::result::Result<sqlx::SqliteConnection, sqlx::Error> {
        sqlx::ConnectOptions::connect(&self.0).await
    }

    async fn recycle(
        &self,
        connection: &mut sqlx::SqliteConnection,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<sqlx::Error> {
        if metrics.last_used() >= IDLE_BEFORE_PING {
            sqlx::Connection::ping(connection).await?;
        }
        Ok(())
    }
}

impl Readers {
    fn new(connect: SqliteConnectOptions, size: u32, wait: Duration) -> std::result::Result<Readers, sqlx::Error> {
        let pool = deadpool::managed::Pool::builder(ReadOnly(connect))
            .max_size(size as usize)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        Ok(Readers(pool))
    }

    /// A connection, opened if none is free and fewer than the most are open.
    pub async fn get(&self) -> std::result::Result<deadpool::managed::Object<ReadOnly>, sqlx::Error> {
        self.0.get().await.map_err(|error| match error {
            deadpool::managed::PoolError::Backend(error) => error,
            deadpool::managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            deadpool::managed::PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Configuration(other.to_string().into()),
        })
    }
}

impl Db {
    /// Connects to `url` and brings its schema up to date; a database written
    /// by a newer version is refused.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Db> {
        let redacted: Arc<str> = Arc::from(redact_url(url));
        let invalid = |reason: String| QueueError::InvalidUrl { url: redacted.to_string(), reason };
        let database =
            |error: sqlx::Error| QueueError::Database { url: redacted.to_string(), message: error.to_string() };
        let mut reader_options = None;
        let pool = if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // WAL with synchronous=NORMAL: a commit is appended to the log
            // and synced at checkpoints, not at every commit. The database
            // cannot be corrupted by a crash of the process or the machine;
            // a power loss may undo the last commits before the sync, never
            // half of one (an undone finish runs its job again; an undone
            // enqueue is gone). That is the durability WAL is meant to run
            // with; FULL would sync every commit, claims and finishes too.
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| invalid(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            if !in_memory && options.sqlite_readers > 0 {
                reader_options = Some(connect.clone().read_only(true));
            }
            let pool = SqlitePoolOptions::new()
                // One connection: SQLite has one writer anyway, and writers of
                // one process queueing for the pool wait far less than
                // writers sleeping in SQLite's busy handler.
                .max_connections(if in_memory { 1 } else { options.sqlite_connections })
                .acquire_timeout(options.acquire_timeout)
                // A file cannot drop a connection the way a server can:
                // pinging it before each use only adds a hop to its thread.
                .test_before_acquire(false)
                .connect_with(connect)
                .await
                .map_err(database)?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                // sqlx pings every connection as it goes back into the pool;
                // a ping before each use as well would make every statement
                // three round trips. Only a connection that sat idle (where
                // a restarted server may have dropped it) is pinged first.
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= IDLE_BEFORE_PING {
                            sqlx::Connection::ping(connection).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(connect)
                .await
                .map_err(database)?;
            Pool::Postgres(pool)
        } else {
            return Err(invalid("the scheme is neither sqlite: nor postgres:".into()));
        };
        let mut db = Db { pool, reader: None, url: redacted.clone() };
        db.migrate().await?;
        // Readers open once the schema is there; they connect lazily.
        if let Some(connect) = reader_options {
            db.reader = Some(Readers::new(connect, options.sqlite_readers, options.acquire_timeout).map_err(database)?);
        }
        Ok(db)
    }

    /// Which backend.
    pub fn kind(&self) -> Kind {
        match self.pool {
            Pool::Sqlite(_) => Kind::Sqlite,
            Pool::Postgres(_) => Kind::Postgres,
        }
    }

    /// Maps a driver error to a queue error naming this database.
    pub fn error(&self, error: sqlx::Error) -> QueueError {
        let (url, message) = (self.url.to_string(), error.to_string());
        if refuses_value(self.kind(), &error) {
            QueueError::Refused { url, message }
        } else {
            QueueError::Database { url, message }
        }
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = match self.kind() {
            Kind::Sqlite => &SQLITE_MIGRATIONS,
            Kind::Postgres => &POSTGRES_MIGRATIONS,
        };
        let supported = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        // Two processes starting on a new SQLite file may race to create the
        // schema; the loser sees the winner's tables on its next try.
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = match &self.pool {
                Pool::Sqlite(pool) => migrator.run(pool).await,
                Pool::Postgres(pool) => migrator.run(pool).await,
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(MigrateError::VersionMissing(found)) => {
                    return Err(QueueError::SchemaTooNew { url: self.url.to_string(), found, supported });
                }
                Err(MigrateError::Execute(error)) if tries < 3 => {
                    tracing::debug!(%error, "retrying the schema migration");
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Err(MigrateError::Execute(error)) => return Err(self.error(error)),
                Err(error) => {
                    return Err(QueueError::Migration { url: self.url.to_string(), message: error.to_string() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_the_database_refuses_is_told_apart_from_a_lock() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = sqlite_db(&dir).await;
        let insert = "INSERT INTO rustyray_jobs (id, function, args, queue, priority, state, run_after, options, \
                      max_attempts, created_at) VALUES (x'01', 'f', '[]', 'q', ?, 'QUEUED', 0, '{}', 1, 0)";
        // A CHECK constraint: the same write would fail the same way again.
        let refused = sqlx::query(insert).bind(500).execute(&writer).await.unwrap_err();
        assert!(matches!(db.error(refused), QueueError::Refused { .. }));
        // Another connection holds the write lock: waited out, not refused.
        let path = dir.path().join("jobs.db");
        let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).busy_timeout(Duration::ZERO);
        let mut impatient = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        let locked = sqlx::query(insert).bind(0).execute(&mut impatient).await.unwrap_err();
        let error = db.error(locked);
        assert!(matches!(error, QueueError::Database { .. }) && error.is_transient(), "{error}");
    }

    #[test]
    fn placeholders_and_clock_per_backend() {
        let text = "UPDATE t SET a = ?, b = {now} WHERE c = ?";
        assert_eq!(
            sql(Kind::Sqlite, text),
            "UPDATE t SET a = ?, b = CAST(unixepoch('subsec') * 1000000 AS INTEGER) WHERE c = ?"
        );
        let pg = sql(Kind::Postgres, text);
        assert!(pg.starts_with("UPDATE t SET a = $1, b = CAST(EXTRACT"), "{pg}");
        assert!(pg.ends_with("WHERE c = $2"), "{pg}");
    }

    /// A new SQLite file queue in `dir`, and its writer pool.
    async fn sqlite_db(dir: &tempfile::TempDir) -> (Db, SqlitePool) {
        let url = format!("sqlite://{}/jobs.db", dir.path().display());
        let db = Db::connect(&url, &ConnectOptions::default()).await.unwrap();
        let Pool::Sqlite(writer) = &db.pool else { panic!("a SQLite pool") };
        let writer = writer.clone();
        (db, writer)
    }

    #[tokio::test]
    async fn postgres_connections_dropped_while_idle_are_replaced_before_use() {
        let Some(admin_url) = std::env::var("RUSTYRAY_TEST_POSTGRES").ok().filter(|url| !url.is_empty()) else {
            eprintln!("RUSTYRAY_TEST_POSTGRES is not set: SKIPPING the PostgreSQL idle-connection test");
            return;
        };
        let admin = PgPool::connect(&admin_url).await.unwrap();
        let name = format!("rr_idle_{}_{}", std::process::id(), fastrand::u32(..));
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&admin).await.unwrap();
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}&application_name={name}");
        let options = ConnectOptions { max_connections: 2, ..ConnectOptions::default() };
        let db = Db::connect(&url, &options).await.unwrap();
        assert_eq!(crate::store::events::last_seq(&db).await.unwrap(), 0);
        // The server drops the pool's connections, as a restart would, and
        // they finish going.
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(&admin)
            .await
            .unwrap();
        assert!(!pids.is_empty());
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .execute(&admin)
            .await
            .unwrap();
        loop {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&pids)
                .fetch_one(&admin)
                .await
                .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Once they have sat idle, each is checked before it is handed out.
        tokio::time::sleep(IDLE_BEFORE_PING + Duration::from_millis(100)).await;
        for _ in 0..4 {
            assert_eq!(crate::store::events::last_seq(&db).await.unwrap(), 0);
        }
        sqlx::query(&format!("DROP SCHEMA {name} CASCADE")).execute(&admin).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reads_do_not_wait_for_an_open_write() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = sqlite_db(&dir).await;
        // The one writer connection sits in an open write transaction.
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO rustyray_limits (queue, max_running) VALUES ('q', 1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        // A read still answers, from the last committed state (a generous
        // deadline: without readers it would wait for the writer forever).
        let stats = tokio::time::timeout(Duration::from_secs(60), crate::store::stats(&db, 1_000_000)).await;
        let stats = stats.expect("the read did not wait for the writer").unwrap();
        assert_eq!(stats.workers_alive, 0);
        let readers = db.reader.as_ref().expect("a SQLite file has readers");
        let mut reader = readers.get().await.unwrap();
        let limits: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM rustyray_limits").fetch_one(&mut *reader).await.unwrap();
        assert_eq!(limits, 0, "uncommitted rows are not seen");
        tx.commit().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_one_trip_write_leaves_nothing_and_no_open_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = sqlite_db(&dir).await;
        let writer = &writer;
        let count = || async {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rustyray_limits").fetch_one(writer).await.unwrap();
            n
        };
        // The first statement writes, the second fails (the same key twice):
        // the batch is one transaction, so the first write is undone too.
        static FAILING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let failing = FAILING.get_or_init(|| {
            sqlite_transaction(
                "INSERT INTO rustyray_limits (queue, max_running) VALUES (?1, 1); \
                 INSERT INTO rustyray_limits (queue, max_running) VALUES (?1, 2)",
            )
        });
        let mut args = sqlx::sqlite::SqliteArguments::default();
        sqlite_arg(&db, &mut args, "q".to_string()).unwrap();
        let Err(error) = sqlite_write_once(&db, writer, failing, args).await else { panic!("the batch failed") };
        assert!(error.to_string().contains("UNIQUE"), "{error}");
        assert_eq!(count().await, 0, "the failed batch left nothing behind");
        // The one writer connection is not left inside the failed transaction:
        // the next batch begins, commits and is seen.
        static WORKING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let working = WORKING.get_or_init(|| {
            sqlite_transaction("INSERT INTO rustyray_limits (queue, max_running) VALUES (?1, 1) RETURNING queue")
        });
        let mut args = sqlx::sqlite::SqliteArguments::default();
        sqlite_arg(&db, &mut args, "q".to_string()).unwrap();
        let rows = sqlite_write_once(&db, writer, working, args).await.unwrap();
        assert_eq!(rows.len(), 1, "the statement's rows come back");
        assert_eq!(count().await, 1);
    }
}
