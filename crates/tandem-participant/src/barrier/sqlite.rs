//! The barrier on SQLite (rusqlite, synchronous): `INSERT OR IGNORE` inside the caller's
//! transaction.
//!
//! SQLite has one writer at a time. [`call`] begins its transaction `IMMEDIATE`, taking the
//! write lock up front, so concurrent deliveries queue on the connection's busy timeout
//! instead of failing with SQLITE_BUSY when a read transaction tries to become a write one.
//! Callers of [`enter`] should begin theirs the same way. From async code, run these calls
//! in `spawn_blocking`.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::branch::{Barrier, MSG_BARRIER_ID, MSG_BRANCH_ID};
use super::decision::{decide, opposite_op, origin_op, row_op, Admission, Outcome};
use super::error::{CallError, Result};
use super::table::{Table, DEFAULT_SQLITE_TABLE};
use super::{ops, Error, MsgStatus};

/// Creates the barrier table `table` (e.g. [`DEFAULT_SQLITE_TABLE`]) when missing, with DTM's
/// columns and unique key on `(gid, branch_id, op, barrier_id)`. Existing tables are left as
/// they are.
///
/// # Errors
/// [`Error::InvalidTable`] for a bad name, or the database's error.
pub fn create_table_if_missing(conn: &Connection, table: &str) -> Result<()> {
    let t = Table::parse(table)?;
    let q = t.qualified();
    let prefix = t.schema().map(|s| format!("{s}.")).unwrap_or_default();
    let name = t.name();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {q}(
           id INTEGER PRIMARY KEY AUTOINCREMENT,
           trans_type varchar(45) default '',
           gid varchar(128) default '',
           branch_id varchar(128) default '',
           op varchar(45) default '',
           barrier_id varchar(45) default '',
           reason varchar(45) default '',
           create_time datetime DEFAULT CURRENT_TIMESTAMP,
           update_time datetime DEFAULT CURRENT_TIMESTAMP,
           UNIQUE(gid, branch_id, op, barrier_id)
         );
         CREATE INDEX IF NOT EXISTS {prefix}{name}_create_time ON {name}(create_time);
         CREATE INDEX IF NOT EXISTS {prefix}{name}_update_time ON {name}(update_time);"
    ))?;
    Ok(())
}

/// Passes the barrier inside `tx`, the transaction that will also hold the business writes.
/// Run the business code only on [`Admission::Run`]; commit `tx` in every case but an error
/// (a [`Skip::NullCompensation`](super::Skip::NullCompensation) row must be committed).
///
/// # Errors
/// The database's error; roll back `tx` then (dropping it does).
pub fn enter(barrier: &mut Barrier, tx: &Transaction<'_>) -> Result<Admission> {
    let table = Table::or_default(&barrier.table, DEFAULT_SQLITE_TABLE)?.qualified();
    let barrier_id = barrier.next_barrier_id();
    let b = &*barrier;
    let insert = insert_sql(&table);
    let origin_inserted = match origin_op(&b.op) {
        Some(origin) => {
            tx.execute(
                &insert,
                params![b.trans_type, b.gid, b.branch_id, origin, barrier_id, b.op],
            )? > 0
        }
        None => false,
    };
    let current_inserted = tx.execute(
        &insert,
        params![
            b.trans_type,
            b.gid,
            b.branch_id,
            row_op(&b.op),
            barrier_id,
            b.op
        ],
    )? > 0;
    if let (true, Some(opposite)) = (current_inserted, opposite_op(&b.op)) {
        tx.execute(
            &insert,
            params![b.trans_type, b.gid, b.branch_id, opposite, barrier_id, b.op],
        )?;
    }
    let reason = if current_inserted {
        None
    } else {
        Some(read_reason(tx, &table, b, row_op(&b.op), &barrier_id)?)
    };
    let admission = decide(&b.op, origin_inserted, current_inserted, reason.as_deref());
    tracing::debug!(gid = %b.gid, branch_id = %b.branch_id, op = %b.op, %barrier_id, ?admission, "barrier");
    Ok(admission)
}

/// Begins an IMMEDIATE transaction on `conn`, passes the barrier, runs `business` only when
/// admitted, and commits; a business error rolls everything back, barrier rows included (so
/// a retry runs the business code again).
///
/// # Errors
/// [`CallError::Business`] with the closure's error, or [`CallError::Barrier`].
pub fn call<T, E>(
    barrier: &mut Barrier,
    conn: &mut Connection,
    business: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<Outcome<T>, CallError<E>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Error::from)?;
    let outcome = match enter(barrier, &tx)? {
        Admission::Skip(skip) => Outcome::Skipped(skip),
        Admission::Run => match business(&tx) {
            Ok(value) => Outcome::Ran(value),
            Err(e) => {
                if let Err(rb) = tx.rollback() {
                    tracing::warn!(error = %rb, "rollback after a business error failed");
                }
                return Err(CallError::Business(e));
            }
        },
    };
    tx.commit().map_err(Error::from)?;
    Ok(outcome)
}

/// Answers the coordinator's check of a transactional message (DTM's `QueryPrepared`): blocks
/// the message's local transaction if it has not committed yet (inserts its row with reason
/// `rollback`), then reads which of the two got there first. Runs outside any transaction.
///
/// # Errors
/// The database's error (answer it as "try again", not as FAILURE).
pub fn query_prepared(barrier: &Barrier, conn: &Connection) -> Result<MsgStatus> {
    let table = Table::or_default(&barrier.table, DEFAULT_SQLITE_TABLE)?.qualified();
    conn.execute(
        &insert_sql(&table),
        params![
            barrier.trans_type,
            barrier.gid,
            MSG_BRANCH_ID,
            ops::MSG,
            MSG_BARRIER_ID,
            ops::ROLLBACK
        ],
    )?;
    let probe = Barrier::new(&barrier.trans_type, &barrier.gid, MSG_BRANCH_ID, ops::MSG)?;
    let reason = read_reason(conn, &table, &probe, ops::MSG, MSG_BARRIER_ID)?;
    Ok(if reason == ops::ROLLBACK {
        MsgStatus::RolledBack
    } else {
        MsgStatus::Committed
    })
}

fn insert_sql(table: &str) -> String {
    format!(
        "INSERT OR IGNORE INTO {table} (trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
}

fn read_reason(
    conn: &Connection,
    table: &str,
    b: &Barrier,
    op: &str,
    barrier_id: &str,
) -> Result<String> {
    let reason: Option<Option<String>> = conn
        .query_row(
            &format!(
                "SELECT reason FROM {table} WHERE gid = ?1 AND branch_id = ?2 AND op = ?3 AND barrier_id = ?4"
            ),
            params![b.gid, b.branch_id, op, barrier_id],
            |row| row.get(0),
        )
        .optional()?;
    match reason {
        Some(reason) => Ok(reason.unwrap_or_default()),
        None => Err(Error::RowVanished {
            gid: b.gid.clone(),
            branch_id: b.branch_id.clone(),
            op: op.to_owned(),
            barrier_id: barrier_id.to_owned(),
        }),
    }
}
