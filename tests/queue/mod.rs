//! Shared by the durable-queue tests: one database per test, on SQLite and,
//! where `RUSTYRAY_TEST_POSTGRES` names a server, on PostgreSQL too.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustyray::queue::Queue;

/// A database for one test; its files or schema go when it is dropped.
pub struct TestDb {
    pub url: String,
    pub label: &'static str,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

impl TestDb {
    pub async fn queue(&self) -> Queue {
        Queue::builder(&self.url).poll_interval(Duration::from_millis(10)).connect().await.expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, schema)) = self.schema.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    let pool = sqlx::PgPool::connect(&admin).await.ok()?;
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&pool).await.ok()
                })
            })
            .join();
        }
    }
}

pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/jobs.db", dir.path().display());
    TestDb { url, label: "sqlite", _dir: Some(dir), schema: None }
}

/// The PostgreSQL server the tests may use, if any.
pub fn postgres_url() -> Option<String> {
    match std::env::var("RUSTYRAY_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!("RUSTYRAY_TEST_POSTGRES is not set: SKIPPING the PostgreSQL half of the queue tests")
            });
            None
        }
    }
}

pub async fn postgres() -> Option<TestDb> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = postgres_url()?;
    let schema =
        format!("rr_test_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), fastrand::u32(..));
    let pool = sqlx::PgPool::connect(&admin).await.expect("RUSTYRAY_TEST_POSTGRES is set but unreachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.expect("create schema");
    pool.close().await;
    let separator = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{separator}options=-c%20search_path%3D{schema}");
    Some(TestDb { url, label: "postgres", _dir: None, schema: Some((admin, schema)) })
}

/// SQLite always; PostgreSQL when configured.
pub async fn backends() -> Vec<TestDb> {
    let mut all = vec![sqlite()];
    if let Some(pg) = postgres().await {
        all.push(pg);
    }
    all
}

/// Bounds a wait so a lost wake-up fails the test instead of hanging it.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within 60 s"),
    }
}
