//! Actor concurrency groups through the public API: a full group does not
//! hold back another group's calls, each group runs up to its own limit with
//! its calls started in order, and options override a declared limit.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use rustyray::prelude::*;
use std::sync::Mutex;
use tokio::sync::Semaphore;

#[rustyray::actor]
pub struct Server {
    /// Calls in the `compute` and `io` groups wait here for the test to let them finish.
    gate: Semaphore,
    /// When waiting calls give up on the gate: should a test fail, its stuck
    /// calls end, so the runtime (and the test) can too.
    give_up: tokio::time::Instant,
    io_in_flight: AtomicUsize,
    io_peak: AtomicUsize,
    io_started: Mutex<Vec<u64>>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            gate: Semaphore::new(0),
            give_up: tokio::time::Instant::now() + Duration::from_secs(90),
            io_in_flight: AtomicUsize::new(0),
            io_peak: AtomicUsize::new(0),
            io_started: Mutex::new(Vec::new()),
        }
    }
}

#[rustyray::actor(concurrency_groups(compute = 1, io = 2, health = 1))]
impl Server {
    pub fn new() -> Self {
        Server::default()
    }

    /// A long computation: finishes when the gate lets it.
    #[rustyray::method(concurrency_group = "compute")]
    pub async fn compute(&self, i: u64) -> u64 {
        self.pass().await;
        i
    }

    /// A request: records its start, counts itself in flight, finishes when the gate lets it.
    #[rustyray::method(concurrency_group = "io")]
    pub async fn fetch(&self, i: u64) -> u64 {
        self.io_started.lock().unwrap_or_else(|e| e.into_inner()).push(i);
        let now = self.io_in_flight.fetch_add(1, SeqCst) + 1;
        self.io_peak.fetch_max(now, SeqCst);
        self.pass().await;
        self.io_in_flight.fetch_sub(1, SeqCst);
        i
    }

    #[rustyray::method(concurrency_group = "health")]
    pub async fn ping(&self) -> String {
        "ok".to_string()
    }

    #[rustyray::method(concurrency_group = "health")]
    pub async fn io_in_flight(&self) -> usize {
        self.io_in_flight.load(SeqCst)
    }

    /// In the default group: lets `permits` waiting calls finish.
    pub async fn open(&self, permits: usize) {
        self.gate.add_permits(permits);
    }

    /// A plain method: runs alone, after the interleaved calls.
    pub fn io_report(&self) -> (usize, Vec<u64>) {
        (self.io_peak.load(SeqCst), self.io_started.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn pass(&self) {
        if let Ok(Ok(permit)) = tokio::time::timeout_at(self.give_up, self.gate.acquire()).await {
            permit.forget();
        }
    }
}

fn runtime() -> Runtime {
    Runtime::builder().num_cpus(2).build().unwrap()
}

/// Keeps a hang (calls that wait for a full group) from stalling the run; a
/// generous bound, not a measure of speed.
async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), work).await.unwrap_or_else(|_| panic!("{what} never finished"))
}

/// Asks (through the `health` group) until `n` `io` calls are in flight.
async fn until_io_in_flight(server: &ActorHandle<Server>, n: usize) {
    while server.io_in_flight().get().await.unwrap() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_group_does_not_hold_back_another_groups_calls() {
    let rt = runtime();
    rt.scope(async {
        let server = Server::remote();
        // `compute` allows one call: the first waits at the gate, the second in line.
        let first = server.compute(1);
        let second = server.compute(2);
        // Nothing has opened the gate, so `ping` answers only if it does not
        // wait behind the `compute` calls.
        let pong = within("ping beside a full group", server.ping().get()).await.unwrap();
        assert_eq!(pong, "ok");
        server.open(2).get().await.unwrap();
        assert_eq!(within("compute", rustyray::get_all(&[first, second])).await.unwrap(), vec![1, 2]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_runs_up_to_its_limit_and_starts_its_calls_in_order() {
    let rt = runtime();
    rt.scope(async {
        let server = Server::remote();
        let calls: Vec<ObjectRef<u64>> = (0..6).map(|i| server.fetch(i)).collect();
        within("two io calls in flight", until_io_in_flight(&server, 2)).await;
        // Let them through one at a time.
        for _ in 0..6 {
            server.open(1).get().await.unwrap();
        }
        assert_eq!(within("io calls", rustyray::get_all(&calls)).await.unwrap(), (0..6).collect::<Vec<_>>());
        let (peak, started) = server.io_report().get().await.unwrap();
        assert_eq!(peak, 2, "the io group allows two calls at once, and two ran together");
        assert_eq!(started, (0..6).collect::<Vec<_>>(), "a group's calls start in the order they were made");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_set_a_declared_groups_limit_and_refuse_an_unknown_group() {
    let rt = runtime();
    rt.scope(async {
        let server = Server::options().concurrency_group("io", 3).remote();
        let calls: Vec<ObjectRef<u64>> = (0..6).map(|i| server.fetch(i)).collect();
        within("three io calls in flight", until_io_in_flight(&server, 3)).await;
        server.open(6).get().await.unwrap();
        within("io calls", rustyray::get_all(&calls)).await.unwrap();
        assert_eq!(server.io_report().get().await.unwrap().0, 3);

        let unknown = Server::options().concurrency_group("gpu", 1).remote();
        let error = unknown.ready().await.unwrap_err();
        assert!(
            matches!(&error, Error::InvalidOption { option: "concurrency_group", reason } if reason.contains("gpu")
                && reason.contains("compute, io, health")),
            "{error}"
        );
        let zero = Server::options().concurrency_group("io", 0).remote();
        assert!(matches!(zero.ready().await, Err(Error::InvalidOption { option: "concurrency_group", .. })));
    })
    .await;
}
