//! `tandem bench xa`: two-phase commit across two PostgreSQL databases — a one-row update in
//! each — held against the bound PostgreSQL itself sets, measured in the same run.
//!
//! - **bound**: no coordinator. Each client, on both databases at once: `BEGIN`, `UPDATE`,
//!   `PREPARE TRANSACTION`; then `COMMIT PREPARED` on both: a round trip per statement, as
//!   the coordinator's resources send them (they run the caller's work between `BEGIN` and
//!   `PREPARE`, so cannot batch it), and the fewest database fsyncs any 2PC over these two
//!   databases can do.
//! - **coordinator**: the same statements through the engine's 2PC with
//!   `tandem_engine::xa::PgResource`s, the log durable (fsync) in a fresh directory. It adds
//!   one forced log write per transaction, the commit decision (shared by group commit):
//!   the participant list is written unforced because both resources are under in-doubt
//!   recovery (a crash that loses it leaves prepared xids recovery rolls back) — and the
//!   engine's own work.
//!
//! The two phases alternate for `--rounds` rounds, each round in the other order (drift on
//! a shared machine then hits both alike), each phase on a new table after a `CHECKPOINT`
//! (so neither inherits the other's dead rows or checkpoint writes), and the median
//! throughputs are compared. Each phase also reports the machine's busy CPU time
//! per transaction: on a machine the databases saturate, that is what decides the ratio.
//! The coordinator phase also reports its log's forced writes per transaction and their
//! mean duration, and the records and bytes it wrote per transaction.
//!
//! Each client updates its own row in each database (no lock waits between clients), over
//! the simple-query protocol in both phases. Prepared transactions are named apart
//! (`tandem-bench-bound-…`, `tandembench:…`) and the bench's table is its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tandem_engine::tandem_store::redb_store::RedbConfig;
use tandem_engine::xa::{pg_work, PgResource};
use tandem_engine::{BranchError, Coordinator, EngineConfig};
use tokio_postgres::{Client, NoTls};

const TABLE: &str = "tandem_bench_xa";
const NODE: &str = "tandembench";
const BOUND_PREFIX: &str = "tandem-bench-bound-";

#[derive(clap::Args, Debug)]
pub struct XaArgs {
    /// First PostgreSQL database.
    #[arg(
        long,
        env = "TANDEM_TEST_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_a: String,
    /// Second PostgreSQL database (another database, possibly on the same server).
    #[arg(
        long,
        env = "TANDEM_TEST_PG2",
        default_value = "postgres://postgres@127.0.0.1:5432/test2"
    )]
    pg_b: String,
    /// Clients (transactions in flight at once, closed loop).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to measure each phase of each round (after a short warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Rounds of (bound, coordinator), alternating so that drift on the shared machine
    /// (PostgreSQL checkpoints, autovacuum, other load) hits both alike; the medians are
    /// compared.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Where to make the coordinator's fresh log directory (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
struct Phase {
    transactions: u64,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
    /// Busy CPU time of the whole machine per transaction, ms (all processes: PostgreSQL,
    /// this one, the kernel). On a machine the databases saturate, this decides the ratio.
    cpu_ms_per_tx: f64,
    /// CPU time of this process (bench clients, and the coordinator in that phase) per
    /// transaction, ms.
    own_cpu_ms_per_tx: f64,
    /// The coordinator's log over the whole phase (warm-up included); none for the bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<LogFigures>,
}

/// How often the log forced a write per transaction, how long a forced write took, and how
/// many records (and bytes) each transaction wrote.
#[derive(Debug, serde::Serialize)]
struct LogFigures {
    syncs_per_tx: f64,
    sync_ms_mean: f64,
    records_per_tx: f64,
    bytes_per_tx: f64,
}

/// Busy and own CPU time so far, in clock ticks (Linux `/proc`; zeros elsewhere).
fn cpu_ticks() -> (u64, u64) {
    let busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_owned();
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait.
            Some(v.iter().sum::<u64>() - v.get(3)? - v.get(4)?)
        })
        .unwrap_or(0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (busy, own)
}

