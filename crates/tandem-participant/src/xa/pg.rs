//! PostgreSQL's half of XA: `BEGIN; work; PREPARE TRANSACTION 'xid'`, then
//! `COMMIT PREPARED` / `ROLLBACK PREPARED`, all over the simple-query protocol; and the
//! in-doubt listing from `pg_prepared_xacts`.
//!
//! A prepared transaction belongs to the database it was prepared in: it can only be
//! finished from a connection to that database, so the listing keeps to the connected one.
//! The server needs `max_prepared_transactions > 0`.
//!
//! The `client` given to [`local`] and [`one_phase`] must not be used by anyone else until
//! they return (its session is inside the transaction). If their future is dropped midway,
//! the session is left inside the transaction: discard that connection.

use std::future::Future;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{Finished, LocalError, Op, Prepared, XaError, Xid, LIST_MAX, PG_XID_LEN_MAX};

/// Runs `work` in a new transaction and prepares it under `xid`. If `work` fails, the
/// transaction is rolled back and its error returned as [`LocalError::Work`].
pub async fn local<'c, F, Fut, T, E>(
    client: &'c Client,
    xid: &Xid,
    work: F,
) -> Result<T, LocalError<E>>
where
    F: FnOnce(&'c Client) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    xid.check_len(PG_XID_LEN_MAX, "PostgreSQL")
        .map_err(XaError::from)?;
    client.batch_execute("BEGIN").await.map_err(XaError::from)?;
    match work(client).await {
        Ok(v) => {
            // A failed PREPARE leaves nothing prepared: PostgreSQL aborts the transaction.
            client
                .batch_execute(&format!("PREPARE TRANSACTION {}", xid.quoted()))
                .await
                .map_err(XaError::from)?;
            Ok(v)
        }
        Err(e) => {
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(XaError::from)?;
            Err(LocalError::Work(e))
        }
    }
}

/// Runs `work` in a transaction and commits it at once: the one-phase commit of a
/// transaction with a single participant.
pub async fn one_phase<'c, F, Fut, T, E>(client: &'c Client, work: F) -> Result<T, LocalError<E>>
where
    F: FnOnce(&'c Client) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    client.batch_execute("BEGIN").await.map_err(XaError::from)?;
    match work(client).await {
        Ok(v) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(XaError::from)?;
            Ok(v)
        }
        Err(e) => {
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(XaError::from)?;
            Err(LocalError::Work(e))
        }
    }
}

/// Commits or rolls back the prepared transaction `xid`. Idempotent: an xid that is not
/// prepared (SQLSTATE 42704, already finished) is success.
pub async fn finish(client: &Client, xid: &Xid, op: Op) -> Result<Finished, XaError> {
    let verb = match op {
        Op::Commit => "COMMIT PREPARED",
        Op::Rollback => "ROLLBACK PREPARED",
    };
    match client
        .batch_execute(&format!("{verb} {}", xid.quoted()))
        .await
    {
        Ok(()) => Ok(Finished::Done),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(Finished::NotPrepared),
        Err(e) => Err(e.into()),
    }
}

