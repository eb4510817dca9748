//! Crash safety, proven with real process death at every durability boundary.
//!
//! For each failpoint the engine and store expose, a child process runs transactions and
//! dies (`abort()`, no cleanup, no flush) the N-th time the failpoint is reached. A second
//! child reopens the same directory, first reading what the log holds, then recovering and
//! waiting for every transaction to end. The parent then checks the participants' journals
//! (their own fsynced files, as a real database would keep):
//! - all-or-nothing: a saga either applied every action or compensated every applied one;
//!   a 2PC either committed everywhere or nowhere;
//! - every branch ends resolved: no participant is left prepared;
//! - no branch whose result was already logged before the crash is called again.
//!
//! Guards against: a decision kept only in memory, a step result acknowledged before it was
//! durable, recovery that forgets prepared participants or re-runs logged actions.
#![cfg(feature = "failpoints")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tandem_engine::tandem_core::{BranchStatus, TxStatus};
use tandem_engine::tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_engine::tandem_store::{ListQuery, Store};
use tandem_engine::{BranchError, CallRequest, Coordinator, EngineError, Resource, SagaStep, Vote};

const TXS: usize = 3;

/// A participant that journals every call (fsynced) and applies each effect once.
struct Journal {
    file: Mutex<std::fs::File>,
    applied: Mutex<HashSet<String>>,
    phase: String,
    /// Business failures: (branch id, op) that always answer FAILURE.
    fail: HashSet<(String, &'static str)>,
}

impl Journal {
    fn open(
        dir: &Path,
        name: &str,
        phase: &str,
        fail: HashSet<(String, &'static str)>,
    ) -> Arc<Journal> {
        let path = dir.join(format!("journal-{name}.log"));
        let applied = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 5 && f[4] == "ok").then(|| format!("{}/{}/{}", f[1], f[2], f[3]))
            })
            .collect();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("journal");
        Arc::new(Journal {
            file: Mutex::new(file),
            applied: Mutex::new(applied),
            phase: phase.into(),
            fail,
        })
    }

    fn record(&self, call: &CallRequest) -> Result<(), BranchError> {
        let failed = self
            .fail
            .contains(&(call.branch_id.clone(), call.op.as_str()));
        let result = if failed { "fail" } else { "ok" };
        let line = format!(
            "{} {} {} {} {}\n",
            self.phase,
            call.gid,
            call.branch_id,
            call.op.as_str(),
            result
        );
        {
            let mut f = self.file.lock().expect("lock");
            f.write_all(line.as_bytes()).expect("journal write");
            f.sync_data().expect("journal sync");
        }
        if failed {
            return Err(BranchError::Failure("refused by test".into()));
        }
        self.applied
            .lock()
            .expect("lock")
            .insert(call.idempotency_key());
        Ok(())
    }
}

#[async_trait]
impl SagaStep for Journal {
    async fn action(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.record(call)
    }
    async fn compensate(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.record(call)
    }
}

#[async_trait]
impl Resource for Journal {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        self.record(call).map(|()| Vote::Yes)
    }
    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.record(call)
    }
    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.record(call)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Saga,
    SagaFail,
    TwoPc,
    TwoPcFail,
}

impl Kind {
    fn parse(s: &str) -> Kind {
        match s {
            "saga" => Kind::Saga,
            "saga-fail" => Kind::SagaFail,
            "2pc" => Kind::TwoPc,
            _ => Kind::TwoPcFail,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Saga => "saga",
            Kind::SagaFail => "saga-fail",
            Kind::TwoPc => "2pc",
            Kind::TwoPcFail => "2pc-fail",
        }
    }
}

fn participants(dir: &Path, kind: Kind, phase: &str) -> tandem_engine::CoordinatorBuilder {
    let mut b = Coordinator::builder().redb_config(RedbConfig::default());
    for (k, name) in ["p1", "p2", "p3"].iter().enumerate() {
        let mut fail = HashSet::new();
        if kind == Kind::SagaFail && k == 2 {
            fail.insert(("03".to_string(), "action"));
        }
        if kind == Kind::TwoPcFail && k == 2 {
            fail.insert(("03".to_string(), "prepare"));
        }
        let j = Journal::open(dir, name, phase, fail);
        b = b.step(*name, j.clone()).resource(format!("{name}-xa"), j);
    }
    b
}

fn gid(kind: Kind, i: usize) -> String {
    format!("{}-{i}", kind.name())
}

async fn run_child(dir: PathBuf, kind: Kind) -> anyhow::Result<()> {
    let c = participants(&dir, kind, "run").open(&dir).await?;
    for i in 0..TXS {
        let out = match kind {
            Kind::Saga | Kind::SagaFail => {
                c.saga(gid(kind, i))
                    .step("p1", "a")
                    .step("p2", "b")
                    .step("p3", "c")
                    .run()
                    .await?
            }
            Kind::TwoPc | Kind::TwoPcFail => {
                c.two_phase(gid(kind, i))
                    .participant("p1-xa", "a")
                    .participant("p2-xa", "b")
                    .participant("p3-xa", "c")
                    .run()
                    .await?
            }
        };
        println!("outcome {} {}", out.gid, out.status.as_str());
    }
    c.close().await?;
    Ok(())
}

