//! The barrier on MySQL/MariaDB (mysql_async): `INSERT IGNORE` inside the caller's
//! transaction.
//!
//! The conflicting row is read back with a shared lock (`LOCK IN SHARE MODE`): a locking read
//! sees the latest committed row even under InnoDB's default REPEATABLE READ, whose plain
//! reads could still show the snapshot from before a concurrent duplicate committed. A shared
//! (not exclusive) lock keeps concurrent duplicates, which all hold a shared lock on the key
//! after their ignored insert, from deadlocking on each other.

use std::future::Future;
use std::pin::Pin;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Transaction, TxOpts};

use super::branch::{Barrier, MSG_BARRIER_ID, MSG_BRANCH_ID};
use super::decision::{decide, opposite_op, origin_op, row_op, Admission, Outcome};
use super::error::{CallError, Result};
use super::table::{Table, DEFAULT_TABLE};
use super::{ops, Error, MsgStatus};

/// The business code of [`call`]: a boxed future borrowing the transaction,
/// written `|tx| Box::pin(async move { ... })`.
pub type BusinessFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// Creates the barrier table `table` (e.g. [`DEFAULT_TABLE`]) and its database when missing,
/// with DTM's layout (auto-increment `id`, the six text columns, create/update times with
/// their indexes, the unique key on `(gid, branch_id, op, barrier_id)`). Existing tables are
/// left as they are.
///
/// # Errors
/// [`Error::InvalidTable`] for a bad name, or the database's error.
pub async fn create_table_if_missing(conn: &mut Conn, table: &str) -> Result<()> {
    let t = Table::parse(table)?;
    if let Some(db) = t.schema() {
        conn.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS {db} /*!40100 DEFAULT CHARACTER SET utf8mb4 */"
        ))
        .await?;
    }
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {}(
           id bigint(22) PRIMARY KEY AUTO_INCREMENT,
           trans_type varchar(45) default '',
           gid varchar(128) default '',
           branch_id varchar(128) default '',
           op varchar(45) default '',
           barrier_id varchar(45) default '',
           reason varchar(45) default '' comment 'the branch type who insert this record',
           create_time datetime DEFAULT now(),
           update_time datetime DEFAULT now(),
           key(create_time),
           key(update_time),
           UNIQUE key(gid, branch_id, op, barrier_id)
         ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
        t.qualified()
    ))
    .await?;
    Ok(())
}

/// Passes the barrier inside `tx`, the transaction that will also hold the business writes.
/// Run the business code only on [`Admission::Run`]; commit `tx` in every case but an error
/// (a [`Skip::NullCompensation`](super::Skip::NullCompensation) row must be committed).
///
/// # Errors
/// The database's error; roll back `tx` then (dropping it does).
pub async fn enter(barrier: &mut Barrier, tx: &mut Transaction<'_>) -> Result<Admission> {
    let table = Table::or_default(&barrier.table, DEFAULT_TABLE)?.qualified();
    let barrier_id = barrier.next_barrier_id();
    let b = &*barrier;
    let insert = insert_sql(&table);
    let origin_inserted = match origin_op(&b.op) {
        Some(origin) => {
            tx.exec_drop(
                &insert,
                (
                    &b.trans_type,
                    &b.gid,
                    &b.branch_id,
                    origin,
                    &barrier_id,
                    &b.op,
                ),
            )
            .await?;
            tx.affected_rows() > 0
        }
        None => false,
    };
    tx.exec_drop(
        &insert,
        (
            &b.trans_type,
            &b.gid,
            &b.branch_id,
            row_op(&b.op),
            &barrier_id,
            &b.op,
        ),
    )
    .await?;
    let current_inserted = tx.affected_rows() > 0;
    if let (true, Some(opposite)) = (current_inserted, opposite_op(&b.op)) {
        tx.exec_drop(
            &insert,
            (
                &b.trans_type,
                &b.gid,
                &b.branch_id,
                opposite,
                &barrier_id,
                &b.op,
            ),
        )
        .await?;
    }
    let reason = if current_inserted {
        None
    } else {
        Some(read_reason(tx, &table, b, row_op(&b.op), &barrier_id, true).await?)
    };
    let admission = decide(&b.op, origin_inserted, current_inserted, reason.as_deref());
    tracing::debug!(gid = %b.gid, branch_id = %b.branch_id, op = %b.op, %barrier_id, ?admission, "barrier");
    Ok(admission)
}

/// Begins a transaction on `conn`, passes the barrier, runs `business` only when admitted,
/// and commits; a business error rolls everything back, barrier rows included (so a retry
/// runs the business code again).
///
/// # Errors
/// [`CallError::Business`] with the closure's error, or [`CallError::Barrier`].
pub async fn call<T, E, F>(
    barrier: &mut Barrier,
    conn: &mut Conn,
    business: F,
) -> Result<Outcome<T>, CallError<E>>
where
    F: for<'t, 'c> FnOnce(&'t mut Transaction<'c>) -> BusinessFuture<'t, T, E>,
{
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(Error::from)?;
    let outcome = match enter(barrier, &mut tx).await? {
        Admission::Skip(skip) => Outcome::Skipped(skip),
        Admission::Run => match business(&mut tx).await {
            Ok(value) => Outcome::Ran(value),
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    tracing::warn!(error = %rb, "rollback after a business error failed");
                }
                return Err(CallError::Business(e));
            }
        },
    };
    tx.commit().await.map_err(Error::from)?;
    Ok(outcome)
}

/// Answers the coordinator's check of a transactional message (DTM's `QueryPrepared`): blocks
/// the message's local transaction if it has not committed yet (inserts its row with reason
/// `rollback`), then reads which of the two got there first. Runs outside any transaction
/// (autocommit).
///
/// # Errors
/// The database's error (answer it as "try again", not as FAILURE).
pub async fn query_prepared(barrier: &Barrier, conn: &mut Conn) -> Result<MsgStatus> {
    let table = Table::or_default(&barrier.table, DEFAULT_TABLE)?.qualified();
    conn.exec_drop(
        insert_sql(&table),
        (
            &barrier.trans_type,
            &barrier.gid,
            MSG_BRANCH_ID,
            ops::MSG,
            MSG_BARRIER_ID,
            ops::ROLLBACK,
        ),
    )
    .await?;
    let probe = Barrier::new(&barrier.trans_type, &barrier.gid, MSG_BRANCH_ID, ops::MSG)?;
    let reason = read_reason(conn, &table, &probe, ops::MSG, MSG_BARRIER_ID, false).await?;
    Ok(if reason == ops::ROLLBACK {
        MsgStatus::RolledBack
    } else {
        MsgStatus::Committed
    })
}

fn insert_sql(table: &str) -> String {
    format!(
        "INSERT IGNORE INTO {table} (trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time) \
         VALUES (?, ?, ?, ?, ?, ?, now(), now())"
    )
}

async fn read_reason(
    conn: &mut impl Queryable,
    table: &str,
    b: &Barrier,
    op: &str,
    barrier_id: &str,
    locking: bool,
) -> Result<String> {
    let lock = if locking { " LOCK IN SHARE MODE" } else { "" };
    let reason: Option<Option<String>> = conn
        .exec_first(
            format!(
                "SELECT reason FROM {table} WHERE gid = ? AND branch_id = ? AND op = ? AND barrier_id = ?{lock}"
            ),
            (&b.gid, &b.branch_id, op, barrier_id),
        )
        .await?;
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
