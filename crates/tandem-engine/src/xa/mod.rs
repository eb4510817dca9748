//! XA resources for library mode: a 2PC participant that is a real database, PostgreSQL
//! ([`PgResource`]) or MySQL/MariaDB ([`MysqlResource`]), running a caller-supplied unit of
//! work per transaction.
//!
//! ```text
//!  prepare  ─► BEGIN / XA START; work(call); PREPARE TRANSACTION / XA END+PREPARE  call.xid
//!  commit   ─► COMMIT PREPARED / XA COMMIT        (not prepared: NotPrepared, the engine judges)
//!  rollback ─► ROLLBACK PREPARED / XA ROLLBACK    (not prepared: NotPrepared = rolled back)
//!  one phase (the only participant) ─► BEGIN; work(call); COMMIT — no xid at all
//! ```
//!
//! Both implement [`crate::InDoubt`], so registering one with
//! [`crate::CoordinatorBuilder::xa_resource`] also puts it under in-doubt recovery. They use
//! the xid the engine gives each call ([`crate::CallRequest::xid`]: built from the store's
//! durable identity, the gid, the branch and the transaction's nonce — never from today's
//! configuration), and report "nothing prepared under this xid" as
//! [`BranchError::NotPrepared`] for the engine to judge.
//!
//! Why here, behind the `xa` feature: the SQL half lives in `tandem-participant` (which
//! participant services link, and which knows nothing of the engine); the engine adapts it
//! to its [`crate::Resource`] and [`crate::InDoubt`] traits. Dependencies point one way,
//! engine → participant, and builds without XA do not compile database drivers.
//!
//! Failpoint `xa-after-db-prepare`: the database has prepared, the vote is not yet back in
//! the engine (so not logged) — the crash the log cannot see.

mod mysql;
mod pg;
mod pool;

pub use mysql::{mysql_work, MysqlResource, MysqlWork};
pub use pg::{pg_work, PgResource, PgWork};
pub use pool::PgPool;

use tandem_participant::xa::{Finished, LocalError, XaError, Xid};

use crate::participant::BranchError;
use crate::transport::CallRequest;

/// The xid the engine gave `call`'s branch.
fn xid(call: &CallRequest) -> Result<Xid, BranchError> {
    let Some(xid) = call.xid.as_deref() else {
        return Err(BranchError::Failure(format!(
            "{} of {} is not a 2PC branch: it has no xid",
            call.op.as_str(),
            call.gid
        )));
    };
    // A bad xid (too long for the database) will never work: refuse the vote.
    Xid::new(xid).map_err(|e| BranchError::Failure(e.to_string()))
}

/// Phase 2's finding as the engine hears it.
fn found(f: Finished) -> Result<(), BranchError> {
    match f {
        Finished::Done => Ok(()),
        Finished::NotPrepared => Err(BranchError::NotPrepared),
    }
}

fn transient(e: XaError) -> BranchError {
    match e {
        XaError::Xid(e) => BranchError::Failure(e.to_string()),
        e => BranchError::Transient(e.to_string()),
    }
}

fn local_error(e: LocalError<BranchError>) -> BranchError {
    match e {
        LocalError::Work(e) => e,
        LocalError::Xa(e) => transient(e),
    }
}
