//! MySQL/MariaDB's half of XA: `XA START 'xid'; work; XA END 'xid'; XA PREPARE 'xid'`, then
//! `XA COMMIT` / `XA ROLLBACK`, over the text protocol (`query_drop`): the prepared-statement
//! protocol refuses XA statements. And the in-doubt listing from `XA RECOVER`.
//!
//! XA ids are server-wide (not per database), and only their `gtrid` part is used here
//! (`bqual` empty, format id 1), at most [`MYSQL_XID_LEN_MAX`] bytes. `XA RECOVER` says
//! nothing about when a transaction was prepared; track ages with [`super::FirstSeen`].
//!
//! A prepared branch stays attached to the session that prepared it: while that session
//! lives, MariaDB answers `XA COMMIT` from any other session with `ER_XAER_NOTA`, exactly as
//! for a finished branch — which would make an idempotent commit report success for work
//! still prepared. So [`local`] takes the connection by value and closes it after
//! `XA PREPARE`, detaching the branch (it survives, and any session can finish it), and waits
//! until the server has removed the session (a second, short-lived connection watches the
//! process list): during the teardown the branch is visible to nobody. Closing costs a
//! connection per prepared branch; it is what makes phase 2 from another session (the
//! coordinator's later call, or recovery after a crash) correct.
//!
//! Server XA mode: register the branch with the coordinator only after [`local`] returned
//! (prepared and detached), and if registering fails, roll the branch back with [`finish`].
//! Then the coordinator never sends a rollback for a branch that might still be preparing,
//! so a rollback's `ER_XAER_NOTA` always means "already finished".
//!
//! If a future of [`local`] or [`one_phase`] is dropped midway, discard the connection.

use std::future::Future;
use std::pin::Pin;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{Finished, LocalError, Op, XaError, Xid, LIST_MAX, MYSQL_XID_LEN_MAX};

/// `ER_XAER_NOTA`: "Unknown XID" — nothing is prepared (or active) under that name.
pub const ER_XAER_NOTA: u16 = 1397;

/// `ER_XA_RBROLLBACK`: "Transaction branch was rolled back" — the answer to an
/// `XA ROLLBACK` that did roll back.
pub const ER_XA_RBROLLBACK: u16 = 1402;

/// The local work, as a boxed future borrowing the connection:
/// `|c| Box::pin(async move { c.query_drop("UPDATE …").await })`.
pub type Work<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

fn is_nota(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_XAER_NOTA)
}

/// Runs `work` inside `XA START … XA END`, prepares it under `xid` and closes the
/// connection (detaching the prepared branch; see the module docs). If `work` fails, the
/// branch is rolled back, the connection dropped (back to its pool, if pooled) and the error
/// returned as [`LocalError::Work`].
pub async fn local<T, E, F>(mut conn: Conn, xid: &Xid, work: F) -> Result<T, LocalError<E>>
where
    F: for<'a> FnOnce(&'a mut Conn) -> Work<'a, T, E>,
{
    xid.check_len(MYSQL_XID_LEN_MAX, "MySQL")
        .map_err(XaError::from)?;
    let q = xid.quoted();
    conn.query_drop(format!("XA START {q}"))
        .await
        .map_err(XaError::from)?;
    match work(&mut conn).await {
        Ok(v) => {
            let prepared = async {
                let id: Option<u64> = conn.query_first("SELECT CONNECTION_ID()").await?;
                conn.query_drop(format!("XA END {q}")).await?;
                conn.query_drop(format!("XA PREPARE {q}")).await?;
                Ok::<_, mysql_async::Error>(id)
            }
            .await;
            let id = match prepared {
                Ok(id) => id,
                Err(e) => {
                    abandon(&mut conn, &q).await;
                    return Err(XaError::from(e).into());
                }
            };
            // Detach the branch: close the session and wait until the server has let it go.
            // A failed goodbye still ends the session (the socket closes).
            let opts = conn.opts().clone();
            let _ = conn.disconnect().await;
            if let Some(id) = id {
                wait_session_gone(opts, id).await?;
            }
            Ok(v)
        }
        Err(e) => {
            abandon(&mut conn, &q).await;
            Err(LocalError::Work(e))
        }
    }
}

