//! The barrier wrapper: a handler's business code run inside the barrier's local
//! transaction in one call, on PostgreSQL, MySQL/MariaDB or SQLite, answered as the
//! coordinator expects.
//!
//! ```text
//!  begin ─► barrier rows ─► admitted? ─ yes ─► work(tx) ─ Ok ──► commit ─► Success
//!                               │                   └─ Err(e) ─► rollback ─► Failure / Ongoing / Error
//!                               └─ no: duplicate or null compensation ─► commit ─► Success
//!                                      refused (compensation came first) ─► commit ─► Failure
//! ```
//!
//! The barrier rows and the business writes commit together or not at all, so a call that
//! failed leaves nothing behind and its retry runs the work again.

use std::sync::{Arc, Mutex};

use super::call::BranchCall;
use super::reply::{BranchError, Reply};
use crate::barrier::{mysql, postgres, sqlite, CallError, Outcome};

fn reply(done: Result<Outcome<()>, CallError<BranchError>>) -> Reply {
    match done {
        Ok(outcome) => outcome.into(),
        Err(CallError::Business(e)) => e.into(),
        Err(CallError::Barrier(e)) => Reply::Error(e.to_string()),
    }
}

impl BranchCall {
    /// Runs `work` inside the barrier transaction on PostgreSQL (`client` from any pool;
    /// default table `dtm_barrier.barrier`). Write `work` as
    /// `|tx| Box::pin(async move { ...; Ok(()) })`.
    pub async fn postgres<F>(&self, client: &mut tokio_postgres::Client, work: F) -> Reply
    where
        F: for<'t> FnOnce(
            &'t tokio_postgres::Transaction<'t>,
        ) -> postgres::BusinessFuture<'t, (), BranchError>,
    {
        let mut b = self.barrier();
        reply(postgres::call(&mut b, client, work).await)
    }

    /// Runs `work` inside the barrier transaction on MySQL/MariaDB (default table
    /// `dtm_barrier.barrier`). Write `work` as `|tx| Box::pin(async move { ...; Ok(()) })`.
    pub async fn mysql<F>(&self, conn: &mut mysql_async::Conn, work: F) -> Reply
    where
        F: for<'t, 'c> FnOnce(
            &'t mut mysql_async::Transaction<'c>,
        ) -> mysql::BusinessFuture<'t, (), BranchError>,
    {
        let mut b = self.barrier();
        reply(mysql::call(&mut b, conn, work).await)
    }

    /// Runs `work` inside the barrier transaction on SQLite (default table `barrier`), on a
    /// blocking thread; the connection is held for the whole transaction.
    pub async fn sqlite<F>(&self, db: &Arc<Mutex<rusqlite::Connection>>, work: F) -> Reply
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<(), BranchError> + Send + 'static,
    {
        let (mut b, db) = (self.barrier(), db.clone());
        let ran = tokio::task::spawn_blocking(move || {
            let mut conn = db
                .lock()
                .map_err(|_| "the SQLite connection's lock is poisoned".to_owned())?;
            Ok::<_, String>(sqlite::call(&mut b, &mut conn, work))
        })
        .await;
        match ran {
            Ok(Ok(done)) => reply(done),
            Ok(Err(e)) => Reply::Error(e),
            Err(e) => Reply::Error(format!("the business code panicked or was cancelled: {e}")),
        }
    }

    /// Answers a transactional message's check on PostgreSQL (the local transaction ran
    /// through `Barrier::for_msg(gid)` on the same table).
    pub async fn query_prepared_postgres(&self, client: &tokio_postgres::Client) -> Reply {
        match postgres::query_prepared(&self.barrier(), client).await {
            Ok(s) => s.into(),
            Err(e) => Reply::Error(e.to_string()),
        }
    }

    /// Answers a transactional message's check on MySQL/MariaDB.
    pub async fn query_prepared_mysql(&self, conn: &mut mysql_async::Conn) -> Reply {
        match mysql::query_prepared(&self.barrier(), conn).await {
            Ok(s) => s.into(),
            Err(e) => Reply::Error(e.to_string()),
        }
    }

    /// Answers a transactional message's check on SQLite.
    pub async fn query_prepared_sqlite(&self, db: &Arc<Mutex<rusqlite::Connection>>) -> Reply {
        let (b, db) = (self.barrier(), db.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let conn = db
                .lock()
                .map_err(|_| "the SQLite connection's lock is poisoned".to_owned())?;
            sqlite::query_prepared(&b, &conn).map_err(|e| e.to_string())
        })
        .await;
        match checked {
            Ok(Ok(s)) => s.into(),
            Ok(Err(e)) => Reply::Error(e),
            Err(e) => Reply::Error(format!("the check panicked or was cancelled: {e}")),
        }
    }
}
