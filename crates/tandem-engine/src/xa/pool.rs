//! A small bounded pool of PostgreSQL connections.
//!
//! At most `max` connections exist; callers past that wait for one. A connection goes back
//! to the pool only when its user says it is clean ([`PgConn::keep`]); one dropped otherwise
//! (an error, a cancelled future mid-transaction) is closed, so no session inside a half
//! transaction is ever handed out again.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, NoTls};

/// Connections to one PostgreSQL database.
pub struct PgPool {
    url: String,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// A connection taken from a [`PgPool`].
pub struct PgConn<'p> {
    client: Option<Client>,
    pool: &'p PgPool,
    _permit: OwnedSemaphorePermit,
}

impl PgPool {
    /// A pool for `url` of at most `max` connections (opened lazily).
    pub fn new(url: impl Into<String>, max: usize) -> PgPool {
        PgPool {
            url: url.into(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    pub async fn get(&self) -> Result<PgConn<'_>, tokio_postgres::Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the pool's semaphore is never closed"));
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(c) => c,
            None => {
                let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "xa pool: connection ended");
                    }
                });
                client
            }
        };
        Ok(PgConn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }
}

impl PgConn<'_> {
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only by keep"))
    }

    /// Returns the connection to the pool: its session is outside any transaction.
    pub fn keep(mut self) {
        if let Some(c) = self.client.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(c);
        }
    }
}
