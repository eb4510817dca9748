//! Crash safety of 2PC across a real PostgreSQL and a real MariaDB database, with the
//! coordinator process killed (`abort()`, no cleanup) at every failpoint of the 2PC path:
//! after the votes, before and after the decision record, between phase-2 calls, and inside
//! a prepare after the database prepared but before the vote reached the log.
//!
//! A child process runs three transactions (each adds 1 to its own row on both databases;
//! the second one's MariaDB branch votes no) and dies the N-th time the failpoint is hit. A
//! fresh child reopens the same log directory with the same resources and waits until every
//! transaction ended and in-doubt recovery found nothing of ours prepared. The parent then
//! checks, on the databases themselves: no prepared transaction with the run's prefix is
//! left on either, and for each transaction both rows changed (the log says committed) or
//! neither did (failed, or never logged).
//!
//! Guards against: a decision lost in memory, recovery forgetting a branch the database
//! prepared, an idempotent commit/rollback that reports success while the branch stays
//! prepared (MariaDB keeps a branch attached to its session), and a half-committed 2PC.
#![cfg(all(feature = "xa", feature = "failpoints"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_engine::{Coordinator, EngineConfig, EngineError, InDoubtConfig};

mod xa_common;
use xa_common::*;

const TXS: usize = 3;

fn gid(i: usize) -> String {
    format!("xc-{i}")
}

async fn open(dir: &Path, node: &str, d: &Dbs, table: &str) -> anyhow::Result<Coordinator> {
    Ok(Coordinator::builder()
        .config(EngineConfig {
            node_name: Some(node.into()),
            ..EngineConfig::default()
        })
        .xa_resource("pg", pg_resource(&d.pg, table))
        .xa_resource("my", my_resource(&d.my, table))
        .in_doubt_config(InDoubtConfig {
            interval: Duration::from_millis(200),
            // The participant list is written unforced (both resources can be listed), so a
            // crash may leave prepared xids that no record explains: orphans after 1 s here.
            orphan_age: Duration::from_secs(1),
            ..InDoubtConfig::default()
        })
        .open(dir)
        .await?)
}

async fn run_child(dir: PathBuf, node: String, d: Dbs, table: String) -> anyhow::Result<()> {
    let c = open(&dir, &node, &d, &table).await?;
    for i in 0..TXS {
        let row = format!("{}:1", i + 1);
        let my = if i == 1 {
            "fail".to_string()
        } else {
            row.clone()
        };
        let out = c
            .two_phase(gid(i))
            .participant("pg", row)
            .participant("my", my)
            .run()
            .await?;
        println!("outcome {} {}", out.gid, out.status.as_str());
    }
    c.close().await?;
    Ok(())
}

async fn recover_child(dir: PathBuf, node: String, d: Dbs, table: String) -> anyhow::Result<()> {
    let c = open(&dir, &node, &d, &table).await?;
    let mut finals = String::new();
    for i in 0..TXS {
        match c.wait(&gid(i)).await {
            Ok(out) => {
                anyhow::ensure!(out.parked.is_none(), "{} parked: {:?}", out.gid, out.parked);
                anyhow::ensure!(out.status.is_final(), "{} not final", out.gid);
                finals.push_str(&format!("{} {}\n", out.gid, out.status.as_str()));
            }
            Err(EngineError::NotFound(_)) => finals.push_str(&format!("{} absent\n", gid(i))),
            Err(e) => return Err(e.into()),
        }
    }
    // Drivers finished what the log knew; in-doubt recovery sweeps the rest (branches of a
    // transaction whose unforced start record was lost, a branch a dead session still held
    // when its phase 2 ran). Bounded wait.
    let (pg, mut my) = clients(&d).await;
    for _ in 0..50 {
        if prepared_left(&pg, &mut my, &node).await == (0, 0) {
            break;
        }
        c.resolve_in_doubt().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(dir.join("finals.txt"), finals)?;
    println!("recovery {:?}", c.recovery_stats());
    c.close().await?;
    Ok(())
}

/// Entry point of the child processes; a no-op when run as an ordinary test.
#[test]
fn xa_crash_child() {
    let Ok(mode) = std::env::var("TANDEM_XA_CRASH_CHILD") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}"));
    let dir = PathBuf::from(env("TANDEM_XA_CRASH_DIR"));
    let (node, table) = (env("TANDEM_XA_CRASH_NODE"), env("TANDEM_XA_CRASH_TABLE"));
    let d = Dbs {
        pg: env("TANDEM_TEST_PG"),
        my: env("TANDEM_TEST_MYSQL"),
    };
    if mode == "run" {
        let point = env("TANDEM_XA_CRASH_POINT");
        let nth: usize = env("TANDEM_XA_CRASH_NTH").parse().expect("nth");
        let hits = Arc::new(Mutex::new(0usize));
        fail::cfg_callback(point, move || {
            let mut h = hits.lock().unwrap_or_else(|p| p.into_inner());
            *h += 1;
            if *h == nth {
                std::process::abort();
            }
        })
        .expect("failpoint");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(async {
        match mode.as_str() {
            "run" => run_child(dir, node, d, table).await,
            _ => recover_child(dir, node, d, table).await,
        }
    });
    if let Err(e) = r {
        eprintln!("child failed: {e:#}");
        std::process::exit(3);
    }
}

fn child(
    mode: &str,
    dir: &Path,
    node: &str,
    table: &str,
    point: &str,
    nth: usize,
) -> std::process::Output {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "xa_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TANDEM_XA_CRASH_CHILD", mode)
        .env("TANDEM_XA_CRASH_DIR", dir)
        .env("TANDEM_XA_CRASH_NODE", node)
        .env("TANDEM_XA_CRASH_TABLE", table)
        .env("TANDEM_XA_CRASH_POINT", point)
        .env("TANDEM_XA_CRASH_NTH", nth.to_string())
        .output()
        .expect("spawn child")
}

