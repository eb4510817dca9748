//! XA resources for library mode: a 2PC participant that is a real database, PostgreSQL
//! ([`PgResource`]) or MySQL/MariaDB ([`MysqlResource`]), running a caller-supplied unit of
//! work per transaction.
//!
//! ```text
//!  prepare  ─► BEGIN / XA START; work(call); PREPARE TRANSACTION / XA END+PREPARE  'node:gid:branch'
//!  commit   ─► COMMIT PREPARED / XA COMMIT        (not prepared any more: success)
//!  rollback ─► ROLLBACK PREPARED / XA ROLLBACK    (never prepared: success)
//!  one phase (the only participant) ─► BEGIN; work(call); COMMIT — no xid at all
//! ```
//!
//! Both implement [`crate::InDoubt`], so registering one with
//! [`crate::CoordinatorBuilder::xa_resource`] also puts it under in-doubt recovery. Their
//! xids are [`crate::recovery::branch_xid`]`(node, gid, branch_id)`, with `node` equal to
//! `EngineConfig::node_name` (checked at start).
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

use tandem_participant::xa::{LocalError, XaError, Xid};

use crate::participant::BranchError;
use crate::transport::CallRequest;

/// The xid of `call`'s branch for coordinator `node`.
fn xid(node: &str, call: &CallRequest) -> Result<Xid, BranchError> {
    // A bad xid (too long for the database) will never work: refuse the vote.
    Xid::new(crate::recovery::branch_xid(
        node,
        &call.gid,
        &call.branch_id,
    ))
    .map_err(|e| BranchError::Failure(e.to_string()))
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
