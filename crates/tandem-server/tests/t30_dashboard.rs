//! The dashboard's server side over real HTTP: `/` serves the app with the right content
//! types, cache validators and security headers, every asset the page names is served, and
//! `GET /v1/stats` counts what happened. Guards against an asset missing from the binary or
//! served with a type the browser refuses (a `nosniff` script served as text/plain does not
//! run), and against counters that drift from the transactions' real outcomes.

#![allow(clippy::unwrap_used)]

mod t10_v1_common;

use serde_json::json;
use t10_v1_common::{Branches, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_root_serves_the_app_and_its_assets() {
    let s = Server::start(|_| {}).await;
    let page = s.http.raw("GET", "/", None, Vec::new()).await;
    assert_eq!(page.status, 200);
    let h = |name: &str| {
        page.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(h("content-type"), "text/html; charset=utf-8");
    assert_eq!(h("cache-control"), "no-cache");
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert!(h("content-security-policy").contains("script-src 'self'"));
    assert!(h("etag").starts_with('"'));
    assert!(page.text.contains("<title>Tandem</title>"));

    // Every /dashboard/ file the page names is served, with its type.
    let mut named = Vec::new();
    for part in page.text.split('"') {
        if part.starts_with("/dashboard/") && !named.contains(&part.to_string()) {
            named.push(part.to_string());
        }
    }
    assert_eq!(named.len(), 3, "{named:?}");
    for path in &named {
        let a = s.http.raw("GET", path, None, Vec::new()).await;
        assert_eq!(a.status, 200, "{path}");
        let ct = a.headers["content-type"].to_str().unwrap();
        let want = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(ct, want, "{path}");
        assert!(!a.text.is_empty());
        assert!(tandem_server::dashboard::is_public_path(path));
    }
    assert!(tandem_server::dashboard::is_public_path("/"));
    assert!(!tandem_server::dashboard::is_public_path("/v1/stats"));
    assert!(!tandem_server::dashboard::is_public_path(
        "/dashboard/nope.js"
    ));

    // Revalidation: the same ETag answers 304 with no body.
    let tag = h("etag");
    let again = revalidate(&s.url, "/", &tag).await;
    assert_eq!(again, 304);
    assert_eq!(revalidate(&s.url, "/", "\"other\"").await, 200);

    let head = s.http.raw("HEAD", "/", None, Vec::new()).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        s.http
            .raw("GET", "/dashboard/nope.js", None, Vec::new())
            .await
            .status,
        404
    );
    s.stop().await;
}

async fn revalidate(base: &str, path: &str, tag: &str) -> u16 {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = hyper::Request::get(format!("{base}{path}"))
        .header("if-none-match", tag)
        .body(Full::default())
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_stats_count_outcomes_and_parking() {
    let s = Server::start(|c| c.node_name = Some("dash-node".into())).await;
    let b = Branches::start().await;

    let (code, st) = s.http.get("/v1/stats").await;
    assert_eq!(code, 200);
    assert_eq!(st["node_name"], "dash-node");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    for k in [
        "active",
        "started",
        "succeeded",
        "failed",
        "parked_total",
        "parked",
        "calls",
    ] {
        assert_eq!(st[k], 0, "{k}: {st}");
    }
    let t0 = st["now_ms"].as_u64().unwrap();
    assert!(t0 > 1_600_000_000_000);

    let saga = |gid: &str, action: String, opts: serde_json::Value| {
        json!({"gid": gid, "wait_result": true, "options": opts,
               "steps": [{"action": action, "compensate": b.at("ok-undo")}]})
    };
    let (c1, v1) = s
        .http
        .post("/v1/sagas", saga("s-ok", b.at("ok"), json!({})))
        .await;
    assert_eq!((c1, v1["status"].as_str()), (200, Some("succeed")), "{v1}");
    let (c2, v2) = s
        .http
        .post("/v1/sagas", saga("s-fail", b.at("fail"), json!({})))
        .await;
    assert_eq!((c2, v2["status"].as_str()), (200, Some("failed")), "{v2}");
    let (c3, v3) = s
        .http
        .post(
            "/v1/sagas",
            saga(
                "s-park",
                b.at("err"),
                json!({"retry_limit": 2, "retry_interval_ms": 10}),
            ),
        )
        .await;
    assert_eq!(c3, 200, "{v3}");
    assert!(v3["parked"].is_string(), "{v3}");

    let (_, st) = s.http.get("/v1/stats").await;
    assert_eq!(st["started"], 3, "{st}");
    assert_eq!(st["succeeded"], 1, "{st}");
    assert_eq!(st["failed"], 1, "{st}");
    assert_eq!(st["parked_total"], 1, "{st}");
    assert_eq!(st["parked"], 1, "{st}");
    assert_eq!(st["active"], 1, "the parked saga stays in memory: {st}");
    assert!(st["calls"].as_u64().unwrap() >= 4, "{st}");
    assert!(st["call_retries"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["log_records"].as_u64().unwrap() > 0, "{st}");
    assert!(st["now_ms"].as_u64().unwrap() >= t0);

    // Stopping the parked one ends it: it leaves memory and counts as failed.
    let (c, _) = s
        .http
        .post("/v1/transactions/s-park/stop", json!({"reason": "test"}))
        .await;
    assert_eq!(c, 200);
    s.http.until("s-park", |v| v["status"] == "failed").await;
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        st = s.http.get("/v1/stats").await.1;
        if st["active"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        (
            st["active"].as_u64(),
            st["failed"].as_u64(),
            st["parked"].as_u64()
        ),
        (Some(0), Some(2), Some(0)),
        "{st}"
    );

    // It is in the OpenAPI document.
    let (_, doc) = s.http.get("/v1/openapi.json").await;
    assert!(doc["paths"]["/v1/stats"]["get"].is_object());
    assert!(doc["components"]["schemas"]["StatsView"].is_object());
    s.stop().await;
}