async fn clients(d: &Dbs) -> (tokio_postgres::Client, mysql_async::Conn) {
    let pg = pg_client(&d.pg).await;
    let my = mysql_async::Conn::new(mysql_async::Opts::from_url(&d.my).expect("url"))
        .await
        .expect("mysql");
    (pg, my)
}

async fn crash_at(test: &str, point: &str, nths: &[usize]) {
    if std::env::var("TANDEM_XA_CRASH_CHILD").is_ok() {
        return;
    }
    let Some(d) = dbs(test) else {
        return;
    };
    for &nth in nths {
        let ctx = format!("{point} #{nth}");
        let (node, table) = (uniq("xc"), uniq("xa_t45_"));
        let (pg, mut my) = setup(&d, &table).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let run = child("run", dir.path(), &node, &table, point, nth);
        assert!(
            !run.status.success() && run.status.code().is_none(),
            "{ctx}: the child should have died at the failpoint; status {:?}\nstdout: {}\nstderr: {}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let rec = child("recover", dir.path(), &node, &table, point, nth);
        assert!(
            rec.status.success(),
            "{ctx}: recovery failed: {:?}\nstdout: {}\nstderr: {}",
            rec.status,
            String::from_utf8_lossy(&rec.stdout),
            String::from_utf8_lossy(&rec.stderr)
        );
        assert_eq!(
            prepared_left(&pg, &mut my, &node).await,
            (0, 0),
            "{ctx}: prepared transactions left (pg, mysql)"
        );
        let finals = std::fs::read_to_string(dir.path().join("finals.txt")).expect("finals");
        for (i, line) in finals.lines().enumerate() {
            let (g, status) = line.split_once(' ').expect("final line");
            assert_eq!(g, gid(i));
            let (a, b) = row(&pg, &mut my, &table, i + 1).await;
            let want = if status == "succeed" { 101 } else { 100 };
            assert_eq!(
                (a, b),
                (want, want),
                "{ctx}: {g} ended {status}, rows (pg, mysql) disagree with the log"
            );
            if i == 1 {
                assert_ne!(status, "succeed", "{ctx}: {g} succeeded despite a no vote");
            }
        }
        drop_tables(&pg, &mut my, &table).await;
    }
}

#[tokio::test]
async fn t45_xa_crash_after_votes() {
    crash_at("t45_xa_crash_after_votes", "2pc-after-votes", &[1, 2]).await;
}

#[tokio::test]
async fn t46_xa_crash_before_decision() {
    crash_at(
        "t46_xa_crash_before_decision",
        "2pc-before-decision",
        &[1, 2],
    )
    .await;
}

#[tokio::test]
async fn t47_xa_crash_after_decision() {
    crash_at("t47_xa_crash_after_decision", "2pc-after-decision", &[1, 2]).await;
}

#[tokio::test]
async fn t48_xa_crash_between_phase2_calls() {
    crash_at(
        "t48_xa_crash_between_phase2_calls",
        "2pc-between-phase2",
        &[1, 2, 3, 4],
    )
    .await;
}

#[tokio::test]
async fn t49_xa_crash_after_db_prepare_before_vote_logged() {
    crash_at(
        "t49_xa_crash_after_db_prepare_before_vote_logged",
        "xa-after-db-prepare",
        &[1, 2, 3],
    )
    .await;
}
