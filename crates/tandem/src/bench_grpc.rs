//! `tandem bench grpc`: DTM's gRPC API against its HTTP API, in one run, on one server.
//!
//! N closed-loop clients submit empty 2-step sagas (empty action and compensate URLs: no
//! branch calls, so what is measured is the API and the coordinator's forced log writes)
//! with `WaitResult` through `/dtmgimp.Dtm/Submit`, then the same through HTTP
//! `POST /api/dtmsvr/submit`; each phase is answered only once its saga has ended. Phases
//! alternate for `--rounds` rounds on the same server (fresh data directory, fsync on), so
//! the ratio compares like with like on a noisy machine: the figure reported is each
//! API's median over the rounds and the ratio of the medians.
//!
//! - gRPC clients own one HTTP/2 channel each, as the HTTP clients own one keep-alive
//!   connection each (the closed loop never has two requests in flight per client).
//! - Every gid is fresh; an answer other than OK / 200 counts as an error (its latency is
//!   still recorded) and fails the run.
//! - Bounded: concurrency 1..=10000, duration 1..=3600 s, rounds 1..=20.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tandem_server::grpc::pb;

use super::http::Conn;

#[derive(clap::Args, Debug)]
pub struct GrpcArgs {
    /// Clients submitting at once, per phase (closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to measure per phase (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// gRPC and HTTP phases, alternating, this many times each.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Where to make the server's fresh data directory (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Phase {
    api: &'static str,
    round: usize,
    sagas: u64,
    errors: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, serde::Serialize)]
struct Summary {
    bench: &'static str,
    concurrency: usize,
    cpus: usize,
    duration_s: u64,
    phases: Vec<Phase>,
    grpc_median_per_second: f64,
    http_median_per_second: f64,
    /// gRPC's median throughput over HTTP's.
    ratio: f64,
}

pub async fn run(a: GrpcArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&a.concurrency),
        "--concurrency must be 1..=10000"
    );
    anyhow::ensure!(
        (1..=3_600).contains(&a.duration),
        "--duration must be 1..=3600 seconds"
    );
    anyhow::ensure!((1..=20).contains(&a.rounds), "--rounds must be 1..=20");

    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-grpc-")
        .tempdir_in(&a.dir)
        .context("making the server's data directory")?;
    let http_l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc_l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (http_addr, grpc_addr) = (http_l.local_addr()?, grpc_l.local_addr()?);
    let cfg = tandem_server::ServerConfig {
        listen: http_addr,
        grpc_listen: Some(grpc_addr),
        data_dir: dir.path().to_path_buf(),
        ..tandem_server::ServerConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tandem_server::serve_with(
        http_l,
        Some(grpc_l),
        cfg,
        async move {
            let _ = stop_rx.await;
        },
    ));

    let run_id = std::process::id();
    let result = phases(
        &a,
        run_id,
        http_addr.to_string(),
        format!("http://{grpc_addr}"),
    )
    .await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("the bench server stopped with an error: {e}"),
        Ok(Err(e)) => eprintln!("the bench server task failed: {e}"),
        Err(_) => eprintln!("the bench server did not stop within 30 s"),
    }
    drop(dir);
    let phases = result?;

    let median = |api: &str| {
        let mut v: Vec<f64> = phases
            .iter()
            .filter(|p| p.api == api)
            .map(|p| p.per_second)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (g, h) = (median("grpc"), median("http"));
    let s = Summary {
        bench: "grpc",
        concurrency: a.concurrency,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        duration_s: a.duration,
        grpc_median_per_second: g,
        http_median_per_second: h,
        ratio: if h > 0.0 { g / h } else { 0.0 },
        phases,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "tandem bench grpc: empty 2-step sagas with wait_result, concurrency {}, {} s per phase, {} rounds (one server, fresh data dir, fsync on)",
            s.concurrency, a.duration, a.rounds
        );
        for p in &s.phases {
            println!(
                "  round {} {:<4} {:>8.0} sagas/s  p50 {:.3} ms  p99 {:.3} ms  ({} sagas, {} errors)",
                p.round, p.api, p.per_second, p.p50_ms, p.p99_ms, p.sagas, p.errors
            );
        }
        println!(
            "median: gRPC {:.0} sagas/s, HTTP {:.0} sagas/s, gRPC/HTTP = {:.3}",
            g, h, s.ratio
        );
    }
    let errors: u64 = s.phases.iter().map(|p| p.errors).sum();
    anyhow::ensure!(errors == 0, "{errors} submits were not answered OK");
    Ok(())
}

