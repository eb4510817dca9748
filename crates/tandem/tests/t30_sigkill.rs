//! A crash loses nothing acknowledged: `tandem serve` is killed with SIGKILL again and again
//! while clients submit sagas (DTM's `submit`) and branch services fail now and then.
//!
//! Guards against: an acknowledgement given before its record was on disk (an acknowledged
//! gid missing or never finishing after recovery); recovery re-calling an action whose
//! success was already logged (the "logged `succeed`" snapshot is taken from the data
//! directory between each kill and restart); a failed saga leaving an
//! applied action uncompensated; a succeeded saga missing an action or compensated. (The
//! snapshot reads the store directly, as `tandem tx list|show --data-dir` do, because the
//! CLI's list no longer carries branches and one `tx show` per gid would be too slow.)
//!
//! ```text
//!  clients --submit--> tandem serve (child process) --action/compensate--> branch service
//!                         ^   SIGKILL x5, restart on the same --data-dir      (in-process,
//!                         |   between: the log is snapshotted (all branches)   records calls)
//! ```
//!
//! The branch service decides each answer from the gid (business failures, so a saga's
//! outcome does not depend on timing) and from the call's attempt number (a transient 500
//! or a brief hang on the first attempt only, so retries converge quickly). A call is
//! recorded when it arrives, with the answer it will get, so a call cut short by a kill still
//! counts as applied: the coordinator cannot know it was not, and must compensate it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{ListQuery, Store, LIST_LIMIT_MAX};

const TANDEM: &str = env!("CARGO_BIN_EXE_tandem");
const STEPS: usize = 3;
const KILLS: usize = 5;
const CLIENTS: usize = 4;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One call the branch service received.
#[derive(Debug, Clone)]
struct Call {
    gid: String,
    branch_id: String,
    op: String,
    /// Which server run sent it (0 before the first kill, k after the k-th restart).
    epoch: u32,
    /// Answered 2xx: the effect is applied.
    applied: bool,
}

#[derive(Default)]
struct Branches {
    calls: Vec<Call>,
    attempts: HashMap<(String, String, String), u32>,
    rng: u64,
}

struct BranchService {
    state: Mutex<Branches>,
    epoch: AtomicU32,
}

fn fnv(s: &str) -> u64 {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        x ^= u64::from(b);
        x = x.wrapping_mul(0x0100_0000_01b3);
    }
    x
}

fn next_rand(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// The step (1-based) whose action answers a business failure for this gid, if any: about
/// one saga in three fails, at its second or third step.
fn failing_step(gid: &str) -> Option<usize> {
    match fnv(gid) % 6 {
        0 => Some(2),
        1 => Some(3),
        _ => None,
    }
}

enum Answer {
    Ok,
    Failure,
    Transient,
    HangThenOk(u64),
}

impl BranchService {
    fn decide(&self, gid: &str, branch_id: &str, op: &str) -> Answer {
        let mut st = self.state.lock().unwrap();
        let n = {
            let e = st
                .attempts
                .entry((gid.to_string(), branch_id.to_string(), op.to_string()))
                .or_insert(0);
            *e += 1;
            *e
        };
        let step: usize = branch_id.parse().unwrap_or(0);
        let answer = if op == "action" && failing_step(gid) == Some(step) {
            Answer::Failure
        } else if n == 1 {
            let mut rng = st.rng;
            let r = next_rand(&mut rng) % 100;
            let hang = 50 + next_rand(&mut rng) % 250;
            st.rng = rng;
            match r {
                0..=9 => Answer::Transient,
                10..=19 => Answer::HangThenOk(hang),
                _ => Answer::Ok,
            }
        } else {
            Answer::Ok
        };
        let applied = matches!(answer, Answer::Ok | Answer::HangThenOk(_));
        let epoch = self.epoch.load(Ordering::SeqCst);
        st.calls.push(Call {
            gid: gid.to_string(),
            branch_id: branch_id.to_string(),
            op: op.to_string(),
            epoch,
            applied,
        });
        answer
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> &'a str {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or("")
}

async fn start_branch_service(svc: Arc<BranchService>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let f = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let svc = svc.clone();
                        async move {
                            let q = req.uri().query().unwrap_or("").to_string();
                            let _ = req.into_body().collect().await;
                            let answer = svc.decide(
                                query_param(&q, "gid"),
                                query_param(&q, "branch_id"),
                                query_param(&q, "op"),
                            );
                            let (code, body): (u16, &'static [u8]) = match answer {
                                Answer::Ok => (200, br#"{"dtm_result":"SUCCESS"}"#),
                                Answer::Failure => (409, br#"{"dtm_result":"FAILURE"}"#),
                                Answer::Transient => (500, b"try again later"),
                                Answer::HangThenOk(ms) => {
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                    (200, br#"{"dtm_result":"SUCCESS"}"#)
                                }
                            };
                            hyper::Response::builder()
                                .status(code)
                                .body(Full::new(Bytes::from_static(body)))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), f)
                    .await;
            });
        }
    });
    addr
}