/// Clock ticks per second for `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// Closed-loop clients, a warm-up, then a measured window.
#[derive(Default)]
struct Meter {
    recording: AtomicBool,
    stop: AtomicBool,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Meter {
    fn record(&self, h: &mut Histogram<u64>, t: Instant, ok: bool) -> anyhow::Result<()> {
        if self.recording.load(Ordering::Relaxed) {
            h.record(t.elapsed().as_nanos() as u64)?;
            self.done.fetch_add(1, Ordering::Relaxed);
            if !ok {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn measure(
        &self,
        a: &XaArgs,
        workers: Vec<tokio::task::JoinHandle<anyhow::Result<Histogram<u64>>>>,
    ) -> anyhow::Result<Phase> {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        self.recording.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        let cpu0 = cpu_ticks();
        tokio::time::sleep(Duration::from_secs(a.duration.max(1))).await;
        self.recording.store(false, Ordering::Relaxed);
        let cpu1 = cpu_ticks();
        let seconds = t0.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::Relaxed);
        let mut h = Histogram::<u64>::new(3)?;
        for w in workers {
            h.add(w.await??)?;
        }
        let n = h.len();
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
        let per_tx = |ticks: u64| 1e3 * ticks as f64 / TICKS_PER_S / (n.max(1) as f64);
        Ok(Phase {
            cpu_ms_per_tx: per_tx(cpu1.0.saturating_sub(cpu0.0)),
            own_cpu_ms_per_tx: per_tx(cpu1.1.saturating_sub(cpu0.1)),
            transactions: n,
            seconds,
            per_second: n as f64 / seconds,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            failed: self.failed.load(Ordering::Relaxed),
            log: None,
        })
    }
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(conn);
    Ok(c)
}

/// A fresh table with one row per client; leftovers of an interrupted bound run are
/// rolled back (they carry the bench's own prefix).
async fn setup(url: &str, clients: usize) -> anyhow::Result<()> {
    let c = connect(url).await?;
    for p in bound_leftovers(&c, BOUND_PREFIX).await? {
        c.batch_execute(&format!("ROLLBACK PREPARED '{p}'")).await?;
    }
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id int PRIMARY KEY, v bigint NOT NULL); \
         INSERT INTO {TABLE} SELECT g, 0 FROM generate_series(0, {}) g",
        clients - 1
    ))
    .await
    .with_context(|| format!("creating {TABLE} on {url}"))?;
    Ok(())
}

async fn bound_leftovers(c: &Client, prefix: &str) -> anyhow::Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1) LIMIT 10000",
            &[&prefix],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let gid: String = r.try_get(0)?;
            // Only names this bench makes (no quotes possible).
            anyhow::ensure!(
                gid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "unexpected gid {gid:?}"
            );
            Ok(gid)
        })
        .collect()
}

fn update(k: usize) -> String {
    format!("UPDATE {TABLE} SET v = v + 1 WHERE id = {k}")
}

async fn prepare(c: &Client, sql: &str, xid: &str) -> Result<(), tokio_postgres::Error> {
    c.batch_execute("BEGIN").await?;
    c.batch_execute(sql).await?;
    c.batch_execute(&format!("PREPARE TRANSACTION '{xid}'"))
        .await
}

async fn bound(a: &XaArgs) -> anyhow::Result<Phase> {
    let meter = Arc::new(Meter::default());
    let mut workers = Vec::new();
    for k in 0..a.concurrency {
        let (ca, cb) = (connect(&a.pg_a).await?, connect(&a.pg_b).await?);
        let meter = meter.clone();
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let sql = update(k);
            let pid = std::process::id();
            let mut seq = 0u64;
            while !meter.stop.load(Ordering::Relaxed) {
                seq += 1;
                let (xa, xb) = (
                    format!("{BOUND_PREFIX}{pid}-{k}-{seq}-a"),
                    format!("{BOUND_PREFIX}{pid}-{k}-{seq}-b"),
                );
                let t = Instant::now();
                let (ra, rb) = tokio::join!(prepare(&ca, &sql, &xa), prepare(&cb, &sql, &xb));
                ra?;
                rb?;
                let (ca_sql, cb_sql) = (
                    format!("COMMIT PREPARED '{xa}'"),
                    format!("COMMIT PREPARED '{xb}'"),
                );
                let (ra, rb) = tokio::join!(ca.batch_execute(&ca_sql), cb.batch_execute(&cb_sql));
                ra?;
                rb?;
                meter.record(&mut h, t, true)?;
            }
            anyhow::Ok(h)
        }));
    }
    meter.measure(a, workers).await
}

fn resource(url: &str, clients: usize) -> Arc<PgResource> {
    Arc::new(PgResource::new(
        url,
        clients,
        pg_work(|c, call| {
            let k = std::str::from_utf8(&call.payload)
                .ok()
                .and_then(|s| s.parse::<usize>().ok());
            Box::pin(async move {
                let k = k.ok_or_else(|| BranchError::Failure("bad payload".into()))?;
                c.batch_execute(&update(k))
                    .await
                    .map_err(|e| BranchError::Transient(e.to_string()))
            })
        }),
    ))
}