async fn phases(
    a: &GrpcArgs,
    run_id: u32,
    http_authority: String,
    grpc_origin: String,
) -> anyhow::Result<Vec<Phase>> {
    let submit: hyper::Uri = format!("http://{http_authority}/api/dtmsvr/submit").parse()?;
    let body_tail = Arc::new(
        r#"","trans_type":"saga","wait_result":true,"steps":[{"action":"","compensate":""},{"action":"","compensate":""}],"payloads":["{\"amount\":30}","{\"amount\":30}"]}"#
            .to_string(),
    );
    let seq = Arc::new(AtomicU64::new(0));
    let mut out = Vec::new();
    for round in 1..=a.rounds {
        let (origin, seq2) = (grpc_origin.clone(), seq.clone());
        let grpc = closed_loop(a, "grpc", round, move || {
            let (origin, seq) = (origin.clone(), seq2.clone());
            async move {
                let client = pb::dtm_client::DtmClient::connect(origin).await?;
                anyhow::Ok(move || {
                    let gid = format!("bg{run_id}-{}", seq.fetch_add(1, Ordering::Relaxed));
                    let mut client = client.clone();
                    async move { grpc_submit(&mut client, gid).await }
                })
            }
        })
        .await?;
        out.push(grpc);
        let (authority, submit, tail, seq2) = (
            http_authority.clone(),
            submit.clone(),
            body_tail.clone(),
            seq.clone(),
        );
        let http = closed_loop(a, "http", round, move || {
            let (authority, submit, tail, seq) = (
                authority.clone(),
                submit.clone(),
                tail.clone(),
                seq2.clone(),
            );
            async move {
                let conn = Arc::new(tokio::sync::Mutex::new(Conn::open(&authority).await?));
                anyhow::Ok(move || {
                    let gid = format!("bh{run_id}-{}", seq.fetch_add(1, Ordering::Relaxed));
                    let (conn, submit, tail) = (conn.clone(), submit.clone(), tail.clone());
                    async move { conn.lock().await.submit(&submit, gid, &tail).await }
                })
            }
        })
        .await?;
        out.push(http);
    }
    Ok(out)
}

/// One gRPC submit of an empty 2-step saga; Ok only for an OK answer.
async fn grpc_submit(
    client: &mut pb::dtm_client::DtmClient<tonic::transport::Channel>,
    gid: String,
) -> anyhow::Result<()> {
    let req = pb::DtmRequest {
        gid,
        trans_type: "saga".into(),
        trans_options: Some(pb::DtmTransOptions {
            wait_result: true,
            ..Default::default()
        }),
        bin_payloads: vec![br#"{"amount":30}"#.to_vec(), br#"{"amount":30}"#.to_vec()],
        steps: r#"[{"action":"","compensate":""},{"action":"","compensate":""}]"#.into(),
        ..Default::default()
    };
    client.submit(req).await?;
    Ok(())
}

/// Runs `concurrency` clients, each made by `client()` and calling its operation in a
/// closed loop, for one warm-up second and `duration` measured seconds.
async fn closed_loop<C, CF, Op, OpF>(
    a: &GrpcArgs,
    api: &'static str,
    round: usize,
    client: C,
) -> anyhow::Result<Phase>
where
    C: Fn() -> CF,
    CF: Future<Output = anyhow::Result<Op>>,
    Op: Fn() -> OpF + Send + 'static,
    OpF: Future<Output = anyhow::Result<()>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // The first call, alone: a wrong setup fails loudly instead of as 100 % errors.
    let probe = client()
        .await
        .with_context(|| format!("{api}: connecting"))?;
    probe()
        .await
        .with_context(|| format!("{api}: the first submit failed"))?;
    let mut workers = Vec::with_capacity(a.concurrency);
    for _ in 0..a.concurrency {
        let op = client()
            .await
            .with_context(|| format!("{api}: connecting"))?;
        let (done, errors, recording, stop) = (
            done.clone(),
            errors.clone(),
            recording.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1_000, 600_000_000_000, 3)?;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = op().await.is_ok();
                if recording.load(Ordering::Relaxed) {
                    h.saturating_record(t.elapsed().as_nanos() as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(h)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.duration)).await;
    recording.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut h = Histogram::<u64>::new_with_bounds(1_000, 600_000_000_000, 3)?;
    for w in workers {
        h.add(w.await??)?;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    Ok(Phase {
        api,
        round,
        sagas: h.len(),
        errors: errors.load(Ordering::Relaxed),
        per_second: h.len() as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
    })
}
