//! [`MysqlResource`]: one MySQL/MariaDB database as a 2PC participant, with in-doubt
//! listing. Each prepare uses a connection of its own and closes it (see
//! `tandem_participant::xa::mysql`: a prepared branch must be detached from its session
//! before another session can finish it).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::BoxFuture;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tandem_participant::xa::{mysql, FirstSeen, Op, XaError, Xid};

use super::{found, local_error, transient, xid};
use crate::participant::{BranchError, Resource, Vote};
use crate::recovery::{InDoubt, InDoubtXact};
use crate::transport::CallRequest;

/// The unit of work a transaction does on this database, from the branch's call. Runs
/// inside the XA branch: use only the connection given. [`BranchError::Failure`] votes no.
pub type MysqlWork = Arc<
    dyn for<'a> Fn(&'a mut Conn, CallRequest) -> BoxFuture<'a, Result<(), BranchError>>
        + Send
        + Sync,
>;

/// Makes a [`MysqlWork`] from a closure (this fixes the closure's lifetimes for the
/// compiler): `mysql_work(|conn, call| Box::pin(async move { … }))`.
pub fn mysql_work<F>(f: F) -> MysqlWork
where
    F: for<'a> Fn(&'a mut Conn, CallRequest) -> BoxFuture<'a, Result<(), BranchError>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(f)
}

/// A MySQL/MariaDB database as an XA resource (`XA START … XA PREPARE`).
pub struct MysqlResource {
    pool: Pool,
    work: MysqlWork,
    /// `XA RECOVER` gives no ages: when each xid was first listed.
    seen: Mutex<FirstSeen>,
}

impl MysqlResource {
    /// At most `connections_max` connections to `url` are open at once.
    pub fn new(
        url: &str,
        connections_max: usize,
        work: MysqlWork,
    ) -> Result<MysqlResource, XaError> {
        let opts = Opts::from_url(url).map_err(|e| XaError::Mysql(e.into()))?;
        let max = connections_max.max(1);
        let constraints = PoolConstraints::new(0, max)
            .ok_or_else(|| XaError::Protocol(format!("bad pool size {max}")))?;
        let opts = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        Ok(MysqlResource {
            pool: Pool::new(opts),
            work,
            seen: Mutex::new(FirstSeen::default()),
        })
    }

    async fn conn(&self) -> Result<Conn, BranchError> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| BranchError::Transient(format!("mysql: {e}")))
    }

    async fn finish(&self, xid: &Xid, op: Op) -> Result<(), BranchError> {
        let mut conn = self.conn().await?;
        found(mysql::finish(&mut conn, xid, op).await.map_err(transient)?)
    }
}

#[async_trait]
impl Resource for MysqlResource {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        let xid = xid(call)?;
        let conn = self.conn().await?;
        let work = self.work.clone();
        let owned = call.clone();
        match mysql::local(conn, &xid, move |c| work(c, owned)).await {
            Ok(()) => {
                fail::fail_point!("xa-after-db-prepare");
                Ok(Vote::Yes)
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
        let mut conn = self.conn().await?;
        let work = self.work.clone();
        let owned = call.clone();
        mysql::one_phase(&mut conn, move |c| work(c, owned))
            .await
            .map_err(local_error)
    }
}

#[async_trait]
impl InDoubt for MysqlResource {
    async fn list_prepared(&self, prefix: &str) -> Result<Vec<InDoubtXact>, BranchError> {
        let mut conn = self.conn().await?;
        let xids = mysql::list_prepared(&mut conn, prefix)
            .await
            .map_err(transient)?;
        let aged = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(xids);
        Ok(aged
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
