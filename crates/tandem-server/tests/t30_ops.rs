//! Operations: Prometheus `/metrics`, parking (retry limit and stuck) with the alert webhook,
//! bearer-token authentication, and trace context with OTLP span export — each against a
//! real server on a free port and real HTTP receivers.

#![allow(clippy::unwrap_used)]

mod t10_v1_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use t10_v1_common::{Branches, Server};
use tandem_server::config::Secret;

/// A request with headers; answers (status, headers, body text).
async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, axum::http::HeaderMap, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut b = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let bytes = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let res = client
        .request(b.body(Full::new(bytes)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let h = res.headers().clone();
    let text =
        String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).to_string();
    (status, h, text)
}

/// The value of the sample `name{labels}` (labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

/// An HTTP receiver that records every JSON body POSTed to it; answers 503 to the first
/// `fail_first` posts, then 200.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn start(fail_first: u32) -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0u32));
        let (b, a) = (bodies.clone(), attempts.clone());
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let (b, a) = (b.clone(), a.clone());
            async move {
                let n = {
                    let mut a = a.lock().unwrap();
                    *a += 1;
                    *a
                };
                if n <= fail_first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                b.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            bodies,
            attempts,
        }
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let b = self.bodies.lock().unwrap().clone();
            if b.len() >= n {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} posts, got {:?}", self.bodies.lock().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_transactions_calls_and_the_log() {
    let b = Branches::start().await;
    let s = Server::start(|_| {}).await;
    for (gid, second) in [("m-ok", "ok-2"), ("m-fail", "fail-2")] {
        let (st, _) = s
            .http
            .post(
                "/v1/sagas",
                json!({"gid": gid, "wait_result": true, "steps": [
                    {"action": b.at("ok-1"), "compensate": b.at("ok-undo")},
                    {"action": b.at(second), "compensate": b.at("ok-undo")}]}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (st, h, text) = send("GET", &format!("{}/metrics", s.url), &[], None).await;
    assert_eq!(st, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(
        sample(&text, r#"tandem_transactions_started_total{type="saga"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tandem_transactions_finished_total{type="saga",outcome="succeeded"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tandem_transactions_finished_total{type="saga",outcome="failed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "tandem_transactions_in_flight"), Some(0.0));
    assert_eq!(sample(&text, "tandem_transactions_parked"), Some(0.0));
    // Actions: 3 successes (ok-1 twice, ok-2), 1 failure; compensations: 2 (both steps of
    // m-fail: the failed one may have done part of its work).
    assert_eq!(
        sample(
            &text,
            r#"tandem_branch_call_duration_seconds_count{op="action",outcome="success"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tandem_branch_call_duration_seconds_count{op="action",outcome="failure"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tandem_branch_call_duration_seconds_bucket{op="compensate",outcome="success",le="+Inf"}"#
        ),
        Some(2.0)
    );
    assert!(sample(&text, "tandem_log_fsync_duration_seconds_count").unwrap() >= 1.0);
    assert!(sample(&text, "tandem_log_batch_records_count").unwrap() >= 1.0);
    assert!(sample(&text, "tandem_log_records_total").unwrap() >= 4.0);
    // Every family is typed, and counters end in _total.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut p = line.split(' ').skip(2);
        let (name, kind) = (p.next().unwrap(), p.next().unwrap());
        assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_transaction_is_alerted_and_the_webhook_is_retried() {
    let b = Branches::start().await;
    let hook = Receiver::start(1).await; // refuses the first attempt
    let s = Server::start(|c| {
        c.alert_webhook_url = Some(hook.url.clone());
        c.node_name = Some("node-a".into());
    })
    .await;
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "alert-1", "wait_result": true,
                   "options": {"retry_limit": 2, "retry_interval_ms": 10, "retry_max_ms": 20},
                   "steps": [{"action": b.at("err-x"), "compensate": b.at("ok-undo")}]}),
        )
        .await;
    assert_eq!(st, 200);
    assert!(v["parked"].is_string(), "{v}");
    let alerts = hook.wait_for(1).await;
    let a = &alerts[0];
    assert_eq!(a["event"], "transaction_parked");
    assert_eq!(a["gid"], "alert-1");
    assert_eq!(a["type"], "saga");
    assert_eq!(a["node"], "node-a");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("still failing after 2 attempts"),
        "{a}"
    );
    assert_eq!(
        *hook.attempts.lock().unwrap(),
        2,
        "the refused first attempt was retried"
    );
    let (_, _, text) = send("GET", &format!("{}/metrics", s.url), &[], None).await;
    assert_eq!(sample(&text, "tandem_transactions_parked"), Some(1.0));
    assert_eq!(
        sample(&text, r#"tandem_transactions_parked_total{type="saga"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"tandem_alerts_total{result="sent"}"#),
        Some(1.0)
    );
    // The operator retries; the gauge follows.
    let (st, _) = s
        .http
        .post(
            "/v1/transactions/alert-1/stop",
            json!({"reason": "known outage"}),
        )
        .await;
    assert_eq!(st, 200);
    s.http.until("alert-1", |v| v["status"] == "failed").await;
    let (_, _, text) = send("GET", &format!("{}/metrics", s.url), &[], None).await;
    assert_eq!(sample(&text, "tandem_transactions_parked"), Some(0.0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_stuck_in_one_status_is_parked_with_a_reason() {
    let hook = Receiver::start(0).await;
    let s = Server::start(|c| {
        c.alert_webhook_url = Some(hook.url.clone());
        c.stuck_after = Some(Duration::from_millis(300));
    })
    .await;
    // A TCC transaction begun and never submitted nor aborted: stuck in `prepared`.
    let (st, _) = s.http.post("/v1/tcc", json!({"gid": "stuck-tcc"})).await;
    assert_eq!(st, 200);
    let v = s.http.until("stuck-tcc", |v| v["parked"].is_string()).await;
    let reason = v["parked"].as_str().unwrap();
    assert!(reason.contains("stuck in status prepared"), "{reason}");
    let alerts = hook.wait_for(1).await;
    assert_eq!(alerts[0]["gid"], "stuck-tcc");
    assert!(alerts[0]["reason"].as_str().unwrap().contains("stuck"));
    // Submitting still works after an operator retry (parking stops automatic progress only).
    let (st, _) = s
        .http
        .post(
            "/v1/transactions/stuck-tcc/retry",
            json!({"reason": "client is back"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s.http.post("/v1/tcc/stuck-tcc/submit", json!({})).await;
    assert_eq!(st, 200, "submit after retry");
    s.http
        .until("stuck-tcc", |v| v["status"] == "succeed")
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_guards_every_api_but_what_is_left_open() {
    let token = "s3cret-token-value";
    let s = Server::start(|c| {
        c.auth_token = Some(Secret::new(token));
        c.ping_public = true;
    })
    .await;
    let base = &s.url;
    let good = format!("Bearer {token}");
    for path in [
        "/v1/transactions",
        "/api/dtmsvr/newGid",
        "/metrics",
        "/v1/openapi.json",
    ] {
        let (st, h, body) = send("GET", &format!("{base}{path}"), &[], None).await;
        assert_eq!(st, 401, "{path} without a token");
        assert_eq!(h["www-authenticate"], "Bearer realm=\"tandem\"");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "unauthorized", "{path}: {body}");
        assert!(!body.contains(token));
        let (st, _, _) = send(
            "GET",
            &format!("{base}{path}"),
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await;
        assert_eq!(st, 401, "{path} with a wrong token");
        let (st, _, _) = send(
            "GET",
            &format!("{base}{path}"),
            &[("authorization", &good)],
            None,
        )
        .await;
        assert_eq!(st, 200, "{path} with the token");
    }
    // Writes too: nothing is accepted without the token.
    let (st, _, _) = send(
        "POST",
        &format!("{base}/v1/sagas"),
        &[],
        Some(json!({"gid": "a-1", "steps": []})),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = send(
        "GET",
        &format!("{base}/v1/transactions/a-1"),
        &[("authorization", &good)],
        None,
    )
    .await;
    assert_eq!(st, 404, "the refused submit created nothing");
    // Left open by config.
    let (st, _, _) = send("GET", &format!("{base}/api/ping"), &[], None).await;
    assert_eq!(st, 200);
    // The config never prints the token.
    let cfg = tandem_server::ServerConfig {
        auth_token: Some(Secret::new(token)),
        ..Default::default()
    };
    assert!(!format!("{cfg:?}").contains(token));
    s.stop().await;

    let s = Server::start(|c| {
        c.auth_token = Some(Secret::new(token));
        c.metrics_public = true;
    })
    .await;
    let (st, _, _) = send("GET", &format!("{}/metrics", s.url), &[], None).await;
    assert_eq!(st, 200, "metrics_public");
    let (st, _, _) = send("GET", &format!("{}/api/ping", s.url), &[], None).await;
    assert_eq!(st, 401, "ping stays guarded unless ping_public");
    s.stop().await;
}

/// A participant that records the `traceparent` of every call.
async fn traced_participant() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |h: axum::http::HeaderMap| {
        let s2 = s2.clone();
        async move {
            let tp = h
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            s2.lock().unwrap().push(tp);
            (StatusCode::OK, r#"{"dtm_result":"SUCCESS"}"#)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submitters_trace_continues_into_every_branch_call_and_spans_are_exported() {
    let collector = Receiver::start(0).await;
    let (part, seen) = traced_participant().await;
    let s = Server::start(|c| {
        c.otlp_endpoint = Some(collector.url.clone());
        c.service_name = "tandem-test".into();
    })
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let (st, _, body) = send(
        "POST",
        &format!("{}/v1/sagas", s.url),
        &[("traceparent", &format!("00-{trace}-{parent}-01"))],
        Some(json!({"gid": "traced-1", "wait_result": true, "steps": [
            {"action": format!("{part}/a"), "compensate": format!("{part}/ua")},
            {"action": format!("{part}/b"), "compensate": format!("{part}/ub")}]})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let call_spans: Vec<String> = got
        .iter()
        .map(|tp| {
            let p: Vec<&str> = tp.split('-').collect();
            assert_eq!(
                p[1], trace,
                "the branch call continues the submitter's trace: {tp}"
            );
            assert_ne!(p[2], parent);
            p[2].to_string()
        })
        .collect();
    assert_ne!(call_spans[0], call_spans[1], "a span per call");

    // The collector receives OTLP/JSON: the transaction's span (child of the submitter's)
    // and one client span per call (children of the transaction's span).
    let mut spans: Vec<Value> = Vec::new();
    for _ in 0..200 {
        spans = collector
            .bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|rs| {
                assert_eq!(
                    rs["resource"]["attributes"][0]["value"]["stringValue"],
                    "tandem-test"
                );
                rs["scopeSpans"].as_array().cloned().unwrap_or_default()
            })
            .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
            .collect();
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(spans.len(), 3, "{spans:?}");
    let tx_span = spans
        .iter()
        .find(|s| s["kind"] == 1)
        .expect("transaction span");
    assert_eq!(tx_span["traceId"], trace);
    assert_eq!(tx_span["parentSpanId"], parent);
    for id in &call_spans {
        let c = spans
            .iter()
            .find(|s| &s["spanId"] == id)
            .expect("the call's span");
        assert_eq!(c["traceId"], trace);
        assert_eq!(c["kind"], 3);
        assert_eq!(c["parentSpanId"], tx_span["spanId"]);
    }
    s.stop().await;
}
