//! The bank on PostgreSQL: a small connection pool (tokio-postgres has none) and the SQL.

use std::sync::Mutex;

use std::time::Duration;

use tandem_participant::axum::{BranchCall, BranchError, Reply};
use tandem_participant::barrier::{self, postgres};
use tandem_participant::xa;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};

use super::{refuse, Account, LedgerNet, Snapshot, Tables};
use crate::effect::Effect;

/// Lock wait limit inside an XA branch (see `xa_local`).
const XA_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '1s'";

/// Most connections one bank opens.
const CONNECTIONS_MAX: usize = 16;

pub struct PgBank {
    url: String,
    tables: Tables,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A pooled connection, returned to the pool when dropped (unless it broke).
struct Pooled<'a> {
    bank: &'a PgBank,
    client: Option<Client>,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Pooled<'_> {
    /// Drops the connection instead of pooling it (its session state is unknown).
    fn discard(mut self) {
        self.client = None;
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                if let Ok(mut idle) = self.bank.idle.lock() {
                    idle.push(c);
                }
            }
        }
    }
}

impl PgBank {
    pub fn new(url: &str, tables: Tables) -> PgBank {
        PgBank {
            url: url.to_owned(),
            tables,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(CONNECTIONS_MAX),
        }
    }

    async fn conn(&self) -> anyhow::Result<Pooled<'_>> {
        let permit = self.permits.acquire().await?;
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let client = match idle {
            Some(c) => c,
            None => {
                let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "postgres connection ended");
                    }
                });
                client
            }
        };
        Ok(Pooled {
            bank: self,
            client: Some(client),
            _permit: permit,
        })
    }

    pub async fn setup(&self, accounts: i64, balance: i64) -> anyhow::Result<()> {
        let c = self.conn().await?;
        postgres::create_table_if_missing(&c, barrier::DEFAULT_TABLE).await?;
        let Tables { account, ledger } = &self.tables;
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {account}(
               id bigint PRIMARY KEY,
               balance bigint NOT NULL CHECK (balance >= 0),
               frozen bigint NOT NULL DEFAULT 0 CHECK (frozen >= 0));
             CREATE TABLE IF NOT EXISTS {ledger}(
               gid varchar(128) NOT NULL, account bigint NOT NULL, op varchar(45) NOT NULL,
               balance_delta bigint NOT NULL, frozen_delta bigint NOT NULL);"
        ))
        .await?;
        for id in 0..accounts {
            c.execute(
                &format!(
                    "INSERT INTO {account}(id, balance) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                ),
                &[&id, &balance],
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
        let mut c = match self.conn().await {
            Ok(c) => c,
            Err(e) => return Reply::Error(e.to_string()),
        };
        let (update, insert) = self.sql();
        let (gid, op) = (call.gid().to_owned(), call.op().to_owned());
        call.postgres(&mut c, |tx| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                work(
                    tx.client(),
                    &update,
                    &insert,
                    &gid,
                    &op,
                    effect,
                    account,
                    fail,
                )
                .await
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
            .conn()
            .await
            .map_err(|e| xa::LocalError::Work(BranchError::Retry(e.to_string())))?;
        let (update, insert) = self.sql();
        let result = xa::pg::local(&c, xid, |client| async move {
            // A prepared branch keeps its row locks until phase 2, so two transfers in
            // opposite directions can wait for each other across the two databases, where no
            // deadlock detector sees them. Give up quickly instead; the client then aborts.
            client.batch_execute(XA_LOCK_TIMEOUT).await?;
            work(client, &update, &insert, gid, op, effect, account, fail).await
        })
        .await;
        if matches!(result, Err(xa::LocalError::Xa(_))) {
            // The session may still be inside the transaction.
            c.discard();
        }
        result
    }

    pub async fn xa_finish(&self, xid: &xa::Xid, op: xa::Op) -> anyhow::Result<()> {
        let c = self.conn().await?;
        // DTM's XA protocol over HTTP has no answer for "nothing was prepared": like DTM's
        // participants, answer success (a repeat of phase 2 finds nothing).
        let _found = xa::pg::finish(&c, xid, op).await?;
        Ok(())
    }

    pub async fn drop_tables(&self) -> anyhow::Result<()> {
        let c = self.conn().await?;
        let Tables { account, ledger } = &self.tables;
        c.batch_execute(&format!("DROP TABLE IF EXISTS {account}, {ledger}"))
            .await?;
        Ok(())
    }

    pub async fn effect(&self, gid: &str) -> anyhow::Result<(i64, i64)> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &format!(
                    "SELECT COALESCE(sum(balance_delta), 0)::bigint, \
                     COALESCE(sum(frozen_delta), 0)::bigint FROM {} WHERE gid = $1",
                    self.tables.ledger
                ),
                &[&gid],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let c = self.conn().await?;
        let Tables { account, ledger } = &self.tables;
        let accounts = c
            .query(
                &format!("SELECT id, balance, frozen FROM {account} ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(|r| Account {
                id: r.get(0),
                balance: r.get(1),
                frozen: r.get(2),
            })
            .collect();
        let ledger = c
            .query(
                &format!(
                    "SELECT gid, account, sum(balance_delta)::bigint, sum(frozen_delta)::bigint \
                     FROM {ledger} GROUP BY gid, account"
                ),
                &[],
            )
            .await?
            .iter()
            .map(|r| LedgerNet {
                gid: r.get(0),
                account: r.get(1),
                balance_delta: r.get(2),
                frozen_delta: r.get(3),
            })
            .collect();
        let prepared = xa::pg::list_prepared(&c, "bk-")
            .await?
            .into_iter()
            .map(|p| p.xid.as_str().to_owned())
            .collect();
        Ok(Snapshot {
            accounts,
            ledger,
            prepared,
        })
    }

    fn sql(&self) -> (String, String) {
        let Tables { account, ledger } = &self.tables;
        (
            format!(
                "UPDATE {account} SET balance = balance + $1, frozen = frozen + $2 \
                 WHERE id = $3 AND balance + $1 >= 0 AND frozen + $2 >= 0"
            ),
            format!(
                "INSERT INTO {ledger}(gid, account, op, balance_delta, frozen_delta) \
                 VALUES ($1, $2, $3, $4, $5)"
            ),
        )
    }
}

/// The business code, inside whatever transaction `client` is in.
#[allow(clippy::too_many_arguments)]
async fn work(
    client: &Client,
    update: &str,
    insert: &str,
    gid: &str,
    op: &str,
    effect: Effect,
    account: i64,
    fail: bool,
) -> Result<(), BranchError> {
    let (b, f) = (effect.balance_delta, effect.frozen_delta);
    let changed = client.execute(update, &[&b, &f, &account]).await?;
    if changed > 0 {
        client
            .execute(insert, &[&gid, &account, &op, &b, &f])
            .await?;
    }
    refuse(changed, fail)
}
