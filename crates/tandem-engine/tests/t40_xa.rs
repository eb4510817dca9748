//! XA in library mode against real databases: 2PC across PostgreSQL and MariaDB, a no vote,
//! one-phase commit, and in-doubt recovery resolving prepared transactions from the log.
//!
//! Guards against: a commit on one database and not the other, a prepared transaction left
//! behind after a rollback, an orphan prepared by a prepare that outlived its call timeout,
//! and a committed transaction whose branch stayed prepared.
//!
//! Needs `TANDEM_TEST_PG` and `TANDEM_TEST_MYSQL` (skipped loudly otherwise, failing in CI).
//! Every test has its own tables and its own coordinator name (the xid prefix), so parallel
//! tests never see each other's prepared transactions.
#![cfg(feature = "xa")]

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tandem_engine::tandem_core::TxStatus;
use tandem_engine::xa::PgResource;
use tandem_engine::{
    BranchError, CallRequest, Coordinator, EngineConfig, InDoubtConfig, Resource, Vote,
};
use tandem_participant::xa::{self, Xid};

mod xa_common;
use xa_common::*;

/// A participant that keeps working after the coordinator stops waiting (as a remote one
/// does): its prepare runs in a task of its own, not cancelled by the call timeout.
struct Detached(Arc<PgResource>);

#[async_trait::async_trait]
impl Resource for Detached {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        let (r, call) = (self.0.clone(), call.clone());
        tokio::spawn(async move { r.prepare(&call).await })
            .await
            .map_err(|e| BranchError::Transient(e.to_string()))?
    }
    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.0.commit(call).await
    }
    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.0.rollback(call).await
    }
}

async fn coordinator(
    dir: &std::path::Path,
    node: &str,
    d: &Dbs,
    table: &str,
    in_doubt: InDoubtConfig,
) -> Coordinator {
    let pg = pg_resource(&d.pg, table);
    Coordinator::builder()
        .config(EngineConfig {
            node_name: Some(node.into()),
            ..EngineConfig::default()
        })
        .resource("pg", Arc::new(Detached(pg.clone())))
        .in_doubt("pg", pg)
        .xa_resource("my", my_resource(&d.my, table))
        .in_doubt_config(in_doubt)
        .open(dir)
        .await
        .expect("open")
}

#[tokio::test]
async fn t40_two_phase_across_postgres_and_mariadb() {
    let Some(d) = dbs("t40_two_phase_across_postgres_and_mariadb") else {
        return;
    };
    let (node, table) = (uniq("n"), uniq("xa_t40_"));
    let (pg, mut my) = setup(&d, &table).await;
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator(dir.path(), &node, &d, &table, InDoubtConfig::default()).await;

    let out = c
        .two_phase("t40-ok")
        .participant("pg", "1:-10")
        .participant("my", "1:10")
        .run()
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(values(&pg, &mut my, &table).await, (290, 310));

    // A no vote from MariaDB: PostgreSQL's prepared change is rolled back.
    let out = c
        .two_phase("t40-no")
        .participant("pg", "1:-10")
        .participant("my", "fail")
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Failed, "{out:?}");
    assert_eq!(values(&pg, &mut my, &table).await, (290, 310));
    assert_eq!(prepared_left(&pg, &mut my, &node).await, (0, 0));

    // Alone: one phase, no prepared transaction at any moment.
    let out = c
        .two_phase("t40-one")
        .participant("my", "1:5")
        .run()
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(values(&pg, &mut my, &table).await, (290, 315));
    c.close().await.unwrap();
    drop_tables(&pg, &mut my, &table).await;
}

