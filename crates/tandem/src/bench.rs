//! `tandem bench embedded`: throughput and latency of the library coordinator with no-op
//! in-process participants, fully durable, against a fresh data directory — and, in the
//! same run, the disk's own fsync latency and the figure with durability off, so every
//! number can be held against the disk's limit.
//!
//! Forced writes per transaction (the fewest the protocols allow):
//! - saga of n steps: n + 1 (3 for the 2 steps here) — before each action is first called,
//!   the log must know the step may run: otherwise a crash that loses that fact, followed
//!   by an abort, would leave a step that ran uncompensated (and compensations may only go
//!   to steps that started). The first of these is the saga's own record; each later one
//!   carries the previous step's result. Then the outcome, before the caller is told.
//!   A step's result itself needs no forced write: a lost one means the step is called
//!   again, which the participant's idempotency absorbs.
//! - 2pc: 2 — the participant list before the first prepare (in-process participants
//!   cannot be asked for their in-doubt transactions after a crash, so the log must know
//!   whom to roll back), and the commit decision before the first commit. The end record
//!   is unforced: the decision already implies the outcome (presumed abort needs no abort
//!   record at all).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use clap::{Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use tandem_engine::tandem_store::redb_store::RedbConfig;
use tandem_engine::{BranchError, CallRequest, Coordinator, EngineStats, Resource, SagaStep, Vote};

#[path = "bench_grpc.rs"]
mod grpc;
#[path = "bench_http.rs"]
mod http;
#[path = "bench_waiting.rs"]
mod waiting;
#[path = "bench_xa.rs"]
mod xa;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// The library coordinator with no-op in-process participants.
    Embedded(EmbeddedArgs),
    /// The server over loopback HTTP: 2-step sagas through DTM's submit, with wait_result.
    Http(http::HttpArgs),
    /// DTM's gRPC API against its HTTP API on one server: empty 2-step sagas, same run.
    Grpc(grpc::GrpcArgs),
    /// 2PC across two PostgreSQL databases, against PostgreSQL's own prepare/commit bound.
    Xa(xa::XaArgs),
    /// What open transactions cost a server: RSS with a million TCC transactions waiting,
    /// restart time after kill -9, idle RSS after finished ones.
    Waiting(waiting::WaitingArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum Kind {
    Saga,
    #[value(name = "2pc")]
    TwoPc,
}

#[derive(clap::Args, Debug)]
pub struct EmbeddedArgs {
    /// Transactions in flight at once (one task each, closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to measure (after a short warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// The protocol of each 2-step transaction.
    #[arg(long, value_enum, default_value_t = Kind::Saga)]
    kind: Kind,
    /// Where to make the fresh data directories (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Skip the second run with durability off.
    #[arg(long)]
    no_compare: bool,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Embedded(a) => embedded(a).await,
        BenchCmd::Http(a) => http::run(a).await,
        BenchCmd::Grpc(a) => grpc::run(a).await,
        BenchCmd::Xa(a) => xa::run(a).await,
        BenchCmd::Waiting(a) => waiting::run(a).await,
    }
}

struct Noop;

#[async_trait]
impl SagaStep for Noop {
    async fn action(&self, _: &CallRequest) -> Result<(), BranchError> {
        Ok(())
    }
    async fn compensate(&self, _: &CallRequest) -> Result<(), BranchError> {
        Ok(())
    }
}

#[async_trait]
impl Resource for Noop {
    async fn prepare(&self, _: &CallRequest) -> Result<Vote, BranchError> {
        Ok(Vote::Yes)
    }
    async fn commit(&self, _: &CallRequest) -> Result<(), BranchError> {
        Ok(())
    }
    async fn rollback(&self, _: &CallRequest) -> Result<(), BranchError> {
        Ok(())
    }
}

/// The disk's fsync latency for the log's own access pattern: 512-byte writes inside a
/// preallocated file (the log preallocates its segments), each followed by fdatasync,
/// serially.
fn fsync_probe(dir: &Path, n: usize) -> anyhow::Result<Histogram<u64>> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let mut h = Histogram::<u64>::new(3)?;
    let block = [0x5au8; 512];
    for _ in 0..n {
        f.write_all(&block)?;
        let t = Instant::now();
        f.sync_data()?;
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    drop(f);
    std::fs::remove_file(path)?;
    Ok(h)
}

#[derive(Debug, serde::Serialize)]
struct RunResult {
    durable: bool,
    transactions: u64,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    failed: u64,
    log_records: u64,
    log_syncs: u64,
    records_per_sync: f64,
    syncs_per_transaction: f64,
    mean_sync_us: f64,
}