/// Longest wait for a closed session's prepared branch to be detached.
const DETACH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until session `id` is gone from the server's process list. While the session is
/// being torn down its prepared branch is in neither state a phase 2 can see — `XA COMMIT`
/// answers "unknown XID" and `XA RECOVER` may not list it either (a commit was lost that way
/// in the bank example's checks) — so the branch may not be registered with the coordinator
/// before this returns. The session leaves the list only after its branch was detached.
async fn wait_session_gone(opts: mysql_async::Opts, id: u64) -> Result<(), XaError> {
    let mut c = Conn::new(opts).await?;
    let t0 = std::time::Instant::now();
    let result = loop {
        let n: Option<i64> = c
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"
            ))
            .await?;
        if n == Some(0) {
            break Ok(());
        }
        if t0.elapsed() >= DETACH_WAIT {
            break Err(XaError::StillAttached(format!("session {id}")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    };
    let _ = c.disconnect().await;
    result
}

/// Ends and rolls back an unprepared branch after a failure. Errors are ignored: the branch
/// may already be gone (a deadlock rolls it back), and an unprepared branch cannot outlive
/// its connection anyway.
async fn abandon(conn: &mut Conn, q: &str) {
    let _ = conn.query_drop(format!("XA END {q}")).await;
    let _ = conn.query_drop(format!("XA ROLLBACK {q}")).await;
}

/// Runs `work` in a plain transaction and commits it: the one-phase commit of a transaction
/// with a single participant.
pub async fn one_phase<T, E, F>(conn: &mut Conn, work: F) -> Result<T, LocalError<E>>
where
    F: for<'a> FnOnce(&'a mut Conn) -> Work<'a, T, E>,
{
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(XaError::from)?;
    match work(conn).await {
        Ok(v) => {
            conn.query_drop("COMMIT").await.map_err(XaError::from)?;
            Ok(v)
        }
        Err(e) => {
            conn.query_drop("ROLLBACK").await.map_err(XaError::from)?;
            Err(LocalError::Work(e))
        }
    }
}