#[tokio::test]
async fn t41_in_doubt_recovery_resolves_from_the_log() {
    let Some(d) = dbs("t41_in_doubt_recovery_resolves_from_the_log") else {
        return;
    };
    let (node, table) = (uniq("n"), uniq("xa_t41_"));
    let (pg, mut my) = setup(&d, &table).await;
    let dir = tempfile::tempdir().unwrap();
    let long = InDoubtConfig {
        interval: Duration::from_secs(3600),
        orphan_age: Duration::from_secs(3600),
        call_timeout: Duration::from_secs(10),
    };
    let c = coordinator(dir.path(), &node, &d, &table, long.clone()).await;

    // 1. A prepare that outlives its call timeout: the engine aborts (its rollback finds
    //    nothing prepared yet), then the prepare lands. The log says failed: roll it back.
    let out = c
        .two_phase("t41-slow")
        .participant("pg", "sleep:1500:1:-1")
        .participant("my", "1:1")
        .options(|o| o.request_timeout_ms = Some(300))
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Failed, "{out:?}");
    let mut landed = false;
    for _ in 0..50 {
        if prepared_left(&pg, &mut my, &node).await.0 == 1 {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        landed,
        "the slow prepare should have left a prepared transaction"
    );

    // 2. A committed transaction whose branch is still prepared (its commit was lost):
    //    the log holds the decision, so commit it.
    let out = c
        .two_phase("t41-ok")
        .participant("pg", "2:0")
        .participant("my", "1:0")
        .run()
        .await
        .unwrap();
    assert!(out.succeeded());
    let ok_tx = c.get("t41-ok").await.unwrap().unwrap();
    let origin = ok_tx.origin.clone().unwrap();
    let lost = Xid::new(tandem_engine::tandem_core::Xid::format(
        &origin,
        "t41-ok",
        "02",
        ok_tx.nonce,
    ))
    .unwrap();
    let sql = format!("UPDATE {table} SET v = v + 7 WHERE id = 1");
    let conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&d.my).unwrap())
        .await
        .unwrap();
    xa::mysql::local(conn, &lost, |c| {
        Box::pin(async move { c.query_drop(sql).await })
    })
    .await
    .unwrap();

    // 3. Ours, but no record explains it: left while young, rolled back once old.
    let orphan = Xid::new(tandem_engine::tandem_core::Xid::format(
        c.identity(),
        "never-logged",
        "01",
        1,
    ))
    .unwrap();
    let t = table.clone();
    xa::pg::local(&pg, &orphan, |c| async move {
        c.execute(&format!("UPDATE {t} SET v = v + 1000 WHERE id = 3"), &[])
            .await
    })
    .await
    .unwrap();

    // 4. Someone else's prepared transactions, never touched: another node's, and one of a
    //    coordinator with our very name but another store (another incarnation) — bug 2.
    let foreign = Xid::new(format!("{}:t41-ok:01", uniq("other"))).unwrap();
    let twin = tandem_engine::tandem_core::Identity::new(
        origin.node.clone(),
        origin.incarnation.wrapping_add(1),
    )
    .unwrap();
    let namesake = Xid::new(tandem_engine::tandem_core::Xid::format(
        &twin,
        "t41-ok",
        "01",
        ok_tx.nonce,
    ))
    .unwrap();
    xa::pg::local(&pg, &namesake, |c| async move {
        c.execute("SELECT 1", &[]).await
    })
    .await
    .unwrap();
    xa::pg::local(&pg, &foreign, |c| async move {
        c.execute("SELECT 1", &[]).await
    })
    .await
    .unwrap();

    let s = c.resolve_in_doubt().await;
    assert_eq!(
        (s.rolled_back, s.committed, s.left_young),
        (1, 1, 1),
        "{s:?}"
    );
    // The same actions, as /metrics counts them (RECOVERY_ACTIONS: resumed, committed,
    // rolled back).
    let m = c.metrics().snapshot();
    assert_eq!((m.recovery[1], m.recovery[2]), (1, 1), "{:?}", m.recovery);
    // Left: the young orphan, and the namesake's branch.
    assert_eq!(prepared_left(&pg, &mut my, &node).await, (2, 0));
    assert_eq!(values(&pg, &mut my, &table).await, (300, 307));
    c.close().await.unwrap();
    drop(c);

    // Reopen with a zero orphan age: the orphan goes at the pass that runs on open.
    let c = coordinator(
        dir.path(),
        &node,
        &d,
        &table,
        InDoubtConfig {
            orphan_age: Duration::ZERO,
            ..long
        },
    )
    .await;
    let s = c.resolve_in_doubt().await;
    assert!(s.orphans_rolled_back >= 1, "{s:?}");
    assert_eq!(
        prepared_left(&pg, &mut my, &node).await,
        (1, 0),
        "only the namesake's branch is left"
    );
    assert_eq!(values(&pg, &mut my, &table).await, (300, 307));
    c.close().await.unwrap();

    for x in [&foreign, &namesake] {
        let left = xa::pg::list_prepared(&pg, x.as_str()).await.unwrap();
        assert_eq!(left.len(), 1, "another coordinator's xid {x} was touched");
        let _ = xa::pg::finish(&pg, x, xa::Op::Rollback).await.unwrap();
    }
    drop_tables(&pg, &mut my, &table).await;
}

/// Guards against bug 3: the node name is the store's, not today's configuration's. A store
/// created as `first` refuses to open as `second` (naming both); with no name it stays
/// `first`, and so do the xids built from it.
#[tokio::test]
async fn t42_node_name_is_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let open = |node: Option<&str>| {
        let node = node.map(String::from);
        let dir = dir.path().to_path_buf();
        async move {
            Coordinator::builder()
                .config(EngineConfig {
                    node_name: node,
                    ..EngineConfig::default()
                })
                .open(dir)
                .await
        }
    };
    let c = open(Some("first")).await.expect("new store");
    let id = c.identity().clone();
    assert_eq!(id.node, "first");
    c.close().await.unwrap();
    drop(c);
    let e = open(Some("second")).await.err().expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("first") && msg.contains("second"), "{msg}");
    let c = open(None).await.expect("no name: the stored one");
    assert_eq!(c.identity(), &id);
    c.close().await.unwrap();
    drop(c);
    let c = open(Some("first")).await.expect("the same name");
    assert_eq!(c.identity(), &id, "the incarnation never changes");
    c.close().await.unwrap();
}