async fn coordinated(a: &XaArgs) -> anyhow::Result<Phase> {
    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-xa-")
        .tempdir_in(&a.dir)
        .context("making the bench data directory")?;
    let c = Coordinator::builder()
        .config(EngineConfig {
            node_name: Some(NODE.into()),
            ..EngineConfig::default()
        })
        .redb_config(RedbConfig::default())
        .xa_resource("a", resource(&a.pg_a, a.concurrency))
        .xa_resource("b", resource(&a.pg_b, a.concurrency))
        .open(dir.path())
        .await?;
    let meter = Arc::new(Meter::default());
    let seq = Arc::new(AtomicU64::new(0));
    let run = std::process::id();
    let mut workers = Vec::new();
    for k in 0..a.concurrency {
        let (c, meter, seq) = (c.clone(), meter.clone(), seq.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let payload = k.to_string();
            while !meter.stop.load(Ordering::Relaxed) {
                let gid = format!("b{run}-{}", seq.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let out = c
                    .two_phase(gid)
                    .participant("a", payload.clone())
                    .participant("b", payload.clone())
                    .run()
                    .await?;
                meter.record(&mut h, t, out.succeeded())?;
            }
            anyhow::Ok(h)
        }));
    }
    let mut phase = meter.measure(a, workers).await?;
    c.close().await?;
    let st = c.stats();
    phase.log = Some(LogFigures {
        syncs_per_tx: st.store.syncs as f64 / st.started.max(1) as f64,
        sync_ms_mean: st.store.sync_nanos as f64 / 1e6 / st.store.syncs.max(1) as f64,
        records_per_tx: st.store.records as f64 / st.started.max(1) as f64,
        bytes_per_tx: st.store.bytes as f64 / st.started.max(1) as f64,
    });
    Ok(phase)
}

/// The sum of the bench's column in one database (every committed update adds 1).
async fn updates(url: &str) -> anyhow::Result<i64> {
    let c = connect(url).await?;
    let n: i64 = c
        .query_one(
            &format!("SELECT coalesce(sum(v), 0)::bigint FROM {TABLE}"),
            &[],
        )
        .await?
        .get(0);
    Ok(n)
}

/// Both databases saw the same committed updates (a cheap end-to-end check of a phase).
async fn same_updates(a: &XaArgs, phase: &str) -> anyhow::Result<()> {
    let (sa, sb) = (updates(&a.pg_a).await?, updates(&a.pg_b).await?);
    anyhow::ensure!(
        sa == sb,
        "after the {phase} phase the databases disagree: {sa} vs {sb} updates"
    );
    Ok(())
}

/// Every phase starts from the same database state: a new table (no dead row versions
/// left by the phase before, so no autovacuum or pruning of them during this one) and a
/// checkpoint (so no phase inherits the other's pending checkpoint writes). With one table
/// for the whole run, the phase that ran second in a round tended to be the slower one,
/// whichever it was; the alternating order still guards against what remains of that.
async fn fresh(a: &XaArgs) -> anyhow::Result<()> {
    for url in [&a.pg_a, &a.pg_b] {
        setup(url, a.concurrency).await?;
    }
    for url in [&a.pg_a, &a.pg_b] {
        let c = connect(url).await?;
        if let Err(e) = c.batch_execute("CHECKPOINT").await {
            // Needs superuser (or pg_checkpoint); the figures are only noisier without it.
            tracing::warn!(error = %e, "bench xa: CHECKPOINT refused; phases may inherit each other's writes");
        }
    }
    Ok(())
}

async fn drop_table(url: &str) -> anyhow::Result<()> {
    connect(url)
        .await?
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .await?;
    Ok(())
}

/// Refuses to start unless both servers can hold the prepared transactions the bench keeps
/// at once (one per client per database; both databases count against one server's
/// `max_prepared_transactions` when they share it), rather than failing every transaction.
async fn check_prepared_slots(a: &XaArgs) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    for url in [&a.pg_a, &a.pg_b] {
        let row = connect(url)
            .await?
            .query_one(
                "SELECT current_setting('max_prepared_transactions')::int8, \
                 coalesce(host(inet_server_addr()), 'local'), coalesce(inet_server_port(), 0)",
                &[],
            )
            .await
            .with_context(|| format!("reading max_prepared_transactions on {url}"))?;
        let slots: i64 = row.get(0);
        let server: (String, i32) = (row.get(1), row.get(2));
        servers.push((url, slots, server));
    }
    let shared = servers[0].2 == servers[1].2;
    let need = a.concurrency as i64 * if shared { 2 } else { 1 };
    for (url, slots, _) in &servers {
        anyhow::ensure!(
            *slots >= need,
            "max_prepared_transactions is {slots} on {url}; this bench holds up to {need} prepared \
             transactions there at once (--concurrency {}{}): ALTER SYSTEM SET \
             max_prepared_transactions = {need}, then restart PostgreSQL",
            a.concurrency,
            if shared { ", both databases on one server" } else { "" },
        );
    }
    Ok(())
}