/// Commits or rolls back the prepared branch `xid`. Idempotent: a branch that is no longer
/// prepared (already finished) is success.
///
/// MariaDB answers [`ER_XAER_NOTA`] both for a finished branch and for one still attached to
/// the session that prepared it (that session may be closing right now), and `XA RECOVER`
/// lists the second kind. So after `ER_XAER_NOTA` this checks `XA RECOVER`: still listed is
/// [`XaError::StillAttached`] (call again shortly), absent is success. A rollback answered
/// `XA_RBROLLBACK` (1402) did roll the branch back.
pub async fn finish(conn: &mut Conn, xid: &Xid, op: Op) -> Result<Finished, XaError> {
    xid.check_len(MYSQL_XID_LEN_MAX, "MySQL")?;
    let verb = match op {
        Op::Commit => "XA COMMIT",
        Op::Rollback => "XA ROLLBACK",
    };
    match conn.query_drop(format!("{verb} {}", xid.quoted())).await {
        Ok(()) => Ok(Finished::Done),
        Err(mysql_async::Error::Server(s)) if op == Op::Rollback && s.code == ER_XA_RBROLLBACK => {
            Ok(Finished::Done)
        }
        Err(e) if is_nota(&e) => {
            if list_prepared(conn, xid.as_str()).await?.contains(xid) {
                Err(XaError::StillAttached(xid.as_str().to_string()))
            } else {
                Ok(Finished::NotPrepared)
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Prepared branches on the whole server whose xid starts with `prefix`, at most
/// [`LIST_MAX`]. Ages are not known here: see [`super::FirstSeen`].
pub async fn list_prepared(conn: &mut Conn, prefix: &str) -> Result<Vec<Xid>, XaError> {
    let rows: Vec<(i64, i64, i64, Vec<u8>)> = conn.query("XA RECOVER").await?;
    let mut out = Vec::new();
    for (format_id, gtrid_len, bqual_len, data) in rows {
        if format_id != 1 || bqual_len != 0 {
            continue;
        }
        let Some(gtrid) = usize::try_from(gtrid_len).ok().and_then(|n| data.get(..n)) else {
            return Err(XaError::Protocol(format!(
                "XA RECOVER row with gtrid_length {gtrid_len} and {} data bytes",
                data.len()
            )));
        };
        let Ok(s) = std::str::from_utf8(gtrid) else {
            continue;
        };
        if !s.starts_with(prefix) {
            continue;
        }
        if let Ok(xid) = Xid::new(s) {
            out.push(xid);
            if out.len() >= LIST_MAX {
                break;
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Against a real MySQL/MariaDB (`TANDEM_TEST_MYSQL`); own tables and xids per test.
    use super::*;
    use crate::testenv;
    use crate::xa::XidError;

    async fn connect(test: &str) -> Option<Conn> {
        let url = testenv::url("TANDEM_TEST_MYSQL", test)?;
        let opts = mysql_async::Opts::from_url(&url).expect("url");
        Some(Conn::new(opts).await.expect("connect"))
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

    async fn count(c: &mut Conn, t: &str) -> i64 {
        c.query_first(format!("SELECT count(*) FROM {t}"))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn prepare_then_commit_and_rollback_idempotently() {
        let Some(mut c) = connect("xa::mysql::prepare_then_commit_and_rollback_idempotently").await
        else {
            return;
        };
        let t = format!("xa_my_{}", uniq("a"));
        c.query_drop(format!(
            "CREATE TABLE {t} (id int primary key, v int) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        let prefix = uniq("p");
        let x1 = Xid::new(format!("{prefix}-1")).unwrap();
        let x2 = Xid::new(format!("{prefix}-2")).unwrap();
        for (k, x) in [&x1, &x2].into_iter().enumerate() {
            let sql = format!("INSERT INTO {t} VALUES ({k}, 1)");
            let conn = connect("xa::mysql::local").await.unwrap();
            local(conn, x, |c| {
                Box::pin(async move { c.query_drop(sql).await })
            })
            .await
            .unwrap();
        }
        // Another session sees nothing until commit.
        let mut other = connect("xa::mysql::other").await.unwrap();
        assert_eq!(count(&mut other, &t).await, 0);
        assert_eq!(
            list_prepared(&mut c, &prefix).await.unwrap(),
            vec![x1.clone(), x2.clone()]
        );
        // Phase 2 from a different connection, as after a coordinator restart. Guards the
        // close after XA PREPARE: a branch still attached to its session answers NOTA here,
        // which `finish` takes for "done", and the count below would stay 0.
        // The first phase 2 finds the branch prepared; a repeat says it is gone.
        assert_eq!(
            finish(&mut other, &x1, Op::Commit).await.unwrap(),
            Finished::Done
        );
        assert_eq!(
            finish(&mut other, &x1, Op::Commit).await.unwrap(),
            Finished::NotPrepared
        );
        assert_eq!(
            finish(&mut other, &x2, Op::Rollback).await.unwrap(),
            Finished::Done
        );
        assert_eq!(
            finish(&mut other, &x2, Op::Rollback).await.unwrap(),
            Finished::NotPrepared
        );
        assert_eq!(count(&mut other, &t).await, 1);
        assert!(list_prepared(&mut c, &prefix).await.unwrap().is_empty());
        c.query_drop(format!("DROP TABLE {t}")).await.unwrap();
    }

    /// A branch still attached to the session that prepared it (that session not closed
    /// yet) answers NOTA to phase 2 from elsewhere, like a finished one: `finish` must say
    /// "try again", not "done", or the commit is lost. Once the session is gone, it works.
    #[tokio::test]
    async fn phase_two_waits_for_a_branch_still_attached_to_its_session() {
        let Some(mut c) = connect("xa::mysql::phase_two_waits_for_a_branch_still_attached").await
        else {
            return;
        };
        let t = format!("xa_my_{}", uniq("c"));
        c.query_drop(format!(
            "CREATE TABLE {t} (id int primary key, v int) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        let x = Xid::new(uniq("att")).unwrap();
        let q = x.quoted();
        let mut owner = connect("xa::mysql::owner").await.unwrap();
        for stmt in [
            format!("XA START {q}"),
            format!("INSERT INTO {t} VALUES (1, 1)"),
            format!("XA END {q}"),
            format!("XA PREPARE {q}"),
        ] {
            owner.query_drop(stmt).await.unwrap();
        }
        let r = finish(&mut c, &x, Op::Commit).await;
        assert!(matches!(r, Err(XaError::StillAttached(_))), "{r:?}");
        owner.disconnect().await.unwrap();
        let mut done = false;
        for _ in 0..100 {
            match finish(&mut c, &x, Op::Commit).await {
                Ok(found) => {
                    assert_eq!(found, Finished::Done);
                    done = true;
                    break;
                }
                Err(XaError::StillAttached(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(done, "the branch never became committable");
        assert_eq!(count(&mut c, &t).await, 1, "committed, not lost");
        assert!(list_prepared(&mut c, x.as_str()).await.unwrap().is_empty());
        c.query_drop(format!("DROP TABLE {t}")).await.unwrap();
    }

    #[tokio::test]
    async fn failed_work_is_rolled_back_never_prepared() {
        let Some(mut c) = connect("xa::mysql::failed_work_is_rolled_back_never_prepared").await
        else {
            return;
        };
        let t = format!("xa_my_{}", uniq("b"));
        c.query_drop(format!(
            "CREATE TABLE {t} (id int primary key, v int) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        let prefix = uniq("q");
        let x = Xid::new(format!("{prefix}-1")).unwrap();
        let sql = format!("INSERT INTO {t} VALUES (1, 1)");
        let conn = connect("xa::mysql::local").await.unwrap();
        let r = local(conn, &x, |c| {
            Box::pin(async move {
                c.query_drop(sql.clone()).await?;
                c.query_drop(sql).await
            })
        })
        .await;
        assert!(matches!(r, Err(LocalError::Work(_))), "{r:?}");
        assert!(list_prepared(&mut c, &prefix).await.unwrap().is_empty());
        // One phase commits directly.
        let sql = format!("INSERT INTO {t} VALUES (2, 1)");
        one_phase(&mut c, |c| Box::pin(async move { c.query_drop(sql).await }))
            .await
            .unwrap();
        assert_eq!(count(&mut c, &t).await, 1);
        // Too long for MySQL's gtrid: a clear error before any SQL runs.
        let long = Xid::new("x".repeat(65)).unwrap();
        let conn = connect("xa::mysql::local").await.unwrap();
        let r = local(conn, &long, |c| {
            Box::pin(async move { c.query_drop("SELECT 1").await })
        })
        .await;
        assert!(
            matches!(
                r,
                Err(LocalError::Xa(XaError::Xid(XidError::TooLong { .. })))
            ),
            "{r:?}"
        );
        c.query_drop(format!("DROP TABLE {t}")).await.unwrap();
    }
}
