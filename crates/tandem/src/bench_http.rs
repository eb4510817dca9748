//! `tandem bench http`: the server over real loopback HTTP, the way its clients use it.
//!
//! N closed-loop clients (one task each) submit 2-step sagas with `wait_result: true` —
//! with `--api v1` (the default) through [`tandem_client`] to `POST /v1/sagas`, as a Rust
//! application would; with `--api dtm` as DTM clients do, to `POST /api/dtmsvr/submit`
//! (each client owning one keep-alive HTTP/1.1 connection; the form used to compare with
//! DTM-compatible servers). A submit is answered only once the saga has ended, so the
//! latency measured is the whole transaction: the request, the coordinator's forced log
//! writes, both branch calls, the answer.
//!
//! ```text
//!  clients --POST submit--> tandem server --POST ?op=action--> no-op branch service
//!     ^                        | (fsync'd log)                  (this process, hyper)
//!     +------ 200 SUCCESS -----+
//! ```
//!
//! - Branches go to a no-op branch service started in this process (plain hyper, answering
//!   `{"dtm_result":"SUCCESS"}`), or, with `--empty-urls`, nowhere: empty action and
//!   compensate URLs are successes that cost no call, so what is left is the coordinator's
//!   own overhead (DTM's `benchEmptyUrl`).
//! - The server is `--server URL`, or one started in this process (`serve_on` on a fresh
//!   data directory, fully durable, removed afterwards).
//! - Every gid is fresh (a per-run prefix plus a counter), so nothing is deduplicated.
//! - A submit not answered 200 counts as an error (its latency is still recorded): the
//!   summary must not look better because requests failed fast.
//! - Everything is bounded: concurrency, duration, the answer bytes read per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// Most answer bytes read per submit (DTM's answers are a few dozen bytes).
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// What the no-op branch service answers.
const SUCCESS_BODY: &[u8] = br#"{"dtm_result":"SUCCESS"}"#;

#[derive(clap::Args, Debug)]
pub struct HttpArgs {
    /// Clients submitting at once (one task and one keep-alive connection each, closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to measure (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// A running server's base URL (e.g. http://127.0.0.1:36789); default: start one here.
    #[arg(long)]
    server: Option<String>,
    /// Empty action/compensate URLs: the coordinator's overhead alone, no branch calls.
    #[arg(long)]
    empty_urls: bool,
    /// Where to make the started server's fresh data directory (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Which API the clients submit to: v1 (the native API, through tandem-client) or dtm
    /// (DTM's /api/dtmsvr/submit, to compare with DTM-compatible servers).
    #[arg(long, value_enum, default_value_t = Api::V1)]
    api: Api,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// The API a bench client submits to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Api {
    V1,
    Dtm,
}