pub async fn run(a: XaArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=1000).contains(&a.concurrency),
        "--concurrency must be 1..=1000"
    );
    if !a.json {
        eprintln!(
            "tandem bench xa: 2 PostgreSQL databases, one-row update in each, concurrency {}, {} s per phase",
            a.concurrency, a.duration
        );
    }
    anyhow::ensure!((1..=20).contains(&a.rounds), "--rounds must be 1..=20");
    check_prepared_slots(&a).await?;
    let mut rounds = Vec::new();
    for i in 0..a.rounds {
        // Which phase goes first alternates too, so that neither always runs on a
        // database the other just warmed (or just loaded with checkpoint work).
        let coordinator_first = i % 2 == 1;
        let (mut b, mut co) = (None, None);
        for coordinator in [coordinator_first, !coordinator_first] {
            fresh(&a).await?;
            if coordinator {
                co = Some(coordinated(&a).await?);
                same_updates(&a, "coordinator").await?;
            } else {
                b = Some(bound(&a).await?);
                same_updates(&a, "bound").await?;
            }
        }
        let (Some(b), Some(co)) = (b, co) else {
            unreachable!("each round runs both phases")
        };
        if !a.json {
            eprintln!(
                "round {}: bound {:.0} tx/s, tandem {:.0} tx/s ({:.1}%); CPU ms/tx: bound {:.3} \
                 (own {:.3}), tandem {:.3} (own {:.3}); log: {:.2} fsync/tx, {:.3} ms each, {:.1} records ({:.0} B)/tx",
                i + 1,
                b.per_second,
                co.per_second,
                100.0 * co.per_second / b.per_second,
                b.cpu_ms_per_tx,
                b.own_cpu_ms_per_tx,
                co.cpu_ms_per_tx,
                co.own_cpu_ms_per_tx,
                co.log.as_ref().map_or(0.0, |l| l.syncs_per_tx),
                co.log.as_ref().map_or(0.0, |l| l.sync_ms_mean),
                co.log.as_ref().map_or(0.0, |l| l.records_per_tx),
                co.log.as_ref().map_or(0.0, |l| l.bytes_per_tx),
            );
        }
        rounds.push((b, co));
    }
    let median = |f: &dyn Fn(&(Phase, Phase)) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // The round whose own figure is the median, for each phase.
    let pick = |f: &dyn Fn(&(Phase, Phase)) -> f64| {
        let m = median(f);
        rounds.iter().position(|r| f(r) == m).unwrap_or(0)
    };
    let (bi, ci) = (pick(&|r| r.0.per_second), pick(&|r| r.1.per_second));
    let ratios: Vec<f64> = rounds
        .iter()
        .map(|(b, c)| c.per_second / b.per_second)
        .collect();
    let (b, co) = (&rounds[bi].0, &rounds[ci].1);
    drop_table(&a.pg_a).await?;
    drop_table(&a.pg_b).await?;
    let ratio = co.per_second / b.per_second;
    if a.json {
        let v = serde_json::json!({
            "bench": "xa", "concurrency": a.concurrency, "duration_s": a.duration,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "rounds": a.rounds, "bound": b, "coordinator": co, "ratio": ratio,
            "round_ratios": ratios,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("median of {} rounds:", a.rounds);
    for (name, p) in [("bound (no coordinator):", b), ("tandem 2PC:", co)] {
        println!(
            "{name:<24} {:>7.0} tx/s  p50 {:.2} ms  p99 {:.2} ms  ({} tx, {} failed)  \
             CPU {:.3} ms/tx (this process {:.3})",
            p.per_second,
            p.p50_ms,
            p.p99_ms,
            p.transactions,
            p.failed,
            p.cpu_ms_per_tx,
            p.own_cpu_ms_per_tx
        );
    }
    println!(
        "ratio: {:.1}% of the bound (median throughputs; per round: {})",
        100.0 * ratio,
        ratios
            .iter()
            .map(|r| format!("{:.1}%", 100.0 * r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
