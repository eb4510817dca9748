//! A hand-run load measure of `RedbStore` (not a test): N tokio tasks each loop
//! `write(sync = false)` ×2 then `write(sync = true)` on a fresh gid, the engine's pattern for a
//! short saga. Prints records/s, sync writes/s, records per fsync and sync-write latency.
//!
//! ```text
//! cargo run --release -p tandem-store --example store_load -- [--secs 5] [--tasks 1,256]
//!     [--dir PATH] [--no-fsync]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tandem_core::{TxKind, TxStatus};
use tandem_store::conformance::make_rec;
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::Store;

struct Args {
    secs: u64,
    tasks: Vec<usize>,
    dir: Option<PathBuf>,
    fsync: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        secs: 5,
        tasks: vec![1, 256],
        dir: None,
        fsync: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => a.secs = it.next().context("--secs N")?.parse()?,
            "--tasks" => {
                a.tasks = it
                    .next()
                    .context("--tasks N,M")?
                    .split(',')
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()?
            }
            "--dir" => a.dir = Some(it.next().context("--dir PATH")?.into()),
            "--no-fsync" => a.fsync = false,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

async fn run<S: Store>(store: Arc<S>, tasks: usize, secs: u64) -> anyhow::Result<()> {
    let before = store.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        handles.push(tokio::spawn(async move {
            let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let gid = format!("load-{tasks}-{t}-{i}");
                let status = TxStatus::Submitted;
                store
                    .write(make_rec(&gid, 1, TxKind::Saga, status, false, i), false)
                    .await?;
                store
                    .write(make_rec(&gid, 2, TxKind::Saga, status, false, i), false)
                    .await?;
                let rec = make_rec(&gid, 3, TxKind::Saga, TxStatus::Succeeded, false, i);
                let t0 = Instant::now();
                store.write(rec, true).await?;
                lat.saturating_record(t0.elapsed().as_micros() as u64);
                i += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for h in handles {
        lat.add(h.await??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = store.stats();
    let records = after.records - before.records;
    let syncs = after.syncs - before.syncs;
    let batches = after.batches - before.batches;
    println!(
        "tasks {tasks:>4}: {:>9.0} records/s  {:>8.0} sync writes/s  {:>7.1} records/fsync  \
         {:>6.1} records/batch  fsync mean {:>5.0} us  sync write p50 {} us p99 {} us max {} us",
        records as f64 / elapsed,
        lat.len() as f64 / elapsed,
        records as f64 / syncs.max(1) as f64,
        records as f64 / batches.max(1) as f64,
        (after.sync_nanos - before.sync_nanos) as f64 / syncs.max(1) as f64 / 1000.0,
        lat.value_at_quantile(0.50),
        lat.value_at_quantile(0.99),
        lat.max(),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        for &tasks in &a.tasks {
            let cfg = RedbConfig {
                fsync: a.fsync,
                ..RedbConfig::default()
            };
            let store = Arc::new(RedbStore::open(&dir, cfg)?);
            run(Arc::clone(&store), tasks, a.secs).await?;
            store.close().await?;
        }
        anyhow::Ok(())
    })
}
