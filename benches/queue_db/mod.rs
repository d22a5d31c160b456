//! A fresh queue database for one measurement: a SQLite file in a temporary
//! directory, or a new schema on the PostgreSQL server `RUSTYRAY_TEST_POSTGRES`
//! names. Shared by the queue and service benches.

/// The URL of a new, empty database on `label` (`sqlite` or `postgres`),
/// and the directory to keep alive while it is used.
pub async fn fresh_url(label: &str) -> (String, Option<tempfile::TempDir>) {
    if label == "sqlite" {
        let dir = tempfile::tempdir().expect("a temporary directory");
        (format!("sqlite://{}/bench.db", dir.path().display()), Some(dir))
    } else {
        let admin = std::env::var("RUSTYRAY_TEST_POSTGRES").expect("RUSTYRAY_TEST_POSTGRES names the server");
        let schema = format!("rr_bench_{}", fastrand::u32(..));
        let pool = sqlx::PgPool::connect(&admin).await.expect("PostgreSQL is reachable");
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.expect("a schema");
        let sep = if admin.contains('?') { '&' } else { '?' };
        (format!("{admin}{sep}options=-c%20search_path%3D{schema}"), None)
    }
}
