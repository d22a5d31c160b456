//! Durable-queue throughput and latency, each beside a baseline measured in
//! the same run: the raw SQL floor (the same rows inserted and updated by
//! hand with sqlx, set-based, in batches of 64).
//!
//! `cargo bench --bench queue` (SQLite; set `RUSTYRAY_TEST_POSTGRES` for
//! PostgreSQL too; `cargo bench --bench queue -- sqlite` for one backend;
//! `QUEUE_BENCH_FIGURES=e2e` for some figures only). Prints one line per
//! figure; BENCHMARKS.md quotes them, with end to end over the floor.

mod queue_db;

use std::time::{Duration, Instant};

use rustyray::queue::{JobState, Queue, Worker};

#[rustyray::remote]
fn noop(i: u64) -> u64 {
    i
}

#[rustyray::remote]
async fn noop_async(i: u64) -> u64 {
    i
}

const N: u64 = 10_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn fresh(label: &str) -> (Queue, String, Option<tempfile::TempDir>) {
    let (url, dir) = queue_db::fresh_url(label).await;
    (Queue::connect(&url).await.unwrap(), url, dir)
}

async fn enqueue_rate(label: &str) -> f64 {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let (q, _, _dir) = fresh(label).await;
        let start = Instant::now();
        noop::enqueue_many(&q, (0..N).map(|i| (i,))).await.unwrap();
        rates.push(N as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

async fn end_to_end(label: &str) -> f64 {
    let (q, _, _dir) = fresh(label).await;
    noop_async::enqueue_many(&q, (0..N).map(|i| (i,))).await.unwrap();
    let start = Instant::now();
    let worker = Worker::builder(&q).concurrency(64).start().await.unwrap();
    loop {
        if q.stats().await.unwrap().count(JobState::Succeeded) == N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = N as f64 / start.elapsed().as_secs_f64();
    worker.shutdown().await;
    rate
}

async fn pickup_latency(label: &str) -> f64 {
    let (q, _, _dir) = fresh(label).await;
    let worker = Worker::builder(&q).concurrency(4).start().await.unwrap();
    let mut samples = Vec::new();
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await; // idle
        let job = noop_async::enqueue(&q, i).await.unwrap();
        job.result().await.unwrap();
        let info = job.info().await.unwrap();
        let started = info.attempt_list[0].started_at.unwrap();
        samples.push((started - info.created_at) as f64 / 1000.0);
    }
    worker.shutdown().await;
    median(samples)
}

/// The floor: the same INSERTs (one batch) and claim+finish UPDATEs (batches of 64) by hand.
async fn raw_sql(label: &str) -> f64 {
    let (_q, url, _dir) = fresh(label).await;
    let start = Instant::now();
    if label == "sqlite" {
        // Set-based, as PostgreSQL's below: rows travel as one JSON array
        // per statement (`json_each`), the fastest hand-written shape.
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows: Vec<(String, String)> =
            (0..N).map(|i| (uuid::Uuid::now_v7().simple().to_string(), format!("[{i}]"))).collect();
        sqlx::query("INSERT INTO rustyray_jobs (id, function, args, queue, priority, state, run_after, options, max_attempts, created_at) SELECT unhex(value ->> '$[0]'), 'f', value ->> '$[1]', 'default', 0, 'QUEUED', 0, '{}', 1, 0 FROM json_each(?)")
            .bind(serde_json::to_string(&rows).unwrap())
            .execute(&pool)
            .await
            .unwrap();
        loop {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                "UPDATE rustyray_jobs SET state = 'RUNNING' WHERE id IN (SELECT id FROM rustyray_jobs WHERE state = 'QUEUED' ORDER BY priority DESC, id LIMIT 64) RETURNING id",
            )
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            if ids.is_empty() {
                break;
            }
            let ids: Vec<String> = ids.iter().map(|id| id.simple().to_string()).collect();
            sqlx::query("UPDATE rustyray_jobs SET state = 'SUCCEEDED', result = '1' WHERE id IN (SELECT unhex(value) FROM json_each(?))")
                .bind(serde_json::to_string(&ids).unwrap())
                .execute(&pool)
                .await
                .unwrap();
        }
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let ids: Vec<uuid::Uuid> = (0..N).map(|_| uuid::Uuid::now_v7()).collect();
        let args: Vec<String> = (0..N).map(|i| format!("[{i}]")).collect();
        sqlx::query("INSERT INTO rustyray_jobs (id, function, args, queue, priority, state, run_after, options, max_attempts, created_at) SELECT id, 'f', a, 'default', 0, 'QUEUED', 0, '{}', 1, 0 FROM unnest($1::uuid[], $2::text[]) AS t(id, a)")
            .bind(&ids).bind(&args).execute(&pool).await.unwrap();
        loop {
            let mut tx = pool.begin().await.unwrap();
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar("UPDATE rustyray_jobs SET state = 'RUNNING' WHERE id IN (SELECT id FROM rustyray_jobs WHERE state = 'QUEUED' ORDER BY priority DESC, id LIMIT 64 FOR UPDATE SKIP LOCKED) RETURNING id").fetch_all(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            if ids.is_empty() {
                break;
            }
            sqlx::query("UPDATE rustyray_jobs SET state = 'SUCCEEDED', result = '1' WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    N as f64 / start.elapsed().as_secs_f64()
}

/// Whether `figure` is measured: all of them unless `QUEUE_BENCH_FIGURES`
/// lists some (`raw,e2e,enqueue,pickup`), to profile one at a time.
fn wanted(figure: &str) -> bool {
    match std::env::var("QUEUE_BENCH_FIGURES") {
        Ok(list) if !list.is_empty() => list.split(',').any(|f| f.trim() == figure),
        _ => true,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut labels = vec!["sqlite"];
    if std::env::var("RUSTYRAY_TEST_POSTGRES").is_ok_and(|u| !u.is_empty()) {
        labels.push("postgres");
    } else {
        eprintln!("RUSTYRAY_TEST_POSTGRES is not set: measuring SQLite only");
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    rt.block_on(async {
        let rrt = rustyray::Runtime::builder().build().unwrap();
        rrt.scope(async {
            for label in labels {
                if filter.as_deref().is_some_and(|f| f != label) {
                    continue;
                }
                if wanted("raw") {
                    let raw = raw_sql(label).await;
                    println!("queue/{label}/raw_sql_floor            {raw:>10.0} jobs/s");
                }
                if wanted("e2e") {
                    let e2e = end_to_end(label).await;
                    println!("queue/{label}/end_to_end_10k           {e2e:>10.0} jobs/s");
                }
                if wanted("enqueue") {
                    let enq = enqueue_rate(label).await;
                    println!("queue/{label}/enqueue_many_10k         {enq:>10.0} jobs/s");
                }
                if wanted("pickup") {
                    let pickup = pickup_latency(label).await;
                    println!("queue/{label}/idle_pickup_p50          {pickup:>10.2} ms");
                }
            }
        })
        .await;
    });
}
