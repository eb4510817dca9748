//! Crash tests of `RedbStore` with real process death.
//!
//! The parent test runs this same test binary as a child (`crash_child`, which does nothing
//! unless `TANDEM_STORE_CRASH_CHILD` names a directory). The child writes from several tasks,
//! prints `ACK <gid> <version>` for every acknowledged sync write, and calls
//! `std::process::abort()` mid-stream. The parent then reopens the directory and checks that
//! every acknowledged write is there (at that version or newer). Guards against: acking before
//! the fsync, losing records between log and redb, recovery that stops early or replays old
//! versions over new ones, and torn log tails that break the next open.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use tandem_core::{
    codec::Shadow, Branch, BranchStatus, Op, Options, Timestamp, Transaction, TxKind,
};
use tandem_store::conformance::saga;
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{Record, Store};

const CHILD_DIR: &str = "TANDEM_STORE_CRASH_CHILD";
const CHILD_ACKS: &str = "TANDEM_STORE_CRASH_ACKS";
const CHILD_ROUND: &str = "TANDEM_STORE_CRASH_ROUND";
const CHILD_MODE: &str = "TANDEM_STORE_CRASH_MODE";
const CHILD_TASKS: u64 = 8;

fn no_checkpoints() -> RedbConfig {
    RedbConfig {
        checkpoint_ms: 3_600_000,
        checkpoint_bytes: u64::MAX,
        ..RedbConfig::default()
    }
}

/// The child's entry point; a no-op in a normal test run.
#[test]
fn crash_child() -> anyhow::Result<()> {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return Ok(());
    };
    let acks_max: u64 = std::env::var(CHILD_ACKS)?.parse()?;
    let round: u64 = std::env::var(CHILD_ROUND)?.parse()?;
    let sequential = std::env::var(CHILD_MODE).as_deref() == Ok("sequential");
    if std::env::var(CHILD_MODE).as_deref() == Ok("wide") {
        return wide_child(Path::new(&dir), acks_max, round);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let cfg = if sequential {
            no_checkpoints()
        } else {
            RedbConfig::default()
        };
        let store = Arc::new(RedbStore::open(Path::new(&dir), cfg)?);
        let acked = Arc::new(AtomicU64::new(0));
        let tasks = if sequential { 1 } else { CHILD_TASKS };
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (store, acked) = (Arc::clone(&store), Arc::clone(&acked));
            handles.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let (gid, version, sync) = if sequential {
                        (format!("seq-{i}"), 1, true)
                    } else {
                        (
                            format!("c{t}-{}", i % 16),
                            round * 1_000_000 + i,
                            i % 3 != 1,
                        )
                    };
                    store.write(saga(&gid, version), sync).await?;
                    if sync {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {gid} {version}")?;
                        out.flush()?;
                        if acked.fetch_add(1, Ordering::SeqCst) + 1 >= acks_max {
                            std::process::abort();
                        }
                    }
                }
                anyhow::Ok(())
            }));
        }
        for h in handles {
            h.await??;
        }
        anyhow::Ok(())
    })
}

/// The state of wide transaction `gid` at `version`: a deterministic function of the version,
/// so the parent can tell the exact content the log must replay (deltas included).
fn wide_state(gid: &str, version: u64) -> Transaction {
    let mut tx = Transaction::new(gid, TxKind::Tcc, Options::default(), Timestamp(7));
    for k in 0..24 {
        let p: Arc<[u8]> = vec![k as u8; 100].into();
        for op in [Op::Confirm, Op::Cancel] {
            tx.branches
                .push(Branch::new(format!("b{k}"), op, "t", p.clone()));
        }
    }
    for v in 1..=version {
        step_wide(&mut tx, v);
    }
    tx
}

fn step_wide(tx: &mut Transaction, v: u64) {
    tx.version = v;
    let i = (v as usize * 13) % tx.branches.len();
    tx.branches[i].attempts += 1;
    tx.branches[i].status = BranchStatus::Running;
    if v.is_multiple_of(40) {
        tx.branches.push(Branch::new(
            format!("n{v}"),
            Op::Confirm,
            "t",
            vec![v as u8; 50],
        ));
    }
}

/// Wide transactions logged as deltas from several tasks, some writes unsynced, until abort.
fn wide_child(dir: &Path, acks_max: u64, round: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Arc::new(RedbStore::open(dir, RedbConfig::default())?);
        let acked = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for t in 0..4u64 {
            let (store, acked) = (Arc::clone(&store), Arc::clone(&acked));
            handles.push(tokio::spawn(async move {
                let gid = format!("wide{round}-{t}");
                let mut tx = wide_state(&gid, 0);
                let mut shadow: Option<Shadow> = None;
                for v in 1u64.. {
                    step_wide(&mut tx, v);
                    let sync = v.is_multiple_of(4);
                    store.write(Record::logged(&tx, &mut shadow)?, sync).await?;
                    if sync {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {gid} {v}")?;
                        out.flush()?;
                        if acked.fetch_add(1, Ordering::SeqCst) + 1 >= acks_max {
                            std::process::abort();
                        }
                    }
                }
                anyhow::Ok(())
            }));
        }
        for h in handles {
            h.await??;
        }
        anyhow::Ok(())
    })
}

