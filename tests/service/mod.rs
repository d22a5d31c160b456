//! Shared by the service tests: a real server on a loopback port over a
//! test database, with a read and an admin token.

#![allow(dead_code)]

use std::net::SocketAddr;

use rustyray::queue::Queue;
use rustyray::service::{Role, Service, ServiceBuilder, Tokens};
use tokio::sync::oneshot;

pub const READ: &str = "read-token-for-tests-0123456789";
pub const ADMIN: &str = "admin-token-for-tests-0123456789";

/// A running service; it stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(q: &Queue) -> Server {
        Self::start_with(q, |b| b).await
    }

    pub async fn start_with(q: &Queue, configure: impl FnOnce(ServiceBuilder) -> ServiceBuilder) -> Server {
        let tokens = Tokens::new().with(READ, Role::Read).with(ADMIN, Role::Admin);
        let service = configure(Service::builder(q).tokens(tokens)).build().await.expect("service builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            service
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Server { addr, base: format!("http://{addr}"), stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}