/// Prepared transactions of the connected database whose xid starts with `prefix`, oldest
/// first, at most [`LIST_MAX`].
pub async fn list_prepared(client: &Client, prefix: &str) -> Result<Vec<Prepared>, XaError> {
    let rows = client
        .query(
            "SELECT gid, GREATEST(extract(epoch FROM now() - prepared), 0)::float8 \
             FROM pg_prepared_xacts \
             WHERE database = current_database() AND starts_with(gid, $1) \
             ORDER BY prepared LIMIT $2",
            &[&prefix, &(LIST_MAX as i64)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let gid: String = row.try_get(0)?;
        let age_s: f64 = row.try_get(1)?;
        // Someone else's transaction that happens to share the prefix but is not an xid we
        // could have made: not ours to touch.
        let Ok(xid) = Xid::new(gid) else { continue };
        out.push(Prepared {
            xid,
            age: Duration::from_secs_f64(age_s.clamp(0.0, 1e9)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Against a real PostgreSQL (`TANDEM_TEST_PG`); each test uses its own table and xids.
    use super::*;
    use crate::testenv;

    async fn connect(test: &str) -> Option<Client> {
        let url = testenv::url("TANDEM_TEST_PG", test)?;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        Some(client)
    }

    async fn table(c: &Client, name: &str) {
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int primary key, v int)"
        ))
        .await
        .unwrap();
    }

    async fn count(c: &Client, name: &str) -> i64 {
        c.query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    fn uniq(tag: &str) -> String {
        format!(
            "t{}{}{tag}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        )
    }

    #[tokio::test]
    async fn prepare_then_commit_and_rollback_idempotently() {
        let Some(c) = connect("xa::pg::prepare_then_commit_and_rollback_idempotently").await else {
            return;
        };
        let t = format!("xa_pg_{}", uniq("a"));
        table(&c, &t).await;
        let prefix = uniq("p");
        let x1 = Xid::new(format!("{prefix}-1")).unwrap();
        let x2 = Xid::new(format!("{prefix}-2")).unwrap();
        for (k, x) in [&x1, &x2].into_iter().enumerate() {
            local(&c, x, |c| {
                let t = t.clone();
                async move {
                    c.execute(&format!("INSERT INTO {t} VALUES ({k}, 1)"), &[])
                        .await
                }
            })
            .await
            .unwrap();
        }
        // Prepared work is invisible until committed.
        assert_eq!(count(&c, &t).await, 0);
        let listed = list_prepared(&c, &prefix).await.unwrap();
        let names: Vec<_> = listed.iter().map(|p| p.xid.as_str()).collect();
        assert_eq!(names, vec![x1.as_str(), x2.as_str()]);
        // The first phase 2 finds the branch prepared; a repeat says it is gone.
        assert_eq!(finish(&c, &x1, Op::Commit).await.unwrap(), Finished::Done);
        assert_eq!(
            finish(&c, &x1, Op::Commit).await.unwrap(),
            Finished::NotPrepared
        );
        assert_eq!(finish(&c, &x2, Op::Rollback).await.unwrap(), Finished::Done);
        assert_eq!(
            finish(&c, &x2, Op::Rollback).await.unwrap(),
            Finished::NotPrepared
        );
        assert_eq!(count(&c, &t).await, 1);
        assert!(list_prepared(&c, &prefix).await.unwrap().is_empty());
        c.batch_execute(&format!("DROP TABLE {t}")).await.unwrap();
    }

    /// The server-XA-mode handler as a participant writes it: the client's call prepares,
    /// the coordinator's `op=commit` (sent twice, as after a retry) commits once.
    #[tokio::test]
    async fn dtm_handler_flow_prepares_then_commits_by_query() {
        let Some(c) = connect("xa::pg::dtm_handler_flow_prepares_then_commits_by_query").await
        else {
            return;
        };
        let t = format!("xa_pg_{}", uniq("c"));
        table(&c, &t).await;
        let gid = uniq("g");
        let query = format!("gid={gid}&branch_id=01&trans_type=xa");
        for q in [
            query.clone(),
            format!("{query}&op=commit"),
            format!("{query}&op=commit"),
        ] {
            match crate::xa::Phase2::from_query(&q).unwrap() {
                crate::xa::Phase2::Finish { xid, op } => {
                    let _found = finish(&c, &xid, op).await.unwrap();
                }
                crate::xa::Phase2::Local { xid, .. } => {
                    assert_eq!(xid.as_str(), format!("{gid}-01"));
                    let sql = format!("INSERT INTO {t} VALUES (1, 1)");
                    local(&c, &xid, |c| async move { c.execute(&sql, &[]).await })
                        .await
                        .unwrap();
                    assert_eq!(count(&c, &t).await, 0);
                }
            }
        }
        assert_eq!(count(&c, &t).await, 1);
        assert!(list_prepared(&c, &gid).await.unwrap().is_empty());
        c.batch_execute(&format!("DROP TABLE {t}")).await.unwrap();
    }

    #[tokio::test]
    async fn failed_work_is_rolled_back_and_not_prepared() {
        let Some(c) = connect("xa::pg::failed_work_is_rolled_back_and_not_prepared").await else {
            return;
        };
        let t = format!("xa_pg_{}", uniq("b"));
        table(&c, &t).await;
        let prefix = uniq("q");
        let x = Xid::new(format!("{prefix}-1")).unwrap();
        let r = local(&c, &x, |c| {
            let t = t.clone();
            async move {
                c.execute(&format!("INSERT INTO {t} VALUES (1, 1)"), &[])
                    .await?;
                c.execute(&format!("INSERT INTO {t} VALUES (1, 1)"), &[])
                    .await
            }
        })
        .await;
        assert!(matches!(r, Err(LocalError::Work(_))), "{r:?}");
        assert!(list_prepared(&c, &prefix).await.unwrap().is_empty());
        // The session is usable again, and one phase commits directly.
        one_phase(&c, |c| {
            let t = t.clone();
            async move {
                c.execute(&format!("INSERT INTO {t} VALUES (2, 1)"), &[])
                    .await
            }
        })
        .await
        .unwrap();
        assert_eq!(count(&c, &t).await, 1);
        c.batch_execute(&format!("DROP TABLE {t}")).await.unwrap();
    }
}