#[derive(Debug, serde::Serialize)]
struct Summary {
    bench: &'static str,
    api: Api,
    server: String,
    server_in_process: bool,
    branches: &'static str,
    concurrency: usize,
    cpus: usize,
    sagas: u64,
    errors: u64,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

pub async fn run(a: HttpArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&a.concurrency),
        "--concurrency must be 1..=10000"
    );
    anyhow::ensure!(
        (1..=3_600).contains(&a.duration),
        "--duration must be 1..=3600 seconds"
    );

    let branch_base = if a.empty_urls {
        None
    } else {
        Some(start_branch_service().await?)
    };

    // The server: the one named, or one of our own on a fresh data directory.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut own_server = None;
    let base = match &a.server {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("tandem-bench-http-")
                .tempdir_in(&a.dir)
                .context("making the server's data directory")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let cfg = tandem_server::ServerConfig {
                listen: addr,
                data_dir: dir.path().to_path_buf(),
                ..tandem_server::ServerConfig::default()
            };
            let task = tokio::spawn(tandem_server::serve_on(listener, cfg, async move {
                let _ = stop_rx.await;
            }));
            own_server = Some((task, dir));
            format!("http://{addr}")
        }
    };
    let submit: hyper::Uri = format!("{base}/api/dtmsvr/submit")
        .parse()
        .with_context(|| format!("--server {base:?} is not a URL"))?;

    let authority = submit
        .authority()
        .with_context(|| format!("--server {base:?} has no host:port"))?
        .as_str()
        .to_string();

    let run_id = std::process::id() as u64 * 1_000_000
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
            % 1_000_000);
    let step = |op: &str| match &branch_base {
        Some(b) => format!("{b}/api/busi/{op}"),
        None => String::new(),
    };
    let submitter = Submitter::new(a.api, &base, &authority, &submit, &step)?;
    let body_tail = Arc::new(format!(
        r#"","trans_type":"saga","wait_result":true,"steps":[{{"action":"{}","compensate":"{}"}},{{"action":"{}","compensate":"{}"}}],"payloads":["{{\"amount\":30}}","{{\"amount\":30}}"]}}"#,
        step("TransOut"),
        step("TransOutRevert"),
        step("TransIn"),
        step("TransInRevert"),
    ));

    // One submit first, so a wrong address or API fails loudly instead of as 100% errors.
    let first = async {
        let mut conn = submitter.connect().await?;
        conn.submit(format!("bh{run_id}-probe"), body_tail.as_str())
            .await
    }
    .await;
    if let Err(e) = first {
        stop_own(own_server, stop_tx).await;
        return Err(e.context(format!("the first submit to {submit} failed")));
    }

    let seq = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(a.concurrency);
    for _ in 0..a.concurrency {
        let (submitter, body_tail) = (submitter.clone(), body_tail.clone());
        let (seq, done, errors, recording, stop) = (
            seq.clone(),
            done.clone(),
            errors.clone(),
            recording.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1_000, 600_000_000_000, 3)?;
            let mut conn: Option<Session> = None;
            while !stop.load(Ordering::Relaxed) {
                let gid = format!("bh{run_id}-{}", seq.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let ok = match conn.as_mut() {
                    Some(c) => c.submit(gid, &body_tail).await,
                    None => match submitter.connect().await {
                        Ok(c) => conn.insert(c).submit(gid, &body_tail).await,
                        Err(e) => Err(e),
                    },
                };
                // A broken connection is replaced before the next submit.
                if ok.is_err() && conn.as_ref().is_some_and(Session::is_closed) {
                    conn = None;
                }
                let ok = ok.is_ok();
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

    let branches = if a.empty_urls {
        "empty URLs"
    } else {
        "2 HTTP branches"
    };
    let measure = Duration::from_secs(a.duration);
    let bar = if a.json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(measure.as_secs());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}s {msg}")?
                .progress_chars("=> "),
        );
        bar.set_prefix(format!(
            "saga via {}, {branches}, c={}",
            api_name(a.api),
            a.concurrency
        ));
        bar
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    while t0.elapsed() < measure {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let secs = t0.elapsed().as_secs_f64();
        bar.set_position(secs as u64);
        bar.set_message(format!(
            "{:.0} sagas/s, {} errors",
            done.load(Ordering::Relaxed) as f64 / secs,
            errors.load(Ordering::Relaxed)
        ));
    }
    recording.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    bar.finish_and_clear();
    let mut h = Histogram::<u64>::new_with_bounds(1_000, 600_000_000_000, 3)?;
    for w in workers {
        h.add(w.await??)?;
    }
    stop_own(own_server, stop_tx).await;

    let n = h.len();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let s = Summary {
        bench: "http",
        api: a.api,
        server: base,
        server_in_process: a.server.is_none(),
        branches,
        concurrency: a.concurrency,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        sagas: n,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        per_second: n as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: h.max() as f64 / 1e6,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "tandem bench http: 2-step sagas with wait_result via {}, {}, concurrency {}, {} s, server {}{}",
            api_name(s.api),
            s.branches,
            s.concurrency,
            a.duration,
            s.server,
            if s.server_in_process {
                " (in this process, fresh data dir, fsync on)"
            } else {
                ""
            }
        );
        println!(
            "{:.0} sagas/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p999 {:.3} ms  max {:.1} ms  ({} sagas, {} errors)",
            s.per_second, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.sagas, s.errors
        );
    }
    anyhow::ensure!(
        s.errors == 0,
        "{} of {} submits were not answered 200",
        s.errors,
        s.sagas
    );
    Ok(())
}

/// Stops the in-process server, if there is one, and waits for its log to close.
async fn stop_own(
    own: Option<(
        tokio::task::JoinHandle<tandem_server::anyhow_like::Result<()>>,
        tempfile::TempDir,
    )>,
    stop_tx: tokio::sync::oneshot::Sender<()>,
) {
    let _ = stop_tx.send(());
    if let Some((task, dir)) = own {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("the bench server stopped with an error: {e}"),
            Ok(Err(e)) => eprintln!("the bench server task failed: {e}"),
            Err(_) => eprintln!("the bench server did not stop within 30 s"),
        }
        drop(dir);
    }
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::V1 => "POST /v1/sagas (tandem-client)",
        Api::Dtm => "POST /api/dtmsvr/submit",
    }
}

