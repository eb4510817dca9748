//! [`PgResource`]: one PostgreSQL database as a 2PC participant, with in-doubt listing.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tandem_participant::xa::{pg, LocalError, Op, Xid};
use tokio_postgres::Client;

use super::pool::PgPool;
use super::{found, local_error, transient, xid};
use crate::participant::{BranchError, Resource, Vote};
use crate::recovery::{InDoubt, InDoubtXact};
use crate::transport::CallRequest;

/// The unit of work a transaction does on this database, from the branch's call (its
/// payload says what to do). Runs inside the transaction: use only the client given.
/// [`BranchError::Failure`] votes no; [`BranchError::Transient`] is retried or aborts.
pub type PgWork = Arc<
    dyn for<'a> Fn(&'a Client, &'a CallRequest) -> BoxFuture<'a, Result<(), BranchError>>
        + Send
        + Sync,
>;

/// Makes a [`PgWork`] from a closure (this fixes the closure's lifetimes for the compiler):
/// `pg_work(|client, call| Box::pin(async move { … }))`.
pub fn pg_work<F>(f: F) -> PgWork
where
    F: for<'a> Fn(&'a Client, &'a CallRequest) -> BoxFuture<'a, Result<(), BranchError>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(f)
}

/// A PostgreSQL database as an XA resource (`PREPARE TRANSACTION`).
pub struct PgResource {
    pool: PgPool,
    work: PgWork,
}

impl PgResource {
    /// At most `connections_max` connections to `url` are open at once.
    pub fn new(url: impl Into<String>, connections_max: usize, work: PgWork) -> PgResource {
        PgResource {
            pool: PgPool::new(url, connections_max),
            work,
        }
    }

    async fn finish(&self, xid: &Xid, op: Op) -> Result<(), BranchError> {
        let conn = self.pool.get().await.map_err(unreachable_db)?;
        let f = pg::finish(conn.client(), xid, op)
            .await
            .map_err(transient)?;
        conn.keep();
        found(f)
    }
}

fn unreachable_db(e: tokio_postgres::Error) -> BranchError {
    BranchError::Transient(format!("postgres: {e}"))
}

#[async_trait]
impl Resource for PgResource {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        let xid = xid(call)?;
        let conn = self.pool.get().await.map_err(unreachable_db)?;
        match pg::local(conn.client(), &xid, |c| (self.work)(c, call)).await {
            Ok(()) => {
                conn.keep();
                fail::fail_point!("xa-after-db-prepare");
                Ok(Vote::Yes)
            }
            Err(LocalError::Work(e)) => {
                conn.keep();
                Err(e)
            }
            Err(e) => Err(local_error(e)),
        }
    }

    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.finish(&xid(call)?, Op::Commit).await
    }

    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.finish(&xid(call)?, Op::Rollback).await
    }

    async fn commit_one_phase(&self, call: &CallRequest) -> Result<(), BranchError> {
        let conn = self.pool.get().await.map_err(unreachable_db)?;
        match pg::one_phase(conn.client(), |c| (self.work)(c, call)).await {
            Ok(()) => {
                conn.keep();
                Ok(())
            }
            Err(LocalError::Work(e)) => {
                conn.keep();
                Err(e)
            }
            Err(e) => Err(local_error(e)),
        }
    }
}

#[async_trait]
impl InDoubt for PgResource {
    async fn list_prepared(&self, prefix: &str) -> Result<Vec<InDoubtXact>, BranchError> {
        let conn = self.pool.get().await.map_err(unreachable_db)?;
        let listed = pg::list_prepared(conn.client(), prefix)
            .await
            .map_err(transient)?;
        conn.keep();
        Ok(listed
            .into_iter()
            .map(|p| InDoubtXact {
                xid: p.xid.as_str().to_string(),
                age: p.age,
            })
            .collect())
    }

    async fn resolve(&self, xid: &str, commit: bool) -> Result<(), BranchError> {
        let xid = Xid::new(xid).map_err(|e| BranchError::Failure(e.to_string()))?;
        let op = if commit { Op::Commit } else { Op::Rollback };
        match self.finish(&xid, op).await {
            Err(BranchError::NotPrepared) => Ok(()), // resolved meanwhile: nothing to do
            other => other,
        }
    }
}
