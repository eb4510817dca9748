//! `tandem bench waiting`: what open transactions cost a server, measured on a real `tandem
//! serve` child process.
//!
//! 1. `--count` TCC transactions are begun over HTTP and left waiting for their confirm (a 10 h
//!    timeout): the server's RSS once they have left memory, and `/v1/stats` `active`.
//! 2. The server is killed with SIGKILL and started again on the same data directory: the time
//!    until it serves again (ready, and a new transaction accepted), and its RSS after.
//! 3. With `--finished`, that many sagas run to their end; then the idle RSS.
//!
//! The figures the issue names (1,000,000 waiting in ≤ 256 MiB, serving again in ≤ 2 s, 1,000,000
//! finished in ≤ 128 MiB idle) are printed beside the measured ones; docs/benchmarks.md keeps
//! the runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tandem_client::{Client, TxOptions};

#[derive(clap::Args, Debug)]
pub struct WaitingArgs {
    /// TCC transactions to begin and leave waiting.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Sagas to run to their end afterwards (0: skip that part).
    #[arg(long, default_value_t = 0)]
    finished: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Where to make the data directory (removed afterwards unless --keep).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Keep the data directory.
    #[arg(long)]
    keep: bool,
}

/// A `tandem serve` child on a data directory and a free port.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &std::path::Path, port: u16) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("this program's path")?;
        let log = std::fs::File::create(dir.with_extension("log"))?;
        let child = Command::new(exe)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .env("TANDEM_LOG", "warn")
            .env_remove("TANDEM_NODE_NAME")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tandem serve")?;
        Ok(Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// VmRSS of the child, in MiB.
    fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS")?;
        Ok(kb / 1024.0)
    }

    fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn ready(url: &str, within: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let client = Client::new(url)?;
    while t0.elapsed() < within {
        if client.stats().await.is_ok() {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("the server at {url} did not answer within {within:?}")
}

/// Runs `n` requests, `concurrency` at a time; returns the rate.
async fn load<F, Fut>(n: u64, concurrency: u64, what: &str, f: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, f) = (next.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                f().await?;
            }
            anyhow::Ok(())
        }));
    }
    let progress = {
        let next = next.clone();
        let what = what.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!("  {what}: {} of {n}", next.load(Ordering::Relaxed).min(n));
            }
        })
    };
    for t in tasks {
        t.await??;
    }
    progress.abort();
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

pub async fn run(a: WaitingArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("tandem-bench-waiting-")
        .tempdir_in(&a.dir)?;
    let data = dir.path().join("data");
    let port = free_port()?;
    let mut server = Server::start(&data, port)?;
    ready(&server.url, Duration::from_secs(30)).await?;
    let client = Client::new(&server.url)?;

    let waiting = TxOptions {
        timeout_to_fail_ms: Some(10 * 3600 * 1000),
        ..TxOptions::default()
    };
    let c = client.clone();
    let rate = load(a.count, a.concurrency, "begun", move || {
        let (c, o) = (c.clone(), waiting.clone());
        async move {
            c.tcc(None, o).await?;
            Ok(())
        }
    })
    .await?;
    // Idle drivers leave memory after evict_after (1 s); give them and the log a moment.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = client.stats().await?;
    let rss_waiting = server.rss_mib()?;
    let running = stats.other.get("running").cloned().unwrap_or_default();
    println!(
        "{} TCC transactions begun at {rate:.0}/s and left waiting: RSS {rss_waiting:.0} MiB (target <= 256), active {}, running {running}",
        a.count, stats.active
    );

    server.kill9()?;
    let t0 = Instant::now();
    let mut server = Server::start(&data, port)?;
    ready(&server.url, Duration::from_secs(60)).await?;
    let client = Client::new(&server.url)?;
    client.tcc(None, TxOptions::default()).await?;
    let serving = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after = server.rss_mib()?;
    let stats = client.stats().await?;
    println!(
        "after kill -9: serving again in {:.2} s (target <= 2), RSS {rss_after:.0} MiB (target <= 256), active {}",
        serving.as_secs_f64(),
        stats.active
    );

    if a.finished > 0 {
        let c = client.clone();
        let rate = load(a.finished, a.concurrency, "finished", move || {
            let c = c.clone();
            async move {
                c.saga()
                    .step("", "", serde_json::Value::Null)
                    .submit()
                    .await?;
                Ok(())
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss_idle = server.rss_mib()?;
        println!(
            "{} sagas finished at {rate:.0}/s: idle RSS {rss_idle:.0} MiB (target <= 128 for finished history alone)",
            a.finished
        );
    }
    server.kill9()?;
    if a.keep {
        println!("data directory kept: {}", dir.keep().display());
    }
    Ok(())
}