async fn one_run(a: &EmbeddedArgs, durable: bool) -> anyhow::Result<RunResult> {
    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-")
        .tempdir_in(&a.dir)
        .context("making the bench data directory")?;
    let noop = Arc::new(Noop);
    let cfg = RedbConfig {
        fsync: durable,
        ..RedbConfig::default()
    };
    let c = Coordinator::builder()
        .redb_config(cfg)
        .step("noop", noop.clone())
        .resource("noop-a", noop.clone())
        .resource("noop-b", noop)
        .open(dir.path())
        .await?;
    let warmup = Duration::from_millis(if a.duration >= 5 { 1000 } else { 300 });
    let measure = Duration::from_secs(a.duration.max(1));
    let seq = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let label = if durable { "durable" } else { "durability off" };
    let bar = if a.json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(measure.as_secs());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}s {msg}")?
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{:?} c={} {label}", a.kind, a.concurrency));
        bar
    };
    let mut workers = Vec::with_capacity(a.concurrency);
    for _ in 0..a.concurrency {
        let (c, seq, done, failed, recording, stop, kind) = (
            c.clone(),
            seq.clone(),
            done.clone(),
            failed.clone(),
            recording.clone(),
            stop.clone(),
            a.kind,
        );
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            while !stop.load(Ordering::Relaxed) {
                let gid = format!("b{:012}", seq.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let out = match kind {
                    Kind::Saga => {
                        c.saga(gid)
                            .step("noop", Vec::new())
                            .step("noop", Vec::new())
                            .run()
                            .await?
                    }
                    Kind::TwoPc => {
                        c.two_phase(gid)
                            .participant("noop-a", Vec::new())
                            .participant("noop-b", Vec::new())
                            .run()
                            .await?
                    }
                };
                if recording.load(Ordering::Relaxed) {
                    h.record(t.elapsed().as_nanos() as u64)?;
                    done.fetch_add(1, Ordering::Relaxed);
                    if !out.succeeded() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(h)
        }));
    }
    tokio::time::sleep(warmup).await;
    let before: EngineStats = c.stats();
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    while t0.elapsed() < measure {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let secs = t0.elapsed().as_secs_f64();
        bar.set_position(secs as u64);
        bar.set_message(format!(
            "{:.0} tx/s",
            done.load(Ordering::Relaxed) as f64 / secs
        ));
    }
    recording.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let after = c.stats();
    stop.store(true, Ordering::Relaxed);
    bar.finish_and_clear();
    let mut h = Histogram::<u64>::new(3)?;
    for w in workers {
        h.add(w.await??)?;
    }
    c.close().await?;
    let n = h.len();
    let records = after.store.records - before.store.records;
    let syncs = after.store.syncs - before.store.syncs;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    Ok(RunResult {
        durable,
        transactions: n,
        seconds,
        per_second: n as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: h.max() as f64 / 1e6,
        failed: failed.load(Ordering::Relaxed),
        log_records: records,
        log_syncs: syncs,
        records_per_sync: if syncs == 0 {
            0.0
        } else {
            records as f64 / syncs as f64
        },
        syncs_per_transaction: if n == 0 { 0.0 } else { syncs as f64 / n as f64 },
        mean_sync_us: if syncs == 0 {
            0.0
        } else {
            (after.store.sync_nanos - before.store.sync_nanos) as f64 / syncs as f64 / 1e3
        },
    })
}

async fn embedded(a: EmbeddedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=100_000).contains(&a.concurrency),
        "--concurrency must be 1..=100000"
    );
    let probe_dir = tempfile::Builder::new()
        .prefix("tandem-fsync-")
        .tempdir_in(&a.dir)?;
    let probe = fsync_probe(probe_dir.path(), 2000)?;
    let fsync_p50_us = probe.value_at_quantile(0.5) as f64 / 1e3;
    let fsync_mean_us = probe.mean() / 1e3;
    let serial_fsync_per_s = 1e6 / fsync_mean_us;
    let forced = match a.kind {
        Kind::Saga => 3.0,
        Kind::TwoPc => 2.0,
    };
    let ceiling_c1 = serial_fsync_per_s / forced;
    let durable = one_run(&a, true).await?;
    let off = if a.no_compare {
        None
    } else {
        Some(one_run(&a, false).await?)
    };
    let kind = match a.kind {
        Kind::Saga => "saga",
        Kind::TwoPc => "2pc",
    };
    if a.json {
        let v = serde_json::json!({
            "bench": "embedded", "kind": kind, "concurrency": a.concurrency, "duration_s": a.duration,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "disk": { "fsync_p50_us": fsync_p50_us, "fsync_mean_us": fsync_mean_us, "serial_fsync_per_s": serial_fsync_per_s },
            "forced_writes_per_tx": forced, "fsync_bound_at_c1_per_s": ceiling_c1,
            "durable": durable, "durability_off": off,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "tandem bench embedded: {kind}, 2 no-op in-process participants, concurrency {}, {} s",
        a.concurrency, a.duration
    );
    println!("disk: fsync (512 B write in a preallocated file + fdatasync) p50 {fsync_p50_us:.0} us, mean {fsync_mean_us:.0} us -> {serial_fsync_per_s:.0} serial fsyncs/s");
    println!("forced writes per {kind}: {forced} (why: see the doc of crates/tandem/src/bench.rs); fsync-bound rate at concurrency 1 = {ceiling_c1:.0}/s");
    for r in std::iter::once(&durable).chain(off.as_ref()) {
        println!(
            "{:<15} {:>9.0} tx/s  p50 {:.3} ms  p99 {:.3} ms  p999 {:.3} ms  max {:.1} ms  ({} tx, {} failed)",
            if r.durable { "durable:" } else { "durability off:" },
            r.per_second, r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms, r.transactions, r.failed
        );
    }
    println!(
        "log: {} records in {} fsyncs = {:.1} records/fsync, {:.3} fsyncs/tx, mean fsync {:.0} us",
        durable.log_records,
        durable.log_syncs,
        durable.records_per_sync,
        durable.syncs_per_transaction,
        durable.mean_sync_us
    );
    if a.concurrency == 1 {
        // Two views of the bound: the disk probed alone (serially, from idle), and the log's
        // own fsyncs in this run (its writer stays busy between them, which wakes faster).
        let own = if durable.mean_sync_us > 0.0 {
            1e6 / durable.mean_sync_us / forced
        } else {
            0.0
        };
        println!(
            "concurrency 1: {:.0}% of the fsync-bound rate ({:.0}% of the bound from the log's own mean fsync, {own:.0}/s)",
            100.0 * durable.per_second / ceiling_c1,
            if own > 0.0 { 100.0 * durable.per_second / own } else { 0.0 }
        );
    }
    Ok(())
}