fn start_server(port: u16, dir: &Path, run: usize) -> Child {
    let log = std::fs::File::create(dir.with_extension(format!("run{run}.log"))).unwrap();
    Command::new(TANDEM)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--grpc-listen",
            "",
            "--data-dir",
        ])
        .arg(dir)
        .env("TANDEM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn http(client: &HttpClient, req: hyper::Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
    let fut = async {
        let resp = client.request(req).await.ok()?;
        let code = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((code, body))
    };
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .ok()
        .flatten()
}

async fn wait_ready(client: &HttpClient, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let req = hyper::Request::get(format!("http://127.0.0.1:{port}/api/ping"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Some((200, _)) = http(client, req).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not come up within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every (gid, branch_id, op) → branch status, and gid → transaction status, as logged in
/// the data directory. The server must be stopped: this opens the store the way
/// `tandem tx list|show --data-dir` does (replaying the write-ahead log), and reads every
/// transaction with its branches, page by page.
async fn snapshot(dir: &Path) -> Snapshot {
    let store = RedbStore::open(dir, RedbConfig::default()).unwrap();
    let mut snap = Snapshot::default();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = store
            .list(&ListQuery {
                cursor: cursor.take(),
                limit: LIST_LIMIT_MAX,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        for tx in &page.items {
            snap.status
                .insert(tx.gid.clone(), tx.status.as_str().to_string());
            for b in &tx.branches {
                snap.branches.insert(
                    (
                        tx.gid.clone(),
                        b.branch_id.clone(),
                        b.op.as_str().to_string(),
                    ),
                    b.status.as_str().to_string(),
                );
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => {
                store.close().await.unwrap();
                return snap;
            }
        }
    }
    panic!("list paging did not end");
}

/// Every (gid, branch_id, op) → branch status, and gid → transaction status.
#[derive(Default)]
struct Snapshot {
    branches: HashMap<(String, String, String), String>,
    status: HashMap<String, String>,
}

fn saga_body(gid: &str, branch: SocketAddr) -> String {
    let steps: Vec<_> = (0..STEPS)
        .map(|i| {
            serde_json::json!({
                "action": format!("http://{branch}/api/busi/step{i}"),
                "compensate": format!("http://{branch}/api/busi/step{i}Revert"),
            })
        })
        .collect();
    let payloads: Vec<_> = (0..STEPS)
        .map(|i| format!("{{\"amount\":{}}}", 10 + i))
        .collect();
    serde_json::json!({
        "gid": gid, "trans_type": "saga", "steps": steps, "payloads": payloads,
        "wait_result": false,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_nothing_acknowledged() {
    let started = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = seed;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let svc = Arc::new(BranchService {
        state: Mutex::new(Branches {
            rng: seed.rotate_left(17) | 1,
            ..Branches::default()
        }),
        epoch: AtomicU32::new(0),
    });
    let branch = start_branch_service(svc.clone()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector);

    let mut child = start_server(port, &dir, 0);
    wait_ready(&client, port).await;

    // Clients: submit until told to stop; keep every gid the server answered 200.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let gid = format!("k{c}-{n}");
                let req =
                    hyper::Request::post(format!("http://127.0.0.1:{port}/api/dtmsvr/submit"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(saga_body(&gid, branch))))
                        .unwrap();
                match http(&client, req).await {
                    Some((200, _)) => acked.lock().unwrap().push(gid),
                    Some((code, body)) if code < 500 && code != 425 => {
                        panic!(
                            "submit {gid}: HTTP {code}: {}",
                            String::from_utf8_lossy(&body)
                        )
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Kill, snapshot the log, restart — KILLS times at random moments.
    let mut snapshots = Vec::new();
    for k in 0..KILLS {
        let pause = 300 + next_rand(&mut rng) % 700;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let snap = snapshot(&dir).await;
        let open = snap
            .status
            .values()
            .filter(|s| !matches!(s.as_str(), "succeed" | "failed"))
            .count();
        let logged_succeed = snap.branches.values().filter(|s| *s == "succeed").count();
        eprintln!(
            "kill {k} after {pause} ms: {} transactions logged ({open} not final, {logged_succeed} branches succeed), {} acknowledged",
            snap.status.len(),
            acked.lock().unwrap().len()
        );
        snapshots.push(snap);
        svc.epoch.store(k as u32 + 1, Ordering::SeqCst);
        child = start_server(port, &dir, k + 1);
        wait_ready(&client, port).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "too few sagas acknowledged: {}",
        acked.len()
    );

    // Every acknowledged gid reaches a final state (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: HashSet<String> = acked.iter().cloned().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} acknowledged sagas not final after 30 s, e.g. {:?}",
            pending.len(),
            pending.iter().take(5).collect::<Vec<_>>()
        );
        let mut still = HashSet::new();
        for gid in &pending {
            let req = hyper::Request::get(format!(
                "http://127.0.0.1:{port}/api/dtmsvr/query?gid={gid}"
            ))
            .body(Full::new(Bytes::new()))
            .unwrap();
            let status = match http(&client, req).await {
                Some((200, body)) => serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["transaction"]["status"].as_str().map(str::to_string)),
                _ => None,
            };
            if !matches!(status.as_deref(), Some("succeed" | "failed")) {
                still.insert(gid.clone());
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let last = snapshot(&dir).await;
    let calls = svc.state.lock().unwrap().calls.clone();

    // Calls per gid, in arrival order.
    let mut by_gid: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in &calls {
        by_gid.entry(c.gid.as_str()).or_default().push(c);
    }
    let (mut succeeded, mut failed) = (0, 0);
    for gid in &acked {
        let status = last.status.get(gid).map(String::as_str);
        let mine = by_gid.get(gid.as_str()).cloned().unwrap_or_default();
        let applied = |branch_id: &str, op: &str| {
            mine.iter()
                .position(|c| c.branch_id == branch_id && c.op == op && c.applied)
        };
        match status {
            Some("succeed") => {
                succeeded += 1;
                for step in 1..=STEPS {
                    let id = format!("{step:02}");
                    assert!(
                        applied(&id, "action").is_some(),
                        "{gid} succeeded but step {id} was never applied"
                    );
                    assert!(
                        applied(&id, "compensate").is_none(),
                        "{gid} succeeded but step {id} was compensated"
                    );
                }
            }
            Some("failed") => {
                failed += 1;
                for step in 1..=STEPS {
                    let id = format!("{step:02}");
                    if let Some(a) = applied(&id, "action") {
                        let comp = mine
                            .iter()
                            .skip(a + 1)
                            .any(|c| c.branch_id == id && c.op == "compensate" && c.applied);
                        assert!(
                            comp,
                            "{gid} failed but its applied step {id} was not compensated: {mine:?}"
                        );
                    }
                }
            }
            other => panic!("acknowledged {gid} is {other:?} in the log, not final"),
        }
    }

    // No branch whose success was logged before a kill is called again after it.
    let mut recalls = Vec::new();
    for (k, snap) in snapshots.iter().enumerate() {
        for c in calls.iter().filter(|c| c.epoch as usize > k) {
            let key = (c.gid.clone(), c.branch_id.clone(), c.op.clone());
            if snap.branches.get(&key).map(String::as_str) == Some("succeed") {
                recalls.push(format!(
                    "{key:?} logged succeed at kill {k}, called again in run {}",
                    c.epoch
                ));
            }
        }
    }
    assert!(
        recalls.is_empty(),
        "{} re-calls, e.g. {:?}",
        recalls.len(),
        &recalls[..recalls.len().min(5)]
    );
    eprintln!(
        "{} acknowledged ({succeeded} succeeded, {failed} failed), {} branch calls, {KILLS} kills, {:.1} s",
        acked.len(),
        calls.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(succeeded > 0 && failed > 0, "both outcomes should occur");
}