async fn recover_child(dir: PathBuf, kind: Kind) -> anyhow::Result<()> {
    // What the log says before recovery runs: these branch results must not be redone.
    {
        let store = RedbStore::open(&dir, RedbConfig::default())?;
        let page = store
            .list(&ListQuery {
                limit: 1000,
                ..Default::default()
            })
            .await?;
        let mut logged = String::new();
        for tx in page.items {
            for b in tx
                .branches
                .iter()
                .filter(|b| matches!(b.status, BranchStatus::Succeeded | BranchStatus::Failed))
            {
                logged.push_str(&format!("{} {} {}\n", tx.gid, b.branch_id, b.op.as_str()));
            }
        }
        std::fs::write(dir.join("logged.txt"), logged)?;
        store.close().await?;
    }
    let c = participants(&dir, kind, "recover").open(&dir).await?;
    let mut finals = String::new();
    for i in 0..TXS {
        match c.wait(&gid(kind, i)).await {
            Ok(out) => {
                anyhow::ensure!(out.parked.is_none(), "{} parked: {:?}", out.gid, out.parked);
                anyhow::ensure!(
                    out.status.is_final(),
                    "{} not final: {:?}",
                    out.gid,
                    out.status
                );
                finals.push_str(&format!("{} {}\n", out.gid, out.status.as_str()));
            }
            Err(EngineError::NotFound(_)) => finals.push_str(&format!("{} absent\n", gid(kind, i))),
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::write(dir.join("finals.txt"), finals)?;
    c.close().await?;
    Ok(())
}

/// Entry point of the child processes; a no-op when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(mode) = std::env::var("TANDEM_CRASH_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("TANDEM_CRASH_DIR").expect("dir"));
    let kind = Kind::parse(&std::env::var("TANDEM_CRASH_KIND").expect("kind"));
    if mode == "run" {
        let point = std::env::var("TANDEM_CRASH_POINT").expect("point");
        let nth: usize = std::env::var("TANDEM_CRASH_NTH")
            .expect("nth")
            .parse()
            .expect("nth");
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
            "run" => run_child(dir, kind).await,
            _ => recover_child(dir, kind).await,
        }
    });
    if let Err(e) = r {
        eprintln!("child failed: {e:#}");
        std::process::exit(3);
    }
}

fn child(mode: &str, dir: &Path, kind: Kind, point: &str, nth: usize) -> std::process::Output {
    Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("TANDEM_CRASH_CHILD", mode)
        .env("TANDEM_CRASH_DIR", dir)
        .env("TANDEM_CRASH_KIND", kind.name())
        .env("TANDEM_CRASH_POINT", point)
        .env("TANDEM_CRASH_NTH", nth.to_string())
        .output()
        .expect("spawn child")
}

/// Journal lines by phase: (phase, gid, branch, op, result).
fn journal(dir: &Path) -> Vec<(String, String, String, String, String, String)> {
    let mut out = Vec::new();
    for p in ["p1", "p2", "p3"] {
        let text =
            std::fs::read_to_string(dir.join(format!("journal-{p}.log"))).unwrap_or_default();
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 5, "bad journal line {l:?}");
            out.push((
                p.to_string(),
                f[0].into(),
                f[1].into(),
                f[2].into(),
                f[3].into(),
                f[4].into(),
            ));
        }
    }
    out
}