/// How the clients submit: the pieces each bench client needs, cheap to clone.
#[derive(Clone)]
enum Submitter {
    /// The native API through `tandem_client` (one shared connection pool).
    V1 {
        client: tandem_client::Client,
        /// The four branch URLs: action and compensate of each step.
        urls: Arc<[String; 4]>,
    },
    /// DTM's submit, each client on its own connection.
    Dtm {
        authority: String,
        submit: hyper::Uri,
    },
}

impl Submitter {
    fn new(
        api: Api,
        base: &str,
        authority: &str,
        submit: &hyper::Uri,
        step: &dyn Fn(&str) -> String,
    ) -> anyhow::Result<Submitter> {
        Ok(match api {
            Api::V1 => Submitter::V1 {
                client: tandem_client::Client::builder(base)
                    .token(std::env::var("TANDEM_AUTH_TOKEN").ok())
                    // A bench counts failures; it does not hide them behind resends.
                    .retry(tandem_client::RetryPolicy::none())
                    .build()?,
                urls: Arc::new([
                    step("TransOut"),
                    step("TransOutRevert"),
                    step("TransIn"),
                    step("TransInRevert"),
                ]),
            },
            Api::Dtm => Submitter::Dtm {
                authority: authority.to_owned(),
                submit: submit.clone(),
            },
        })
    }

    async fn connect(&self) -> anyhow::Result<Session> {
        Ok(match self {
            Submitter::V1 { client, urls } => Session::V1 {
                client: client.clone(),
                urls: urls.clone(),
            },
            Submitter::Dtm { authority, submit } => Session::Dtm {
                conn: Conn::open(authority).await?,
                submit: submit.clone(),
            },
        })
    }
}

/// One bench client's way to the server.
enum Session {
    V1 {
        client: tandem_client::Client,
        urls: Arc<[String; 4]>,
    },
    Dtm {
        conn: Conn,
        submit: hyper::Uri,
    },
}

impl Session {
    /// One saga; Ok only when it was answered as ended `succeed`.
    async fn submit(&mut self, gid: String, dtm_body_tail: &str) -> anyhow::Result<()> {
        match self {
            Session::V1 { client, urls } => {
                let payload = serde_json::json!({"amount": 30});
                let out = client
                    .saga()
                    .gid(gid)
                    .step(&urls[0], &urls[1], &payload)
                    .step(&urls[2], &urls[3], &payload)
                    .submit_and_wait()
                    .await?;
                anyhow::ensure!(out.succeeded(), "saga {} ended {}", out.gid, out.status);
                Ok(())
            }
            Session::Dtm { conn, submit } => conn.submit(submit, gid, dtm_body_tail).await,
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Session::V1 { .. } => false,
            Session::Dtm { conn, .. } => conn.sender.is_closed(),
        }
    }
}

/// One client's keep-alive HTTP/1.1 connection to the server. Each client owns one (a
/// closed loop never has two requests in flight), so no pool lookup sits on the hot path.
pub(crate) struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub(crate) async fn open(authority: &str) -> anyhow::Result<Conn> {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(authority),
        )
        .await
        .with_context(|| format!("connecting to {authority}: timed out"))?
        .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// One submit; Ok only for a 200 answer.
    pub(crate) async fn submit(
        &mut self,
        uri: &hyper::Uri,
        gid: String,
        body_tail: &str,
    ) -> anyhow::Result<()> {
        let mut body = String::with_capacity(10 + gid.len() + body_tail.len());
        body.push_str(r#"{"gid":""#);
        body.push_str(&gid);
        body.push_str(body_tail);
        let req = hyper::Request::post(uri.path())
            .header(
                hyper::header::HOST,
                uri.authority().map(|a| a.as_str()).unwrap_or(""),
            )
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let answer = Limited::new(resp.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        anyhow::ensure!(
            status == hyper::StatusCode::OK,
            "HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        Ok(())
    }
}

/// Starts the no-op branch service on a loopback port; returns its base URL.
///
/// Plain hyper (no router): every request, any path or method, is answered
/// `{"dtm_result":"SUCCESS"}` after its body is read, so the branch side costs as little as
/// an HTTP exchange can.
async fn start_branch_service() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the branch service")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        // Read (and drop) the payload, bounded, as a real participant would.
                        let _ = Limited::new(req.into_body(), ANSWER_BYTES_MAX)
                            .collect()
                            .await;
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(SUCCESS_BODY)))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}
