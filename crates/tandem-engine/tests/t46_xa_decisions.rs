//! The ways a decision used to be lost between the log and real XA databases, each replayed
//! against PostgreSQL and MariaDB with the engine's failpoints.
//!
//! - Bug 1: the decision's sync fails; the process lived on and in-doubt recovery rolled both
//!   branches back on the stale published state (`prepared`); on restart the decision was
//!   found, COMMIT answered "no such xid", counted as success: `succeeded`, nothing committed.
//!   Now the coordinator fails stop: nothing is resolved or called, the branches stay prepared,
//!   and a restart commits them.
//! - Bug 2: a second coordinator with the same node name (its own log, the same databases)
//!   rolled back the first one's committed branches as orphans. Now xids carry the store's
//!   incarnation, and it never lists them as its own.
//! - Bug 4: a gid retried after a crash lost the whole unforced record of its first attempt:
//!   the retry committed, and the next in-doubt pass committed the lost attempt's branches too.
//!   Now xids carry the attempt's nonce: the lost attempt's branches are rolled back.
//!
//! Needs `TANDEM_TEST_PG` and `TANDEM_TEST_MYSQL` (skipped loudly otherwise, failing in CI).
#![cfg(all(feature = "xa", feature = "failpoints"))]

use std::sync::Arc;
use std::time::Duration;

use tandem_engine::tandem_core::{Identity, TxStatus, Xid as CoreXid};
use tandem_engine::xa::{MysqlResource, PgResource};
use tandem_engine::{
    BranchError, CallRequest, Coordinator, EngineConfig, EngineError, InDoubtConfig, Resource, Vote,
};
use tandem_participant::xa::{self, Xid};
use tokio::sync::Semaphore;

mod xa_common;
use xa_common::*;

/// An XA resource whose commits wait until the test lets them through.
struct Gate<R> {
    inner: Arc<R>,
    open: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl<R: Resource> Resource for Gate<R> {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        self.inner.prepare(call).await
    }
    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError> {
        let _p = self.open.acquire().await;
        self.inner.commit(call).await
    }
    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.inner.rollback(call).await
    }
}

fn fast_in_doubt() -> InDoubtConfig {
    InDoubtConfig {
        interval: Duration::from_millis(100),
        orphan_age: Duration::ZERO,
        call_timeout: Duration::from_secs(10),
    }
}

fn cfg(node: &str) -> EngineConfig {
    EngineConfig {
        node_name: Some(node.into()),
        ..EngineConfig::default()
    }
}

async fn open(dir: &std::path::Path, node: &str, d: &Dbs, table: &str) -> Coordinator {
    Coordinator::builder()
        .config(cfg(node))
        .xa_resource("pg", pg_resource(&d.pg, table))
        .xa_resource("my", my_resource(&d.my, table))
        .in_doubt_config(fast_in_doubt())
        .open(dir)
        .await
        .expect("open")
}

