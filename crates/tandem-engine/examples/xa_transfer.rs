//! A money transfer between an account in PostgreSQL and one in MySQL/MariaDB, as a real XA
//! two-phase commit: once successfully, and once refused (insufficient funds: the
//! PostgreSQL branch votes no and the MariaDB branch, already prepared, is rolled back).
//!
//! Run (with the databases of the tests):
//! `TANDEM_TEST_PG=postgres://postgres@127.0.0.1:5432/test
//!  TANDEM_TEST_MYSQL=mysql://root@127.0.0.1:3306/test
//!  cargo run -p tandem-engine --features xa --example xa_transfer`

use std::sync::Arc;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use tandem_engine::xa::{mysql_work, pg_work, MysqlResource, PgResource};
use tandem_engine::{BranchError, Coordinator, EngineConfig};

const NODE: &str = "xa-example";

/// Payload: `account:amount` (negative debits; refused below zero).
fn parse(payload: &[u8]) -> Result<(String, i64), BranchError> {
    let s = std::str::from_utf8(payload).map_err(|e| BranchError::Failure(e.to_string()))?;
    let (acct, amount) = s
        .split_once(':')
        .ok_or_else(|| BranchError::Failure(format!("bad payload {s:?}")))?;
    let amount = amount
        .parse()
        .map_err(|_| BranchError::Failure(format!("bad amount in {s:?}")))?;
    if !acct.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(BranchError::Failure(format!("bad account {acct:?}")));
    }
    Ok((acct.to_string(), amount))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pg_url = std::env::var("TANDEM_TEST_PG").context("set TANDEM_TEST_PG")?;
    let my_url = std::env::var("TANDEM_TEST_MYSQL").context("set TANDEM_TEST_MYSQL")?;

    // The accounts: alice in PostgreSQL, bob in MariaDB, 100 each.
    let (pg, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    pg.batch_execute(
        "DROP TABLE IF EXISTS xa_example_account; \
         CREATE TABLE xa_example_account (name text PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0)); \
         INSERT INTO xa_example_account VALUES ('alice', 100)",
    )
    .await?;
    let mut my = mysql_async::Conn::new(mysql_async::Opts::from_url(&my_url)?).await?;
    my.query_drop("DROP TABLE IF EXISTS xa_example_account")
        .await?;
    my.query_drop(
        "CREATE TABLE xa_example_account (name varchar(64) PRIMARY KEY, balance bigint NOT NULL) ENGINE=InnoDB",
    )
    .await?;
    my.query_drop("INSERT INTO xa_example_account VALUES ('bob', 100)")
        .await?;

    // The unit of work each database does for a branch; a CHECK violation votes no.
    let bank_pg = Arc::new(PgResource::new(
        &pg_url,
        4,
        pg_work(|c, call| {
            let parsed = parse(&call.payload);
            Box::pin(async move {
                let (acct, amount) = parsed?;
                c.execute(
                    "UPDATE xa_example_account SET balance = balance + $1 WHERE name = $2",
                    &[&amount, &acct],
                )
                .await
                .map(|_| ())
                .map_err(|e| match e.code() {
                    Some(s) if *s == tokio_postgres::error::SqlState::CHECK_VIOLATION => {
                        BranchError::Failure("insufficient funds".into())
                    }
                    _ => BranchError::Transient(e.to_string()),
                })
            })
        }),
    ));
    let bank_my = Arc::new(MysqlResource::new(
        &my_url,
        4,
        mysql_work(|c, call| {
            let parsed = parse(&call.payload);
            Box::pin(async move {
                let (acct, amount) = parsed?;
                c.query_drop(format!(
                    "UPDATE xa_example_account SET balance = balance + {amount} WHERE name = '{acct}'"
                ))
                .await
                .map_err(|e| BranchError::Transient(e.to_string()))
            })
        }),
    )?);

    let dir = tempfile::tempdir()?;
    let c = Coordinator::builder()
        .config(EngineConfig {
            node_name: Some(NODE.into()),
            ..EngineConfig::default()
        })
        .xa_resource("bank-pg", bank_pg)
        .xa_resource("bank-my", bank_my)
        .open(dir.path())
        .await?;

    for (gid, amount) in [("xa-transfer-1", 30), ("xa-transfer-2", 500)] {
        let out = c
            .two_phase(gid)
            .participant("bank-my", format!("bob:{amount}"))
            .participant("bank-pg", format!("alice:-{amount}"))
            .run()
            .await?;
        let alice: i64 = pg
            .query_one(
                "SELECT balance FROM xa_example_account WHERE name = 'alice'",
                &[],
            )
            .await?
            .get(0);
        let bob: Option<i64> = my
            .query_first("SELECT balance FROM xa_example_account WHERE name = 'bob'")
            .await?;
        println!(
            "{gid}: move {amount} alice(pg) -> bob(mariadb): {} (alice {alice}, bob {})",
            out.status.as_str(),
            bob.unwrap_or_default()
        );
    }
    c.close().await?;
    pg.batch_execute("DROP TABLE xa_example_account").await?;
    my.query_drop("DROP TABLE xa_example_account").await?;
    Ok(())
}
