//! The client against a real `tandem serve` (in-process, temporary data directory) and a
//! small participant service: every protocol end to end, the operator calls, errors named
//! by whose mistake they are, a bearer token, failover to a second node, and the wire
//! contract (the client's types keep every field the server sends).
//!
//! Guards against: a client whose types silently drop a field the server answers; a
//! resend that creates a second transaction; a caller's mistake reported as retryable.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::any;
use serde_json::{json, Value};
use tandem_client::{Client, Error, Fault, ListFilter, RetryPolicy, TxOptions};
use tandem_server::ServerConfig;

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = ServerConfig {
            listen: addr,
            data_dir: dir.path().to_path_buf(),
            shutdown_grace: Duration::from_secs(2),
            ..ServerConfig::default()
        };
        tune(&mut cfg);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tandem_server::serve_on(listener, cfg, async move {
                let _ = stopped.await;
            })
            .await;
        });
        let url = format!("http://{addr}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Server {
            url,
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A participant: `/ok/*` answers SUCCESS, `/fail/*` 409 FAILURE; `/count/*` counts calls.
async fn participant(calls: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new()
        .route(
            "/ok/{*rest}",
            any(|| async { axum::Json(json!({"dtm_result": "SUCCESS"})) }),
        )
        .route(
            "/fail/{*rest}",
            any(|| async {
                (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"dtm_result": "FAILURE"})),
                )
            }),
        )
        .route(
            "/count/{*rest}",
            any(move |Path(_): Path<String>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"dtm_result": "SUCCESS"}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_every_protocol_end_to_end() {
    let server = Server::start(|_| {}).await;
    let p = participant(Arc::new(AtomicUsize::new(0))).await;
    let c = Client::new(&server.url).unwrap();

    // Saga as a DAG: step 2 after 0 and 1.
    let out = c
        .saga()
        .step(&format!("{p}/ok/a"), &format!("{p}/ok/ca"), json!({"n": 1}))
        .step(&format!("{p}/ok/b"), &format!("{p}/ok/cb"), ())
        .step(&format!("{p}/ok/c"), &format!("{p}/ok/cc"), json!({"n": 3}))
        .after(2, &[0, 1])
        .submit_and_wait()
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    let tx = c.get(&out.gid).await.unwrap();
    assert_eq!(tx.options.orders, Some(vec![vec![], vec![], vec![0, 1]]));

    // A failing step: compensated, failed.
    let out = c
        .saga()
        .step(&format!("{p}/ok/a"), &format!("{p}/ok/ca"), json!({}))
        .step(&format!("{p}/fail/b"), &format!("{p}/ok/cb"), json!({}))
        .submit_and_wait()
        .await
        .unwrap();
    assert_eq!(out.status, "failed");

    // 2PC, accepted, then waited for.
    let out = c
        .two_pc()
        .participant(
            &format!("{p}/ok/prepare"),
            &format!("{p}/ok/commit"),
            &format!("{p}/ok/rollback"),
            json!({"x": 1}),
        )
        .submit()
        .await
        .unwrap();
    let done = c.wait(&out.gid, Duration::from_secs(10)).await.unwrap();
    assert!(done.succeeded(), "{done:?}");

    // TCC: all tries succeed → confirmed; one fails → aborted, the error is the participant's.
    let out = c
        .tcc_run(None, TxOptions::default(), true, |tcc| {
            let p = p.clone();
            async move {
                tcc.call_try(
                    "stock",
                    &format!("{p}/ok/try"),
                    &format!("{p}/ok/confirm"),
                    &format!("{p}/ok/cancel"),
                    json!({"sku": "a"}),
                )
                .await
            }
        })
        .await
        .unwrap();
    assert!(out.succeeded());
    let gid = c.new_gid();
    let err = c
        .tcc_run(Some(gid.clone()), TxOptions::default(), true, |tcc| {
            let p = p.clone();
            async move {
                tcc.call_try(
                    "pay",
                    &format!("{p}/fail/try"),
                    &format!("{p}/ok/confirm"),
                    &format!("{p}/ok/cancel"),
                    (),
                )
                .await
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.fault(), Fault::Participant, "{err}");
    assert!(!err.retryable());
    // (A read right after the abort's answer may still show `aborting`: the engine answers
    // from the driver before its store shows the end; `wait` polls the store.)
    let done = c.wait(&gid, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.status, "failed", "{done:?}");
    let tx = c.get(&gid).await.unwrap();
    assert!(tx.branches.iter().any(|b| b.op == "cancel"));

    // Msg: do_and_submit runs the local work, then submits.
    let out = c
        .msg()
        .branch(&format!("{p}/ok/deliver"), json!({"to": "x"}))
        .query_prepared(&format!("{p}/ok/check"))
        .do_and_submit(|gid| async move {
            assert!(!gid.is_empty());
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    let done = c.wait(&out.gid, Duration::from_secs(10)).await.unwrap();
    assert!(done.succeeded());

    // List by prefix.
    let page = c
        .list(&ListFilter {
            gid_prefix: Some("tc-".into()),
            limit: Some(100),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert!(page.transactions.len() >= 5, "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_resubmission_is_idempotent_and_operator_calls_work() {
    let server = Server::start(|_| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let p = participant(calls.clone()).await;
    let c = Client::new(&server.url).unwrap();
    // The same create twice (as a resend after a lost answer would): one transaction.
    let saga = || {
        c.saga().gid("same-1").step(
            &format!("{p}/count/a"),
            &format!("{p}/ok/c"),
            json!({"n": 1}),
        )
    };
    assert!(saga().submit_and_wait().await.unwrap().succeeded());
    assert!(saga().submit_and_wait().await.unwrap().succeeded());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the action ran once");
    // Different content under the same gid is the caller's mistake.
    let err = c
        .saga()
        .gid("same-1")
        .step(&format!("{p}/ok/other"), "", ())
        .submit()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("gid_exists"));
    assert_eq!(err.fault(), Fault::Caller);

    // A parked saga (a compensation that fails), retried and stopped with reasons.
    let out = c
        .saga()
        .gid("parks-1")
        .step(&format!("{p}/ok/a"), &format!("{p}/fail/ca"), ())
        .step(&format!("{p}/fail/b"), &format!("{p}/ok/cb"), ())
        .submit_and_wait()
        .await
        .unwrap();
    assert!(out.parked.is_some(), "{out:?}");
    let tx = c.retry("parks-1", "participant fixed").await.unwrap();
    assert!(tx.history.iter().any(|h| h.reason == "participant fixed"));
    let tx = c.stop("parks-1", "refunded by hand").await.unwrap();
    assert_eq!(tx.status, "failed");
    // Stopping what has ended is refused (the caller's mistake)...
    let err = c.stop("parks-1", "again").await.unwrap_err();
    assert_eq!(
        (err.code(), err.fault()),
        (Some("wrong_status"), Fault::Caller)
    );
    assert!(tx.history.iter().any(|h| h.reason == "refunded by hand"));
    assert!(matches!(
        c.stop("parks-1", " ").await,
        Err(Error::Invalid(_))
    ));

    // Not found, and a bad gid: the caller's mistakes, not retryable.
    let err = c.get("no-such-gid").await.unwrap_err();
    assert!(err.is_not_found() && !err.retryable());
    let err = c
        .saga()
        .gid("bad gid")
        .step("", "", ())
        .submit()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    let stats = c.stats().await.unwrap();
    assert!(stats.started >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_token_and_failover() {
    let server = Server::start(|cfg| {
        cfg.auth_token = Some(tandem_server::config::Secret::new("s3cret"));
    })
    .await;
    let without = Client::builder(&server.url)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = without.stats().await.unwrap_err();
    assert_eq!(err.fault(), Fault::Caller, "{err}");
    // First node down (nothing listens there): the client moves on to the second.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let c = Client::builder(&dead)
        .node(&server.url)
        .token(Some("s3cret"))
        .retry(RetryPolicy {
            attempts_max: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
        })
        .build()
        .unwrap();
    let out = c.saga().step("", "", ()).submit_and_wait().await.unwrap();
    assert!(out.succeeded());
    assert_eq!(c.node(), server.url);
    // Nothing answers at all: a network error, retryable, after the bounded tries.
    let none = Client::builder(&dead)
        .retry(RetryPolicy {
            attempts_max: 2,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
        })
        .build()
        .unwrap();
    let err = none.stats().await.unwrap_err();
    assert_eq!(err.fault(), Fault::Network, "{err}");
    assert!(err.retryable());
}

/// The wire contract: what the server answers, read into the client's types and written
/// back, is the same JSON — no field dropped or renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_client_types_keep_every_field_the_server_sends() {
    let server = Server::start(|_| {}).await;
    let p = participant(Arc::new(AtomicUsize::new(0))).await;
    let c = Client::new(&server.url).unwrap();
    let out = c
        .saga()
        .gid("contract-1")
        .step(&format!("{p}/ok/a"), &format!("{p}/ok/c"), json!({"n": 1}))
        .step(
            &format!("{p}/fail/b"),
            &format!("{p}/ok/c2"),
            json!({"n": 2}),
        )
        .options(TxOptions {
            retry_interval_ms: Some(100),
            branch_headers: Some([("x-k".to_string(), "v".to_string())].into()),
            ..TxOptions::default()
        })
        .submit_and_wait()
        .await
        .unwrap();
    assert_eq!(out.status, "failed");
    for path in ["/v1/transactions/contract-1", "/v1/transactions?limit=5"] {
        let raw = raw_get(&server.url, path).await;
        let typed: Value = if path.contains('?') {
            serde_json::to_value(
                serde_json::from_value::<tandem_client::TxPage>(raw.clone()).unwrap(),
            )
            .unwrap()
        } else {
            serde_json::to_value(
                serde_json::from_value::<tandem_client::TxView>(raw.clone()).unwrap(),
            )
            .unwrap()
        };
        assert_eq!(strip_nulls(raw), strip_nulls(typed), "{path}");
    }
}

/// `GET path` with a plain HTTP/1.0 request, the body as JSON.
async fn raw_get(base: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// Options the client leaves out when unset are `null` in the server's answer; every other
/// field, null or not, must be there on both sides.
fn strip_nulls(v: Value) -> Value {
    fn walk(v: Value, in_options: bool) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !(in_options && v.is_null()))
                    .map(|(k, v)| {
                        let opts = k == "options";
                        (k, walk(v, opts))
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| walk(v, false)).collect()),
            other => other,
        }
    }
    walk(v, false)
}

/// A proxy in front of the server that passes one request per connection, and for the next
/// `drops` requests forwards them but loses the answer (closes the connection unanswered
/// once the server has answered): what a node dying after the work looks like.
async fn lossy_proxy(server: &str, drops: Arc<AtomicUsize>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = server.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (target, drops) = (target.clone(), drops.clone());
            tokio::spawn(async move {
                // Read one request: head, then Content-Length bytes of body.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                // One request per connection upstream: ask the server to close after it.
                let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                let mut req = buf[..line_end].to_vec();
                req.extend_from_slice(b"connection: close\r\n");
                req.extend_from_slice(&buf[line_end..]);
                let mut up = tokio::net::TcpStream::connect(&target).await.unwrap();
                up.write_all(&req).await.unwrap();
                let mut answer = Vec::new();
                up.read_to_end(&mut answer).await.unwrap();
                let lose = drops
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1))
                    .is_ok();
                if !lose {
                    let _ = client.write_all(&answer).await;
                }
                // Dropped: the client sees its connection closed with no answer.
            });
        }
    });
    format!("http://{addr}")
}

/// Guards against: a create or a submit whose answer was lost being resent and counted
/// twice, or failing the caller although it took effect. The client resends; the server
/// answers idempotently; the action runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_a_lost_answer_is_resent_and_answered_idempotently() {
    let server = Server::start(|_| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let p = participant(calls.clone()).await;
    let drops = Arc::new(AtomicUsize::new(0));
    let proxy = lossy_proxy(&server.url, drops.clone()).await;
    let c = Client::builder(&proxy)
        .retry(RetryPolicy {
            attempts_max: 4,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
        })
        .build()
        .unwrap();

    drops.store(1, Ordering::SeqCst);
    let out = c
        .saga()
        .gid("lost-1")
        .step(
            &format!("{p}/count/a"),
            &format!("{p}/ok/c"),
            json!({"n": 1}),
        )
        .submit_and_wait()
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 0, "the first answer was lost");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the action ran once");

    // A TCC whose submit answer is lost: the resent submit finds it submitted (or done)
    // and answers where it is, not `wrong_status`.
    let tcc = c
        .tcc(Some("lost-2".into()), TxOptions::default())
        .await
        .unwrap();
    tcc.call_try(
        "b",
        &format!("{p}/ok/try"),
        &format!("{p}/count/confirm"),
        &format!("{p}/ok/cancel"),
        (),
    )
    .await
    .unwrap();
    drops.store(1, Ordering::SeqCst);
    let out = tcc.submit(true).await.unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the confirm ran once");

    // ...but a stop whose answer was lost is resent, refused as already ended, and the
    // client answers with the transaction its first try stopped.
    let out = c
        .saga()
        .gid("lost-3")
        .step(&format!("{p}/ok/a"), &format!("{p}/fail/ca"), ())
        .step(&format!("{p}/fail/b"), &format!("{p}/ok/cb"), ())
        .submit_and_wait()
        .await
        .unwrap();
    assert!(out.parked.is_some(), "{out:?}");
    drops.store(1, Ordering::SeqCst);
    let tx = c.stop("lost-3", "refunded by hand").await.unwrap();
    assert_eq!(tx.status, "failed");
    assert_eq!(drops.load(Ordering::SeqCst), 0, "the first answer was lost");
}