/// A coordinator whose commits wait on `gate` (so it can be stopped after the decision).
async fn open_gated(
    dir: &std::path::Path,
    node: &str,
    d: &Dbs,
    table: &str,
    gate: &Arc<Semaphore>,
) -> Coordinator {
    let pg: Arc<PgResource> = pg_resource(&d.pg, table);
    let my: Arc<MysqlResource> = my_resource(&d.my, table);
    Coordinator::builder()
        .config(cfg(node))
        .resource(
            "pg",
            Arc::new(Gate {
                inner: pg.clone(),
                open: gate.clone(),
            }),
        )
        .in_doubt("pg", pg)
        .resource(
            "my",
            Arc::new(Gate {
                inner: my.clone(),
                open: gate.clone(),
            }),
        )
        .in_doubt("my", my)
        .in_doubt_config(fast_in_doubt())
        .open(dir)
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t46_a_failed_decision_sync_stops_everything_and_the_restart_commits() {
    let Some(d) = dbs("t46_a_failed_decision_sync") else {
        return;
    };
    let (node, table) = (uniq("n"), uniq("xa_t46_"));
    let (pg, mut my) = setup(&d, &table).await;
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &node, &d, &table).await;

    // The slow prepare keeps the decision away until the failpoint is armed; the decision's
    // sync then fails (after the data reached the disk, as a real failed fsync may).
    let run = {
        let c = c.clone();
        tokio::spawn(async move {
            c.two_phase("t46")
                .participant("pg", "sleep:600:1:5")
                .participant("my", "1:5")
                .run()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    fail::cfg("store-after-sync", "return").unwrap();
    let why = tokio::time::timeout(Duration::from_secs(5), c.failed())
        .await
        .expect("fail-stop within seconds");
    assert!(why.contains("store-after-sync"), "{why}");
    assert!(!c.ready());
    assert!(run.await.unwrap().is_err(), "the caller hears no success");
    assert!(matches!(c.get("t46").await, Err(EngineError::Failed(_))));
    assert!(matches!(
        c.two_phase("other").participant("pg", "1:1").run().await,
        Err(EngineError::Failed(_))
    ));
    // In-doubt recovery would run every 100 ms: it must not act on what the log might hold.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = c.resolve_in_doubt().await;
    assert_eq!(
        (s.committed, s.rolled_back, s.orphans_rolled_back),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        prepared_left(&pg, &mut my, &node).await,
        (1, 1),
        "both branches stay prepared for the restart"
    );
    let _ = c.close_within(Duration::ZERO).await;
    drop(c);
    fail::remove("store-after-sync");

    // The restart finds the decision and commits both.
    let c = open(dir.path(), &node, &d, &table).await;
    let out = c.wait("t46").await.unwrap();
    assert_eq!(out.status, TxStatus::Succeeded, "{out:?}");
    assert_eq!(out.heuristic, None);
    assert_eq!(
        row(&pg, &mut my, &table, 1).await,
        (105, 105),
        "both committed"
    );
    assert_eq!(prepared_left(&pg, &mut my, &node).await, (0, 0));
    c.close().await.unwrap();
    drop_tables(&pg, &mut my, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t47_a_namesake_coordinator_never_rolls_back_our_branches() {
    let Some(d) = dbs("t47_a_namesake_coordinator") else {
        return;
    };
    let (node, table) = (uniq("n"), uniq("xa_t47_"));
    let (pg, mut my) = setup(&d, &table).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // A decides commit, then stops before phase 2 (its commits wait at the gate).
    let gate = Arc::new(Semaphore::new(0));
    let a = open_gated(dir_a.path(), &node, &d, &table, &gate).await;
    let run = {
        let a = a.clone();
        tokio::spawn(async move {
            a.two_phase("t47")
                .participant("pg", "1:7")
                .participant("my", "1:7")
                .run()
                .await
        })
    };
    for _ in 0..100 {
        if a.get("t47")
            .await
            .unwrap()
            .is_some_and(|t| t.status == TxStatus::Submitted)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.close_within(Duration::ZERO).await.unwrap();
    drop(run);
    drop(a);
    assert_eq!(prepared_left(&pg, &mut my, &node).await, (1, 1));

    // B: the same node name, its own log, the same databases, orphan age zero.
    let b = open(dir_b.path(), &node, &d, &table).await;
    let s = b.resolve_in_doubt().await;
    assert_eq!((s.listed, s.orphans_rolled_back), (0, 0), "{s:?}");
    assert_eq!(
        prepared_left(&pg, &mut my, &node).await,
        (1, 1),
        "A's branches untouched"
    );
    b.close().await.unwrap();

    // A comes back and finishes what it decided.
    let a = open(dir_a.path(), &node, &d, &table).await;
    let out = a.wait("t47").await.unwrap();
    assert_eq!(
        (out.status, out.heuristic.clone()),
        (TxStatus::Succeeded, None),
        "{out:?}"
    );
    assert_eq!(row(&pg, &mut my, &table, 1).await, (107, 107));
    assert_eq!(prepared_left(&pg, &mut my, &node).await, (0, 0));
    a.close().await.unwrap();
    drop_tables(&pg, &mut my, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t48_a_retried_gid_never_commits_the_lost_attempts_branches() {
    let Some(d) = dbs("t48_a_retried_gid") else {
        return;
    };
    let (node, table) = (uniq("n"), uniq("xa_t48_"));
    let (pg, mut my) = setup(&d, &table).await;
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &node, &d, &table).await;
    let me: Identity = c.identity().clone();

    // The lost attempt: branch 01 prepared on PostgreSQL, 02 on MariaDB, under this
    // coordinator's identity, and no record of it (its unforced record died in a crash).
    let lost = |branch: &str| Xid::new(CoreXid::format(&me, "t48", branch, 0xdead)).unwrap();
    let sql_pg = format!("UPDATE {table} SET v = v + 1000 WHERE id = 2");
    xa::pg::local(&pg, &lost("01"), |cl| async move {
        cl.execute(&sql_pg, &[]).await
    })
    .await
    .unwrap();
    let sql_my = format!("UPDATE {table} SET v = v + 1000 WHERE id = 2");
    let conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&d.my).unwrap())
        .await
        .unwrap();
    xa::mysql::local(conn, &lost("02"), |cl| {
        Box::pin(async move { mysql_async::prelude::Queryable::query_drop(cl, sql_my).await })
    })
    .await
    .unwrap();

    // The retry, participants in the other order (01 = MariaDB, 02 = PostgreSQL): commits.
    let out = c
        .two_phase("t48")
        .participant("my", "3:1")
        .participant("pg", "3:1")
        .run()
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");

    // In-doubt recovery: the lost attempt's branches are rolled back, never committed.
    let s = c.resolve_in_doubt().await;
    assert_eq!((s.committed, s.orphans_rolled_back), (0, 2), "{s:?}");
    assert_eq!(
        row(&pg, &mut my, &table, 2).await,
        (100, 100),
        "lost attempt rolled back"
    );
    assert_eq!(
        row(&pg, &mut my, &table, 3).await,
        (101, 101),
        "the retry committed"
    );
    assert_eq!(prepared_left(&pg, &mut my, &node).await, (0, 0));
    c.close().await.unwrap();
    drop_tables(&pg, &mut my, &table).await;
}