fn check(dir: &Path, kind: Kind, ctx: &str) {
    let finals: HashMap<String, String> = std::fs::read_to_string(dir.join("finals.txt"))
        .expect("finals")
        .lines()
        .map(|l| {
            let (g, s) = l.split_once(' ').expect("final line");
            (g.to_string(), s.to_string())
        })
        .collect();
    let logged: HashSet<String> = std::fs::read_to_string(dir.join("logged.txt"))
        .expect("logged")
        .lines()
        .map(String::from)
        .collect();
    let j = journal(dir);
    for i in 0..TXS {
        let g = gid(kind, i);
        let status = finals
            .get(&g)
            .unwrap_or_else(|| panic!("{ctx}: no final for {g}"));
        // Effects per participant: which ops took effect (answered ok) at least once.
        let mut eff: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
        for (p, _, jg, _, op, res) in &j {
            if *jg == g && res == "ok" {
                eff.entry(p.as_str()).or_default().insert(op.as_str());
            }
        }
        if status == "absent" {
            assert!(
                eff.is_empty(),
                "{ctx}: {g} never logged, yet participants saw {eff:?}"
            );
            continue;
        }
        match kind {
            Kind::Saga | Kind::SagaFail => {
                let ok = status == TxStatus::Succeeded.as_str();
                for p in ["p1", "p2", "p3"] {
                    let e = eff.get(p).cloned().unwrap_or_default();
                    if ok {
                        assert!(
                            e.contains("action") && !e.contains("compensate"),
                            "{ctx}: {g} succeeded but {p} has {e:?}"
                        );
                    } else {
                        assert!(
                            !e.contains("action") || e.contains("compensate"),
                            "{ctx}: {g} failed but {p}'s action was not compensated: {e:?}"
                        );
                    }
                }
                assert_eq!(ok, kind == Kind::Saga, "{ctx}: {g} ended {status}");
            }
            Kind::TwoPc | Kind::TwoPcFail => {
                let committed: Vec<_> = eff
                    .iter()
                    .filter(|(_, e)| e.contains("commit"))
                    .map(|(p, _)| *p)
                    .collect();
                if status == TxStatus::Succeeded.as_str() {
                    assert_eq!(
                        committed.len(),
                        3,
                        "{ctx}: {g} succeeded but only {committed:?} committed"
                    );
                    assert!(
                        eff.values().all(|e| !e.contains("rollback")),
                        "{ctx}: {g} succeeded with a rollback: {eff:?}"
                    );
                } else {
                    assert!(
                        committed.is_empty(),
                        "{ctx}: {g} failed but {committed:?} committed"
                    );
                    for (p, e) in &eff {
                        assert!(
                            !e.contains("prepare") || e.contains("rollback"),
                            "{ctx}: {g}: {p} left prepared: {e:?}"
                        );
                    }
                }
                if kind == Kind::TwoPcFail {
                    assert_ne!(status, "succeed", "{ctx}: {g} succeeded despite a no vote");
                }
            }
        }
        // Nothing whose result was durable before the crash runs again.
        for (p, phase, jg, br, op, _) in &j {
            if phase == "recover" && *jg == g {
                assert!(
                    !logged.contains(&format!("{g} {br} {op}")),
                    "{ctx}: {p} {g} {br} {op} was logged before the crash, yet called again"
                );
            }
        }
    }
}

fn crash_at(point: &str, kinds: &[Kind], nths: &[usize]) {
    if std::env::var("TANDEM_CRASH_CHILD").is_ok() {
        return;
    }
    for &kind in kinds {
        for &nth in nths {
            let dir = tempfile::tempdir().expect("tempdir");
            let ctx = format!("{point} #{nth} {}", kind.name());
            let run = child("run", dir.path(), kind, point, nth);
            let crashed = !run.status.success();
            assert!(
                crashed && run.status.code().is_none(),
                "{ctx}: the child should have died at the failpoint; status {:?}\nstdout: {}\nstderr: {}",
                run.status,
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
            let rec = child("recover", dir.path(), kind, point, nth);
            assert!(
                rec.status.success(),
                "{ctx}: recovery failed: {:?}\nstdout: {}\nstderr: {}",
                rec.status,
                String::from_utf8_lossy(&rec.stdout),
                String::from_utf8_lossy(&rec.stderr)
            );
            check(dir.path(), kind, &ctx);
        }
    }
}

const ALL: &[Kind] = &[Kind::Saga, Kind::SagaFail, Kind::TwoPc, Kind::TwoPcFail];

#[test]
fn t30_crash_after_start() {
    crash_at("after-start", ALL, &[1, 2]);
}

#[test]
fn t31_crash_between_saga_steps() {
    crash_at(
        "saga-between-steps",
        &[Kind::Saga, Kind::SagaFail],
        &[1, 2, 4],
    );
}

#[test]
fn t32_crash_mid_compensation() {
    crash_at("saga-mid-compensation", &[Kind::SagaFail], &[1, 2, 3]);
}

#[test]
fn t33_crash_after_votes() {
    crash_at("2pc-after-votes", &[Kind::TwoPc, Kind::TwoPcFail], &[1, 2]);
}

#[test]
fn t34_crash_before_decision() {
    crash_at("2pc-before-decision", &[Kind::TwoPc], &[1, 2]);
}

#[test]
fn t35_crash_after_decision() {
    crash_at("2pc-after-decision", &[Kind::TwoPc], &[1, 2]);
}

#[test]
fn t36_crash_between_phase2_calls() {
    crash_at(
        "2pc-between-phase2",
        &[Kind::TwoPc, Kind::TwoPcFail],
        &[1, 2, 4],
    );
}

#[test]
fn t37_crash_around_end() {
    crash_at("before-end", ALL, &[1, 2]);
    crash_at("after-end", ALL, &[1]);
}

#[test]
fn t38_crash_in_the_store_sync() {
    crash_at("store-before-sync", ALL, &[1, 3]);
    crash_at("store-after-sync", ALL, &[2, 3]);
}
