//! The barrier on PostgreSQL (tokio-postgres): `INSERT ... ON CONFLICT DO NOTHING` inside the
//! caller's transaction.
//!
//! Concurrent duplicates are safe under the default READ COMMITTED isolation: a second insert
//! of the same key waits for the first transaction; if that commits, the insert does nothing
//! and the follow-up read (a new statement, a new snapshot) sees the committed row; if it rolls
//! back, the second insert goes through and that delivery runs the business code.
//! Under REPEATABLE READ or SERIALIZABLE the second delivery gets a serialization error
//! instead, which the coordinator retries.

use std::future::Future;
use std::pin::Pin;

use tokio_postgres::{Client, Transaction};

use super::branch::{Barrier, MSG_BARRIER_ID, MSG_BRANCH_ID};
use super::decision::{decide, opposite_op, origin_op, row_op, Admission, Outcome};
use super::error::{CallError, Result};
use super::table::{Table, DEFAULT_TABLE};
use super::{ops, Error, MsgStatus};

/// The business code of [`call`]: a boxed future borrowing the transaction,
/// written `|tx| Box::pin(async move { ... })`.
pub type BusinessFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// Arbitrary key of the advisory lock that serialises concurrent table creation
/// (PostgreSQL's `CREATE ... IF NOT EXISTS` can fail when two sessions race).
const DDL_LOCK_KEY: i64 = 0x7461_6e64_6261_7272;

/// Creates the barrier table `table` (e.g. [`DEFAULT_TABLE`]) and its schema when missing,
/// with DTM's layout: sequence-backed `id`, the six text columns, create/update times and
/// the unique constraint on `(gid, branch_id, op, barrier_id)`. Existing tables are left as
/// they are.
///
/// # Errors
/// [`Error::InvalidTable`] for a bad name, or the database's error.
pub async fn create_table_if_missing(client: &Client, table: &str) -> Result<()> {
    let t = Table::parse(table)?;
    let q = t.qualified();
    let name = t.name();
    let prefix = t.schema().map(|s| format!("{s}.")).unwrap_or_default();
    let unique = if name == "barrier" {
        "uniq_barrier".to_owned()
    } else {
        format!("uniq_{name}")
    };
    let schema = t
        .schema()
        .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {s};"))
        .unwrap_or_default();
    // One simple-query batch runs as one implicit transaction, so the advisory lock is held
    // until every statement is done.
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({DDL_LOCK_KEY});
             {schema}
             CREATE SEQUENCE IF NOT EXISTS {prefix}{name}_seq;
             CREATE TABLE IF NOT EXISTS {q}(
               id bigint NOT NULL DEFAULT nextval('{prefix}{name}_seq'),
               trans_type varchar(45) default '',
               gid varchar(128) default '',
               branch_id varchar(128) default '',
               op varchar(45) default '',
               barrier_id varchar(45) default '',
               reason varchar(45) default '',
               create_time timestamp(0) with time zone DEFAULT NULL,
               update_time timestamp(0) with time zone DEFAULT NULL,
               PRIMARY KEY(id),
               CONSTRAINT {unique} unique(gid, branch_id, op, barrier_id)
             );"
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
pub async fn enter(barrier: &mut Barrier, tx: &Transaction<'_>) -> Result<Admission> {
    let table = Table::or_default(&barrier.table, DEFAULT_TABLE)?.qualified();
    let barrier_id = barrier.next_barrier_id();
    let b = &*barrier;
    let insert = insert_sql(&table);
    let origin_inserted = match origin_op(&b.op) {
        Some(origin) => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &b.trans_type,
                &b.gid,
                &b.branch_id,
                &origin,
                &barrier_id,
                &b.op,
            ];
            tx.execute(&insert, &params).await? > 0
        }
        None => false,
    };
    let current_inserted = tx
        .execute(
            &insert,
            &[
                &b.trans_type,
                &b.gid,
                &b.branch_id,
                &row_op(&b.op),
                &barrier_id,
                &b.op,
            ],
        )
        .await?
        > 0;
    if let (true, Some(opposite)) = (current_inserted, opposite_op(&b.op)) {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &b.trans_type,
            &b.gid,
            &b.branch_id,
            &opposite,
            &barrier_id,
            &b.op,
        ];
        tx.execute(&insert, &params).await?;
    }
    let reason = if current_inserted {
        None
    } else {
        Some(read_reason(tx.client(), &table, b, row_op(&b.op), &barrier_id).await?)
    };
    let admission = decide(&b.op, origin_inserted, current_inserted, reason.as_deref());
    tracing::debug!(gid = %b.gid, branch_id = %b.branch_id, op = %b.op, %barrier_id, ?admission, "barrier");
    Ok(admission)
}

/// Begins a transaction on `client`, passes the barrier, runs `business` only when admitted,
/// and commits; a business error rolls everything back, barrier rows included (so a retry
/// runs the business code again).
///
/// # Errors
/// [`CallError::Business`] with the closure's error, or [`CallError::Barrier`].
pub async fn call<T, E, F>(
    barrier: &mut Barrier,
    client: &mut Client,
    business: F,
) -> Result<Outcome<T>, CallError<E>>
where
    F: for<'t> FnOnce(&'t Transaction<'t>) -> BusinessFuture<'t, T, E>,
{
    let tx = client.transaction().await.map_err(Error::from)?;
    let outcome = match enter(barrier, &tx).await? {
        Admission::Skip(skip) => Outcome::Skipped(skip),
        Admission::Run => match business(&tx).await {
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
/// `rollback`), then reads which of the two got there first. Runs outside any transaction.
///
/// # Errors
/// The database's error (answer it as "try again", not as FAILURE).
pub async fn query_prepared(barrier: &Barrier, client: &Client) -> Result<MsgStatus> {
    let table = Table::or_default(&barrier.table, DEFAULT_TABLE)?.qualified();
    client
        .execute(
            &insert_sql(&table),
            &[
                &barrier.trans_type,
                &barrier.gid,
                &MSG_BRANCH_ID,
                &ops::MSG,
                &MSG_BARRIER_ID,
                &ops::ROLLBACK,
            ],
        )
        .await?;
    let probe = Barrier::new(&barrier.trans_type, &barrier.gid, MSG_BRANCH_ID, ops::MSG)?;
    let reason = read_reason(client, &table, &probe, ops::MSG, MSG_BARRIER_ID).await?;
    Ok(if reason == ops::ROLLBACK {
        MsgStatus::RolledBack
    } else {
        MsgStatus::Committed
    })
}

fn insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time) \
         VALUES ($1, $2, $3, $4, $5, $6, now(), now()) \
         ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING"
    )
}

async fn read_reason(
    client: &Client,
    table: &str,
    b: &Barrier,
    op: &str,
    barrier_id: &str,
) -> Result<String> {
    let row = client
        .query_opt(
            &format!(
                "SELECT reason FROM {table} WHERE gid = $1 AND branch_id = $2 AND op = $3 AND barrier_id = $4"
            ),
            &[&b.gid, &b.branch_id, &op, &barrier_id],
        )
        .await?;
    match row {
        Some(row) => Ok(row.get::<_, Option<String>>(0).unwrap_or_default()),
        None => Err(Error::RowVanished {
            gid: b.gid.clone(),
            branch_id: b.branch_id.clone(),
            op: op.to_owned(),
            barrier_id: barrier_id.to_owned(),
        }),
    }
}
