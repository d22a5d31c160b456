//! How a queue hears that something changed: a job became ready, a job moved
//! to a new state, a cancel was asked for.
//!
//! Changes made through this process's `Queue` are sent at once. Changes
//! made by other processes arrive through PostgreSQL's LISTEN/NOTIFY; with
//! SQLite, other processes' changes are seen by a short poll.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::db::{Db, Pool};
use crate::model::{JobId, JobState};

/// A change to the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// New jobs may be ready to claim.
    Ready,
    /// A job moved to `state`.
    Moved(JobId, JobState),
    /// A cancel was asked for a running job.
    CancelRequested(JobId),
    /// Lifecycle events were written (PostgreSQL only: another process's).
    Events,
}

/// The channel signals travel on.
pub type Signals = broadcast::Sender<Signal>;

/// Starts forwarding PostgreSQL notifications into `signals`; for SQLite,
/// does nothing. The task ends when the last receiver and sender are gone.
pub fn listen(db: &Db, signals: &Signals) -> Option<tokio::task::JoinHandle<()>> {
    let Pool::Postgres(pool) = &db.pool else { return None };
    let pool = pool.clone();
    let signals = signals.downgrade();
    let url: Arc<str> = db.url.clone();
    Some(tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            let listener = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen_all(["rustyray_ready", "rustyray_events", "rustyray_cancel", "rustyray_feed"]).await?;
                Ok::<_, sqlx::Error>(listener)
            }
            .await;
            let mut listener = match listener {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(database = %url, %error, "cannot listen for queue notifications; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            delay = Duration::from_millis(100);
            loop {
                let notification = match listener.try_recv().await {
                    Ok(Some(notification)) => notification,
                    // The connection dropped: tell waiters to look again, then reconnect.
                    Ok(None) => {
                        let Some(signals) = signals.upgrade() else { return };
                        let _ = signals.send(Signal::Ready);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(database = %url, %error, "queue notifications interrupted");
                        break;
                    }
                };
                let Some(signals) = signals.upgrade() else { return };
                let signal = match notification.channel() {
                    "rustyray_ready" => Some(Signal::Ready),
                    "rustyray_cancel" => notification.payload().parse().ok().map(Signal::CancelRequested),
                    "rustyray_feed" => Some(Signal::Events),
                    _ => parse_moved(notification.payload()),
                };
                if let Some(signal) = signal {
                    let _ = signals.send(signal);
                }
            }
        }
    }))
}

fn parse_moved(payload: &str) -> Option<Signal> {
    let (id, state) = payload.split_once(':')?;
    Some(Signal::Moved(id.parse().ok()?, state.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_payloads_parse() {
        let id = JobId::new();
        assert_eq!(parse_moved(&format!("{id}:SUCCEEDED")), Some(Signal::Moved(id, JobState::Succeeded)));
        assert_eq!(parse_moved("garbage"), None);
    }
}
