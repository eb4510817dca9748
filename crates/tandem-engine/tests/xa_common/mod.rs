//! Helpers shared by the XA tests: the test databases, a unit of work driven by the
//! branch payload, tables of three rows, and what is left prepared.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tandem_engine::xa::{mysql_work, pg_work, MysqlResource, PgResource};
use tandem_engine::BranchError;
use tandem_participant::testenv;
use tandem_participant::xa;

pub struct Dbs {
    pub pg: String,
    pub my: String,
}

pub fn dbs(test: &str) -> Option<Dbs> {
    Some(Dbs {
        pg: testenv::url("TANDEM_TEST_PG", test)?,
        my: testenv::url("TANDEM_TEST_MYSQL", test)?,
    })
}

pub fn uniq(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{tag}{}x{n}", std::process::id())
}

/// Payload `id:delta` adds delta to row id; `fail` votes no; `sleep:ms:id:delta` is slow.
pub fn sql_of(table: &str, payload: &[u8]) -> Result<(u64, String), BranchError> {
    let p = std::str::from_utf8(payload).map_err(|e| BranchError::Failure(e.to_string()))?;
    if p == "fail" {
        return Err(BranchError::Failure("refused by test".into()));
    }
    let (sleep_ms, rest) = match p.strip_prefix("sleep:") {
        Some(r) => {
            let (ms, rest) = r.split_once(':').expect("sleep:ms:id:delta");
            (ms.parse().expect("ms"), rest)
        }
        None => (0, p),
    };
    let (id, delta) = rest.split_once(':').expect("id:delta");
    let id: i64 = id.parse().expect("id");
    let delta: i64 = delta.parse().expect("delta");
    Ok((
        sleep_ms,
        format!("UPDATE {table} SET v = v + {delta} WHERE id = {id}"),
    ))
}

pub fn pg_resource(url: &str, table: &str) -> Arc<PgResource> {
    let table = table.to_string();
    Arc::new(PgResource::new(
        url,
        4,
        pg_work(move |c, call| {
            let q = sql_of(&table, &call.payload);
            Box::pin(async move {
                let (sleep_ms, sql) = q?;
                tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                c.execute(&sql, &[])
                    .await
                    .map(|_| ())
                    .map_err(|e| BranchError::Transient(e.to_string()))
            })
        }),
    ))
}

pub fn my_resource(url: &str, table: &str) -> Arc<MysqlResource> {
    let table = table.to_string();
    Arc::new(
        MysqlResource::new(
            url,
            4,
            mysql_work(move |c, call| {
                let q = sql_of(&table, &call.payload);
                Box::pin(async move {
                    let (_, sql) = q?;
                    c.query_drop(sql)
                        .await
                        .map_err(|e| BranchError::Transient(e.to_string()))
                })
            }),
        )
        .expect("mysql resource"),
    )
}

pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("pg");
    tokio::spawn(conn);
    c
}

pub async fn setup(d: &Dbs, table: &str) -> (tokio_postgres::Client, mysql_async::Conn) {
    let pg = pg_client(&d.pg).await;
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int primary key, v int); \
         INSERT INTO {table} VALUES (1, 100), (2, 100), (3, 100)"
    ))
    .await
    .expect("pg table");
    let mut my = mysql_async::Conn::new(mysql_async::Opts::from_url(&d.my).expect("url"))
        .await
        .expect("mysql");
    my.query_drop(format!("DROP TABLE IF EXISTS {table}"))
        .await
        .expect("drop");
    my.query_drop(format!(
        "CREATE TABLE {table} (id int primary key, v int) ENGINE=InnoDB"
    ))
    .await
    .expect("my table");
    my.query_drop(format!(
        "INSERT INTO {table} VALUES (1, 100), (2, 100), (3, 100)"
    ))
    .await
    .expect("row");
    (pg, my)
}

/// Sums of `v` over the table on PostgreSQL and MariaDB (rows 1..3 start at 100 each).
pub async fn values(
    pg: &tokio_postgres::Client,
    my: &mut mysql_async::Conn,
    table: &str,
) -> (i32, i32) {
    let a: i32 = pg
        .query_one(&format!("SELECT sum(v)::int FROM {table}"), &[])
        .await
        .expect("pg v")
        .get(0);
    let b: i32 = my
        .query_first(format!("SELECT CAST(sum(v) AS SIGNED) FROM {table}"))
        .await
        .expect("my v")
        .expect("row");
    (a, b)
}

pub async fn prepared_left(
    pg: &tokio_postgres::Client,
    my: &mut mysql_async::Conn,
    node: &str,
) -> (usize, usize) {
    let prefix = format!("{node}:");
    (
        xa::pg::list_prepared(pg, &prefix)
            .await
            .expect("pg list")
            .len(),
        xa::mysql::list_prepared(my, &prefix)
            .await
            .expect("my list")
            .len(),
    )
}

pub async fn drop_tables(pg: &tokio_postgres::Client, my: &mut mysql_async::Conn, table: &str) {
    pg.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    my.query_drop(format!("DROP TABLE {table}"))
        .await
        .expect("drop");
}

/// Row `id`'s value on PostgreSQL and on MariaDB.
pub async fn row(
    pg: &tokio_postgres::Client,
    my: &mut mysql_async::Conn,
    table: &str,
    id: usize,
) -> (i32, i32) {
    let a: i32 = pg
        .query_one(&format!("SELECT v FROM {table} WHERE id = {id}"), &[])
        .await
        .expect("pg v")
        .get(0);
    let b: i32 = my
        .query_first(format!("SELECT v FROM {table} WHERE id = {id}"))
        .await
        .expect("my v")
        .expect("row");
    (a, b)
}