/// Runs the child until it aborts; returns the acknowledged (gid, version) pairs in order.
fn run_child(dir: &Path, round: u64, acks: u64, mode: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ACKS, acks.to_string())
        .env(CHILD_ROUND, round.to_string())
        .env(CHILD_MODE, mode)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() || out.status.code().is_some() {
        bail!(
            "child was meant to abort, ended with {}: {}\n{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut acked = Vec::new();
    for line in stdout.lines() {
        // libtest prints "test crash_child ... " without a newline before the first ack.
        let Some(at) = line.find("ACK ") else {
            continue;
        };
        let mut words = line[at + 4..].split(' ');
        let gid = words.next().context("ack without gid")?.to_string();
        let version: u64 = words.next().context("ack without version")?.parse()?;
        acked.push((gid, version));
    }
    Ok(acked)
}

/// A pseudo-random number from the clock (no extra dependency; variety across runs is the
/// point, the failure message prints everything needed to reason about a failure).
fn some_number(lo: u64, hi: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    lo + (u64::from(nanos) * 2_654_435_761) % (hi - lo)
}

fn reopen(dir: &Path) -> anyhow::Result<RedbStore> {
    RedbStore::open(dir, RedbConfig::default()).context("reopen after crash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_abort() -> anyhow::Result<()> {
    if std::env::var(CHILD_DIR).is_ok() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut newest_acked: HashMap<String, u64> = HashMap::new();
    let started = std::time::Instant::now();
    for round in 1..=5 {
        let acks = some_number(200, 2_000);
        let acked = run_child(dir.path(), round, acks, "mixed")?;
        assert!(
            acked.len() as u64 >= acks,
            "round {round}: child acked {} of {acks}",
            acked.len()
        );
        for (gid, v) in acked {
            let e = newest_acked.entry(gid).or_insert(0);
            *e = (*e).max(v);
        }
        let store = reopen(dir.path())?;
        for (gid, v) in &newest_acked {
            let got = store.get(gid).await?.map(|t| t.version);
            assert!(
                got >= Some(*v),
                "round {round} ({acks} acks): {gid} acked v{v}, found {got:?}"
            );
        }
        store.close().await?;
        if started.elapsed() > Duration::from_secs(15) {
            break; // keep the suite quick on slow disks; every finished round counts
        }
    }
    Ok(())
}

/// Guards against bug 7's fix breaking recovery: deltas replayed in order onto their base
/// give back exactly the transaction that was acknowledged, across several crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_replay_exactly_after_abort() -> anyhow::Result<()> {
    if std::env::var(CHILD_DIR).is_ok() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    for round in 1..=3 {
        let acks = some_number(100, 600);
        let acked = run_child(dir.path(), round, acks, "wide")?;
        let mut newest: HashMap<String, u64> = HashMap::new();
        for (gid, v) in acked {
            let e = newest.entry(gid).or_insert(0);
            *e = (*e).max(v);
        }
        let store = reopen(dir.path())?;
        for (gid, v) in &newest {
            let got = store.get(gid).await?.context("acked transaction missing")?;
            assert!(
                got.version >= *v,
                "{gid}: acked v{v}, found v{}",
                got.version
            );
            assert_eq!(
                got,
                wide_state(gid, got.version),
                "{gid} v{} content",
                got.version
            );
        }
        store.close().await?;
    }
    Ok(())
}

fn last_segment(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    segs.sort();
    segs.pop().context("no wal segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_dropped_and_the_rest_kept() -> anyhow::Result<()> {
    if std::env::var(CHILD_DIR).is_ok() {
        return Ok(());
    }
    // Garbage after the last whole frame: every acknowledged write survives.
    let dir = tempfile::tempdir()?;
    let acked = run_child(dir.path(), 1, 300, "sequential")?;
    let seg = last_segment(dir.path())?;
    OpenOptions::new()
        .append(true)
        .open(&seg)?
        .write_all(&[0xA5; 37])?;
    let store = reopen(dir.path())?;
    for (gid, v) in &acked {
        assert_eq!(
            store.get(gid).await?.map(|t| t.version),
            Some(*v),
            "{gid} after garbage tail"
        );
    }
    store.close().await?;
    drop(store);

    // The last frame cut in half: everything before it survives, it does not, and the store
    // keeps working (its log continues after the cut).
    let dir = tempfile::tempdir()?;
    let acked = run_child(dir.path(), 1, 300, "sequential")?;
    let seg = last_segment(dir.path())?;
    // Segments are preallocated (a zero tail): the data ends at the last non-zero byte.
    let bytes = std::fs::read(&seg)?;
    let len = bytes
        .iter()
        .rposition(|&b| b != 0)
        .context("empty segment")? as u64
        + 1;
    let last = saga(&acked[acked.len() - 1].0, 1);
    let frame_bytes = 8 + 1 + 8 + 2 + last.gid.len() as u64 + 19 + last.body.len() as u64;
    OpenOptions::new()
        .write(true)
        .open(&seg)?
        .set_len(len - frame_bytes / 2)?;
    let store = reopen(dir.path())?;
    let (lost, kept) = acked.split_last().context("no acks")?;
    for (gid, v) in kept {
        assert_eq!(
            store.get(gid).await?.map(|t| t.version),
            Some(*v),
            "{gid} before the cut"
        );
    }
    assert_eq!(
        store.get(&lost.0).await?.map(|t| t.version),
        None,
        "the cut frame is dropped"
    );
    store.write(saga("after-cut", 1), true).await?;
    store.close().await?;
    drop(store);
    let store = reopen(dir.path())?;
    assert_eq!(
        store.get("after-cut").await?.map(|t| t.version),
        Some(1),
        "writes after the cut"
    );
    assert_eq!(
        store.get(&kept[0].0).await?.map(|t| t.version),
        Some(1),
        "still there"
    );
    store.close().await?;
    Ok(())
}
