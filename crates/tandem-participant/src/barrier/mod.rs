//! The sub-transaction barrier: makes repeated, out-of-order and late branch calls harmless,
//! inside the participant's own local database transaction.
//!
//! The coordinator calls each branch at least once (retries after timeouts and crashes), and a
//! compensation may overtake the action it undoes. The barrier turns that into exactly-once
//! business effects by recording `(gid, branch_id, op, barrier_id)` in a table of the
//! participant's own database, in the same local transaction as the business writes, so the
//! record and the effect commit or roll back together:
//!
//! - **idempotency**: a repeated op finds its own row and is a [`Skip::Duplicate`];
//! - **null compensation**: a cancel/compensate/rollback whose try/action never ran inserts the
//!   try/action row on its behalf (reason = the compensating op) and is a successful no-op,
//!   [`Skip::NullCompensation`];
//! - **no hanging**: the late try/action then finds that row, written by its compensation, and
//!   is [`Skip::Refused`]; the handler answers FAILURE (HTTP 409). A `/v1/2pc` `prepare` counts
//!   as the action its `rollback` undoes ([`row_op`]);
//! - **one second phase**: confirm and cancel (commit and rollback) of a branch exclude each
//!   other — the first also writes the other's row ([`opposite_op`]), so the other, should
//!   it ever come, is [`Skip::Refused`] and takes no effect (DTM's barrier lacks this).
//!
//! ```text
//!  enter(op) --insert-ignore origin row (only for cancel/compensate/rollback)-->
//!            --insert-ignore current row----------------------------------------+
//!            --insert-ignore opposite row (only for confirm/cancel/commit/rollback, once
//!              the current row was inserted)
//!     current inserted, origin inserted too ........ NullCompensation (commit, no business)
//!     current inserted ............................. Run (business, then commit)
//!     current existed, its reason == op ............ Duplicate (success, no business)
//!     current existed, its reason != op ............ Refused (FAILURE, no business)
//! ```
//!
//! The table layout, the unique key, the barrier ids ("01", "02", ... per handler call), the
//! origin-op mapping and the transactional-message check ([`MsgStatus`], DTM's
//! `QueryPrepared`) are those of DTM's `dtm_barrier.barrier`, so DTM users keep their tables.
//! One module per database: [`postgres`], [`mysql`], [`sqlite`].
//!
//! A saga step on PostgreSQL, in a handler (any framework) given the call's query string:
//!
//! ```no_run
//! # async fn handler(client: &mut tokio_postgres::Client, query: &str) -> Result<u16, Box<dyn std::error::Error>> {
//! use tandem_participant::barrier::{postgres, Barrier, CallError, Outcome};
//! let mut barrier = Barrier::from_query(query)?; // trans_type, gid, branch_id, op
//! let done = postgres::call(&mut barrier, client, |tx| {
//!     Box::pin(async move {
//!         let n = tx
//!             .execute("UPDATE account SET balance = balance - 30 WHERE id = 1 AND balance >= 30", &[])
//!             .await
//!             .map_err(|e| e.to_string())?;
//!         if n == 0 {
//!             return Err("insufficient funds".to_string()); // rolls the barrier row back too
//!         }
//!         Ok(())
//!     })
//! })
//! .await;
//! Ok(match done {
//!     Ok(outcome) if outcome.is_failure() => 409, // refused: its compensation came first
//!     Ok(_) => 200,                               // ran, duplicate, or null compensation
//!     Err(CallError::Business(_)) => 409,         // business failure: FAILURE
//!     Err(CallError::Barrier(_)) => 500,          // database trouble: call me again
//! })
//! # }
//! ```

mod branch;
mod decision;
mod error;
pub mod mysql;
pub mod postgres;
pub mod sqlite;
mod table;

pub use branch::Barrier;
pub use decision::{opposite_op, origin_op, row_op, Admission, Outcome, Skip};
pub use error::{CallError, Error, Result};
pub use table::{DEFAULT_SQLITE_TABLE, DEFAULT_TABLE};

/// What the message check found for a transactional message's local transaction
/// (DTM's `QueryPrepared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgStatus {
    /// The local transaction committed: answer SUCCESS, the coordinator delivers the message.
    Committed,
    /// The local transaction did not commit and now never will (the check inserted the
    /// blocking row first): answer FAILURE, the coordinator drops the message.
    RolledBack,
}

/// The op names of the DTM convention.
pub mod ops {
    /// TCC first phase.
    pub const TRY: &str = "try";
    /// TCC second phase, commit.
    pub const CONFIRM: &str = "confirm";
    /// TCC second phase, undo of `try`.
    pub const CANCEL: &str = "cancel";
    /// Saga forward step (also message and XA branches).
    pub const ACTION: &str = "action";
    /// Saga undo of `action`.
    pub const COMPENSATE: &str = "compensate";
    /// XA second phase, commit.
    pub const COMMIT: &str = "commit";
    /// XA second phase (and workflow) undo; its origin is `action`.
    pub const ROLLBACK: &str = "rollback";
    /// First phase of a coordinator-driven 2PC (`/v1/2pc`); recorded as `action` (see
    /// [`super::row_op`]).
    pub const PREPARE: &str = "prepare";
    /// The local transaction of a transactional message.
    pub const MSG: &str = "msg";
}
