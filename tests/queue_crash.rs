//! Workers killed with SIGKILL at random moments lose no job: 10,000 jobs,
//! two worker processes, at least five kills and restarts. Afterwards every
//! job SUCCEEDED, none is left RUNNING, a job ran twice only when it was
//! running at a kill (it has a LOST attempt), every LOST attempt names its
//! worker, and no two attempts of a job overlapped.

mod queue;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use queue::TestDb;
use rustyray::queue::{AttemptState, JobState, Queue, Worker};

const JOBS: u64 = 10_000;
const KILLS: usize = 6;

/// Appends its id to the log named by `RUSTYRAY_CRASH_LOG`: one line per run.
#[rustyray::remote]
fn record(id: u64) -> Result<u64, String> {
    let path = std::env::var("RUSTYRAY_CRASH_LOG").map_err(|e| e.to_string())?;
    let mut log = std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(|e| e.to_string())?;
    log.write_all(format!("{id}\n").as_bytes()).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1));
    Ok(id)
}

/// The worker process the crash test starts and kills (does nothing when run
/// on its own).
#[test]
#[ignore = "a child process of workers_killed_with_sigkill_lose_no_job"]
fn crash_worker_child() {
    let Ok(url) = std::env::var("RUSTYRAY_CRASH_DB") else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let q = Queue::builder(&url).poll_interval(Duration::from_millis(20)).connect().await.unwrap();
        let _worker = Worker::builder(&q)
            .concurrency(8)
            .heartbeat(Duration::from_millis(100))
            .stuck_timeout(Duration::from_millis(1500))
            .start()
            .await
            .unwrap();
        std::future::pending::<()>().await;
    });
}

fn spawn_worker(db: &TestDb, log: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["crash_worker_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RUSTYRAY_CRASH_DB", &db.url)
        .env("RUSTYRAY_CRASH_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a worker process")
}

async fn crash(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let q = db.queue().await;
    // A job lost at a kill is charged an attempt; retries let it run again.
    let jobs = record::options()
        .max_retries(5)
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .enqueue_many(&q, (0..JOBS).map(|i| (i,)))
        .await
        .unwrap();
    let ids: HashMap<_, u64> = jobs.iter().enumerate().map(|(i, job)| (job.id(), i as u64)).collect();
    let started = Instant::now();
    let mut children = [spawn_worker(&db, &log), spawn_worker(&db, &log)];
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(150 + fastrand::u64(..400))).await;
        let victim = fastrand::usize(..2);
        children[victim].kill().unwrap(); // SIGKILL
        children[victim].wait().unwrap();
        kills += 1;
        children[victim] = spawn_worker(&db, &log);
    }
    let last_kill = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let stats = q.stats().await.unwrap();
        if stats.count(JobState::Succeeded) == JOBS {
            break;
        }
        assert!(Instant::now() < deadline, "{}: jobs still unfinished: {stats:?}", db.label);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_after = last_kill.elapsed();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.count(JobState::Running), 0, "{}", db.label);
    assert_eq!(stats.count(JobState::Queued), 0, "{}", db.label);

    let mut runs: HashMap<u64, u32> = HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        *runs.entry(line.parse().unwrap()).or_default() += 1;
    }
    assert_eq!(runs.len() as u64, JOBS, "{}: every job ran", db.label);
    let mut duplicates = 0;
    let mut lost = 0;
    for (id, arg) in &ids {
        let info = q.job(*id).await.unwrap();
        assert_eq!(info.state, JobState::Succeeded);
        let succeeded = info.attempt_list.iter().filter(|a| a.state == AttemptState::Succeeded).count();
        assert_eq!(succeeded, 1, "{}: job {id} has one SUCCEEDED attempt", db.label);
        let lost_here = info.attempt_list.iter().filter(|a| a.state == AttemptState::Lost).count();
        for a in info.attempt_list.iter().filter(|a| a.state == AttemptState::Lost) {
            assert!(a.worker_id.is_some(), "a LOST attempt names its worker");
            assert_eq!(a.error_class.as_deref(), Some("Lost"));
        }
        for pair in info.attempt_list.windows(2) {
            assert!(
                pair[1].submitted_at >= pair[0].finished_at.unwrap(),
                "{}: job {id}: attempt {} began before attempt {} ended",
                db.label,
                pair[1].attempt,
                pair[0].attempt
            );
        }
        lost += lost_here;
        if runs[arg] > 1 {
            duplicates += 1;
            assert!(lost_here > 0, "{}: job {id} ran {} times but lost no attempt", db.label, runs[arg]);
        }
    }
    assert!(lost > 0, "{}: {KILLS} kills mid-run lost no attempt: the kills missed the run", db.label);
    eprintln!(
        "crash test ({}): {JOBS} jobs, {kills} SIGKILLs, {lost} LOST attempts recovered, {duplicates} jobs ran twice, \
         all done {:.1}s after the last kill ({:.1}s in all)",
        db.label,
        recovered_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_with_sigkill_lose_no_job_sqlite() {
    crash(queue::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_with_sigkill_lose_no_job_postgres() {
    match queue::postgres().await {
        Some(db) => crash(db).await,
        None => eprintln!("SKIPPED: set RUSTYRAY_TEST_POSTGRES to run the PostgreSQL crash test"),
    }
}
