//! An actor + task hybrid: a parameter server (an actor holding model
//! weights) updated by many worker tasks.
//!
//! Each worker task reads the current weights from the server, computes a
//! gradient on its shard of data (CPU work, in a plain task body), and sends
//! it back to the server. The server applies updates one at a time, in order.

use rustyray::prelude::*;

/// The shared state: weights of a linear model y = w0 + w1 x.
#[rustyray::actor]
pub struct ParameterServer {
    weights: Vec<f64>,
    updates: u64,
}

#[rustyray::actor]
impl ParameterServer {
    pub fn new(dims: usize) -> Self {
        ParameterServer { weights: vec![0.0; dims], updates: 0 }
    }

    /// Applies a gradient step; returns how many updates were applied so far.
    pub fn apply(&mut self, gradient: Vec<f64>, rate: f64) -> u64 {
        for (w, g) in self.weights.iter_mut().zip(&gradient) {
            *w -= rate * g;
        }
        self.updates += 1;
        self.updates
    }

    pub fn weights(&self) -> Vec<f64> {
        self.weights.clone()
    }
}

/// The gradient of the squared error of y = w0 + w1 x on `shard` of the data
/// (points of the line y = 3 + 2x).
fn gradient(weights: &[f64], shard: u64) -> Vec<f64> {
    let (mut g0, mut g1) = (0.0, 0.0);
    let points = 1000;
    for i in 0..points {
        let x = ((shard * points + i) % 997) as f64 / 997.0;
        let y = 3.0 + 2.0 * x;
        let error = weights[0] + weights[1] * x - y;
        g0 += error;
        g1 += error * x;
    }
    vec![g0 / points as f64, g1 / points as f64]
}

/// A worker: `steps` rounds of read weights -> compute gradient -> push it.
#[rustyray::remote]
fn worker(server: ActorHandle<ParameterServer>, shard: u64, steps: u32) -> Result<u64, rustyray::Error> {
    let mut applied = 0;
    for _ in 0..steps {
        let weights = server.weights().get_blocking()?;
        let g = gradient(&weights, shard);
        applied = server.apply(g, 0.05).get_blocking()?;
    }
    Ok(applied)
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;
    let server = ParameterServer::remote(2);
    let workers = 8;
    let steps = 100;
    let runs: Vec<ObjectRef<u64>> = (0..workers).map(|shard| worker::remote(server.clone(), shard, steps)).collect();
    rustyray::get_all(&runs).await?;
    let weights = server.weights().get().await?;
    println!("{workers} workers x {steps} steps: weights = [{:.3}, {:.3}] (target [3, 2])", weights[0], weights[1]);
    for actor in rt.actors() {
        println!("{} ({}): {}, {} restarts", actor.id, actor.class, actor.state, actor.restarts);
    }
    let stats = rt.stats();
    println!("{} tasks and calls succeeded, {} failed", stats.succeeded, stats.failed);
    rt.shutdown().await;
    Ok(())
}
