//! The bank on MariaDB/MySQL: mysql_async's pool, with `CLIENT_FOUND_ROWS` so an update that
//! matches a row but changes nothing (a TCC try-credit) still counts as done.

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::time::Duration;

use tandem_participant::axum::{BranchCall, BranchError, Reply};
use tandem_participant::barrier::{self, mysql};
use tandem_participant::xa;

use super::{refuse, Account, LedgerNet, Snapshot, Tables};
use crate::effect::Effect;

/// Most connections one bank keeps open.
const CONNECTIONS_MAX: usize = 16;

pub struct MyBank {
    pool: Pool,
    tables: Tables,
}

impl MyBank {
    pub fn new(url: &str, tables: Tables) -> anyhow::Result<MyBank> {
        let constraints = PoolConstraints::new(0, CONNECTIONS_MAX)
            .ok_or_else(|| anyhow::anyhow!("bad pool constraints"))?;
        let opts = OptsBuilder::from_opts(Opts::from_url(url)?)
            .client_found_rows(true)
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        Ok(MyBank {
            pool: Pool::new(opts),
            tables,
        })
    }

    pub async fn setup(&self, accounts: i64, balance: i64) -> anyhow::Result<()> {
        let mut c = self.pool.get_conn().await?;
        mysql::create_table_if_missing(&mut c, barrier::DEFAULT_TABLE).await?;
        let Tables { account, ledger } = &self.tables;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {account}(
               id bigint PRIMARY KEY,
               balance bigint NOT NULL CHECK (balance >= 0),
               frozen bigint NOT NULL DEFAULT 0 CHECK (frozen >= 0)) ENGINE = InnoDB"
        ))
        .await?;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {ledger}(
               gid varchar(128) NOT NULL, account bigint NOT NULL, op varchar(45) NOT NULL,
               balance_delta bigint NOT NULL, frozen_delta bigint NOT NULL) ENGINE = InnoDB"
        ))
        .await?;
        for id in 0..accounts {
            c.exec_drop(
                format!("INSERT IGNORE INTO {account}(id, balance) VALUES (?, ?)"),
                (id, balance),
            )
            .await?;
        }
        Ok(())
    }

    pub async fn apply(
        &self,
        call: &BranchCall,
        effect: Effect,
        account: i64,
        fail: bool,
        delay: Duration,
    ) -> Reply {
        let mut c = match self.pool.get_conn().await {
            Ok(c) => c,
            Err(e) => return Reply::Error(e.to_string()),
        };
        let (update, insert) = self.sql();
        let (gid, op) = (call.gid().to_owned(), call.op().to_owned());
        call.mysql(&mut c, |tx| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                work(tx, &update, &insert, &gid, &op, effect, account, fail).await
            })
        })
        .await
    }

    pub async fn xa_local(
        &self,
        xid: &xa::Xid,
        gid: &str,
        op: &str,
        effect: Effect,
        account: i64,
        fail: bool,
    ) -> Result<(), xa::LocalError<BranchError>> {
        let c = self
            .pool
            .get_conn()
            .await
            .map_err(|e| xa::LocalError::Work(BranchError::from(e)))?;
        let (update, insert) = self.sql();
        let (gid, op) = (gid.to_owned(), op.to_owned());
        xa::mysql::local(c, xid, |conn| {
            Box::pin(async move {
                // Prepared branches hold their locks across two databases, where no deadlock
                // detector sees a cycle: give up quickly instead (the client then aborts).
                conn.query_drop("SET SESSION innodb_lock_wait_timeout = 1")
                    .await?;
                work(conn, &update, &insert, &gid, &op, effect, account, fail).await
            })
        })
        .await
    }

    pub async fn xa_finish(&self, xid: &xa::Xid, op: xa::Op) -> anyhow::Result<()> {
        let mut c = self.pool.get_conn().await?;
        // A branch still attached to a closing session is `StillAttached`, an error: the
        // coordinator calls again (see `tandem_participant::xa::mysql::finish`).
        // DTM's XA protocol over HTTP has no answer for "nothing was prepared": like DTM's
        // participants, answer success (a repeat of phase 2 finds nothing).
        let _found = xa::mysql::finish(&mut c, xid, op).await?;
        Ok(())
    }

    pub async fn drop_tables(&self) -> anyhow::Result<()> {
        let mut c = self.pool.get_conn().await?;
        let Tables { account, ledger } = &self.tables;
        c.query_drop(format!("DROP TABLE IF EXISTS {account}, {ledger}"))
            .await?;
        Ok(())
    }

    pub async fn effect(&self, gid: &str) -> anyhow::Result<(i64, i64)> {
        let mut c = self.pool.get_conn().await?;
        let row: Option<(i64, i64)> = c
            .exec_first(
                format!(
                    "SELECT CAST(COALESCE(sum(balance_delta), 0) AS SIGNED), \
                     CAST(COALESCE(sum(frozen_delta), 0) AS SIGNED) FROM {} WHERE gid = ?",
                    self.tables.ledger
                ),
                (gid,),
            )
            .await?;
        Ok(row.unwrap_or((0, 0)))
    }

    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut c = self.pool.get_conn().await?;
        let Tables { account, ledger } = &self.tables;
        let accounts: Vec<(i64, i64, i64)> = c
            .query(format!(
                "SELECT id, balance, frozen FROM {account} ORDER BY id"
            ))
            .await?;
        let ledger: Vec<(String, i64, i64, i64)> = c
            .query(format!(
                "SELECT gid, account, CAST(sum(balance_delta) AS SIGNED), \
                 CAST(sum(frozen_delta) AS SIGNED) FROM {ledger} GROUP BY gid, account"
            ))
            .await?;
        let prepared = xa::mysql::list_prepared(&mut c, "bk-")
            .await?
            .into_iter()
            .map(|x| x.as_str().to_owned())
            .collect();
        Ok(Snapshot {
            prepared,
            accounts: accounts
                .into_iter()
                .map(|(id, balance, frozen)| Account {
                    id,
                    balance,
                    frozen,
                })
                .collect(),
            ledger: ledger
                .into_iter()
                .map(|(gid, account, balance_delta, frozen_delta)| LedgerNet {
                    gid,
                    account,
                    balance_delta,
                    frozen_delta,
                })
                .collect(),
        })
    }

    fn sql(&self) -> (String, String) {
        let Tables { account, ledger } = &self.tables;
        (
            format!(
                "UPDATE {account} SET balance = balance + ?, frozen = frozen + ? \
                 WHERE id = ? AND balance + ? >= 0 AND frozen + ? >= 0"
            ),
            format!(
                "INSERT INTO {ledger}(gid, account, op, balance_delta, frozen_delta) \
                 VALUES (?, ?, ?, ?, ?)"
            ),
        )
    }
}

/// The business code, inside whatever transaction `conn` is in.
#[allow(clippy::too_many_arguments)]
async fn work(
    conn: &mut impl Queryable,
    update: &str,
    insert: &str,
    gid: &str,
    op: &str,
    effect: Effect,
    account: i64,
    fail: bool,
) -> Result<(), BranchError> {
    let (b, f) = (effect.balance_delta, effect.frozen_delta);
    let result = conn.exec_iter(update, (b, f, account, b, f)).await?;
    let changed = result.affected_rows();
    result.drop_result().await?;
    if changed > 0 {
        conn.exec_drop(insert, (gid, account, op, b, f)).await?;
    }
    refuse(changed, fail)
}
