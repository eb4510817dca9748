//! Bad input harms nothing: every client mistake on `/v1` gets a 4xx with the JSON error
//! body naming the problem (never a 500, never axum's plain-text rejection), busy is a 503
//! with Retry-After, and afterwards the server still serves and still has everything it
//! accepted before.

#![allow(clippy::unwrap_used)]

mod t10_v1_common;

use serde_json::{json, Value};
use t10_v1_common::{Answer, Branches, Server};

fn assert_error(a: &Answer, status: u16, code: &str, mentions: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(
        a.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{}",
        a.text
    );
    assert_eq!(a.body["error"]["code"], code, "{}", a.text);
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.to_lowercase().contains(&mentions.to_lowercase()),
        "{msg:?} should mention {mentions:?}"
    );
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no length declared); returns the raw
/// answer.
async fn chunked_post(base: &str, path: &str, body: &str) -> String {
    let (addr, path, body) = (
        base.trim_start_matches("http://").to_string(),
        path.to_string(),
        body.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        for chunk in body.as_bytes().chunks(1000) {
            let framed = format!(
                "{:x}\r\n{}\r\n",
                chunk.len(),
                String::from_utf8_lossy(chunk)
            );
            if c.write_all(framed.as_bytes()).is_err() {
                break; // the server may answer and close before reading everything
            }
        }
        let _ = c.write_all(b"0\r\n\r\n");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_mistake_is_a_named_4xx() {
    let s = Server::start(|c| {
        c.body_bytes_max = 4096;
        c.branches_max = 4;
        c.allowed_hosts = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let b = Branches::start().await;
    let ok = b.at("ok");
    let step = json!({"action": ok, "compensate": ok});
    let saga = |gid: &str| json!({"gid": gid, "wait_result": true, "steps": [step.clone()]});
    let post = |path: &'static str, body: Vec<u8>| {
        let http = s.http.clone();
        async move { http.raw("POST", path, Some("application/json"), body).await }
    };
    let post_json = |path: &'static str, v: Value| post(path, v.to_string().into_bytes());

    // Accepted before the abuse; must survive it.
    let (st, _) = s.http.post("/v1/sagas", saga("keep-1")).await;
    assert_eq!(st, 200);

    let a = post("/v1/sagas", b"{\"steps\": [".to_vec()).await;
    assert_error(&a, 400, "malformed_json", "json");
    let a = post("/v1/sagas", b"not json at all".to_vec()).await;
    assert_error(&a, 400, "malformed_json", "json");
    let a = post("/v1/sagas", Vec::new()).await;
    assert_error(&a, 400, "missing_body", "body");
    let a = post_json("/v1/sagas", json!({"steps": "many"})).await;
    assert_error(&a, 422, "invalid_body", "invalid type");
    let a = post_json("/v1/sagas", json!({"gid": 42, "steps": [step]})).await;
    assert_error(&a, 422, "invalid_body", "invalid type");
    let a = post_json("/v1/sagas", json!({"steps": [step], "wait_reslt": true})).await;
    assert_error(&a, 422, "invalid_body", "wait_reslt");
    let a = post_json("/v1/sagas", json!({"steps": [{"action": ok}]})).await;
    assert_error(&a, 422, "invalid_body", "compensate");
    let a = post_json(
        "/v1/sagas",
        json!({"steps": [step], "options": {"retry_limit": -1}}),
    )
    .await;
    assert_error(&a, 422, "invalid_body", "invalid value");
    let a = post_json("/v1/sagas", json!({"steps": []})).await;
    assert_error(&a, 400, "no_steps", "step");

    // Unknown type / op values.
    let a = s
        .http
        .raw("GET", "/v1/transactions?type=banana", None, vec![])
        .await;
    assert_error(&a, 400, "invalid_query", "banana");
    let a = s
        .http
        .raw("GET", "/v1/transactions?status=done", None, vec![])
        .await;
    assert_error(&a, 400, "invalid_query", "done");
    let a = s
        .http
        .raw("GET", "/v1/transactions?op=compensate", None, vec![])
        .await;
    assert_error(&a, 400, "invalid_query", "op");
    let a = s
        .http
        .raw("GET", "/v1/transactions?parked=maybe", None, vec![])
        .await;
    assert_error(&a, 400, "invalid_query", "parked");
    let a = s
        .http
        .raw("GET", "/v1/transactions?limit=5000", None, vec![])
        .await;
    assert_error(&a, 400, "invalid_query", "limit");
    let a = s
        .http
        .raw("GET", "/v1/transactions?cursor=%%%", None, vec![])
        .await;
    assert!(
        a.status == 400 && a.body["error"]["code"].is_string(),
        "{}",
        a.text
    );
    let a = s
        .http
        .raw("GET", "/v1/transactions?cursor=garbage", None, vec![])
        .await;
    assert!(
        a.status == 400 && a.body["error"]["code"].is_string(),
        "{}",
        a.text
    );

    // Gids: empty, over-long, bad characters.
    let a = post_json("/v1/sagas", saga("")).await;
    assert_error(&a, 400, "invalid_gid", "empty");
    let a = post_json("/v1/sagas", saga(&"g".repeat(129))).await;
    assert_error(&a, 400, "invalid_gid", "129");
    let a = post_json("/v1/sagas", saga("a/b")).await;
    assert_error(&a, 400, "invalid_gid", "'/'");

    // Same gid, different content: 409; the original is untouched.
    let mut other = saga("keep-1");
    other["steps"][0]["payload"] = json!({"different": true});
    let a = post_json("/v1/sagas", other).await;
    assert_error(&a, 409, "gid_exists", "keep-1");
    let a = post_json("/v1/tcc", json!({"gid": "keep-1"})).await;
    assert_error(&a, 409, "gid_exists", "keep-1");

    // Body over the limit: 413 with the JSON shape.
    let big = json!({"steps": [{"action": ok, "compensate": ok, "payload": "x".repeat(10_000)}]});
    let a = post_json("/v1/sagas", big).await;
    assert_error(
        &a,
        413,
        "body_too_large",
        "limit of 4096 bytes (body_bytes_max",
    );

    // ... and when the length is not declared (chunked): read up to the limit, then 413.
    let a = chunked_post(&s.url, "/v1/sagas", &"x".repeat(10_000)).await;
    assert!(a.starts_with("HTTP/1.1 413"), "{a}");
    assert!(a.contains("body_too_large"), "{a}");

    // A path that is not valid UTF-8 once decoded.
    let a = s
        .http
        .raw("GET", "/v1/transactions/%FF%FE", None, vec![])
        .await;
    assert_error(&a, 400, "invalid_path", "");

    // Too many branches (counted as steps: the limit is 4 steps, not 4 ops); URLs.
    let four = json!({"steps": [step, step, step, step]});
    assert_eq!(post_json("/v1/sagas", four).await.status, 200);
    let many = json!({"steps": [step, step, step, step, step]});
    let a = post_json("/v1/sagas", many).await;
    assert_error(
        &a,
        400,
        "too_many_branches",
        "5 steps; the limit is 4 (branches_max)",
    );
    let a = post_json(
        "/v1/sagas",
        json!({"steps": [{"action": "ftp://127.0.0.1/a", "compensate": ok}]}),
    )
    .await;
    assert_error(&a, 400, "invalid_url", "http");
    let a = post_json(
        "/v1/2pc",
        json!({"participants": [{"prepare": ok, "commit": "http://evil.example/c", "rollback": ok}]}),
    )
    .await;
    assert_error(&a, 400, "host_not_allowed", "evil.example");
    let a = post_json(
        "/v1/msgs",
        json!({"branches": [{"url": ok}], "query_prepared": "file:///etc/passwd"}),
    )
    .await;
    assert_error(&a, 400, "invalid_url", "file");
    let a = post_json(
        "/v1/sagas",
        json!({"steps": [step], "options": {"branch_headers": {"bad header": "x"}}}),
    )
    .await;
    assert_error(&a, 400, "invalid_options", "bad header");
    let a = post_json(
        "/v1/sagas",
        json!({"steps": [step, step], "options": {"orders": [[1], [0]]}}),
    )
    .await;
    assert_error(&a, 422, "invalid_orders", "cycle");

    // TCC: bad branch ids, unknown gid, wrong phase.
    let (st, _) = s.http.post("/v1/tcc", json!({"gid": "tcc-1"})).await;
    assert_eq!(st, 200);
    let a = s
        .http
        .raw(
            "POST",
            "/v1/tcc/tcc-1/branches",
            Some("application/json"),
            json!({"branch_id": "", "confirm": ok, "cancel": ok})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_error(&a, 400, "invalid_branch_id", "branch_id");
    let reg = |confirm: &str| {
        json!({"branch_id": "b1", "confirm": confirm, "cancel": ok})
            .to_string()
            .into_bytes()
    };
    let a = s
        .http
        .raw("POST", "/v1/tcc/tcc-1/branches", None, reg(&ok))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s
        .http
        .raw("POST", "/v1/tcc/tcc-1/branches", None, reg(&ok))
        .await;
    assert_eq!(a.status, 200, "registering again is idempotent: {}", a.text);
    let a = s
        .http
        .raw(
            "POST",
            "/v1/tcc/tcc-1/branches",
            None,
            reg(&b.at("ok-other")),
        )
        .await;
    assert_error(&a, 409, "branch_conflict", "b1");
    let a = s
        .http
        .raw("POST", "/v1/tcc/tcc-1/submit", None, Vec::new())
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s
        .http
        .raw(
            "POST",
            "/v1/tcc/tcc-1/branches",
            None,
            reg(&b.at("ok-late")),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    let a = s
        .http
        .raw("POST", "/v1/tcc/nope/submit", None, Vec::new())
        .await;
    assert_error(&a, 404, "not_found", "nope");

    // Operator actions need a reason.
    let a = s
        .http
        .raw(
            "POST",
            "/v1/transactions/keep-1/retry",
            None,
            b"{\"reason\": \"  \"}".to_vec(),
        )
        .await;
    assert_error(&a, 400, "reason_required", "reason");
    let a = s
        .http
        .raw("POST", "/v1/transactions/keep-1/stop", None, b"{}".to_vec())
        .await;
    assert_error(&a, 422, "invalid_body", "reason");
    let a = s
        .http
        .raw("POST", "/v1/transactions/keep-1/stop", None, Vec::new())
        .await;
    assert_error(&a, 400, "missing_body", "body");
    let long = json!({"reason": "r".repeat(2000)}).to_string().into_bytes();
    let a = s
        .http
        .raw("POST", "/v1/transactions/keep-1/stop", None, long)
        .await;
    assert_error(&a, 400, "reason_too_long", "1000");

    // Unknown routes and methods.
    let a = s.http.raw("GET", "/v1/nothing/here", None, vec![]).await;
    assert_error(&a, 404, "not_found", "endpoint");
    let a = s.http.raw("DELETE", "/v1/sagas", None, vec![]).await;
    assert_error(&a, 405, "method_not_allowed", "method");
    let a = s
        .http
        .raw("GET", "/v1/transactions/nope", None, vec![])
        .await;
    assert_error(&a, 404, "not_found", "nope");

    // Still serving; nothing accepted was lost.
    let (st, v) = s.http.post("/v1/sagas", saga("after-1")).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    let (st, v) = s.http.get("/v1/transactions/keep-1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    assert_eq!(v["branches"][0]["payload"], Value::Null);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_503_with_retry_after() {
    let s = Server::start(|c| c.active_max = 1).await;
    let b = Branches::start().await;
    let slow =
        json!({"gid": "slow-1", "steps": [{"action": b.at("slow"), "compensate": b.at("ok")}]});
    let (st, v) = s.http.post("/v1/sagas", slow).await;
    assert_eq!(st, 200, "{v}");
    let a = s
        .http
        .raw(
            "POST",
            "/v1/sagas",
            Some("application/json"),
            json!({"gid": "slow-2", "steps": [{"action": b.at("ok"), "compensate": b.at("ok")}]})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_error(&a, 503, "busy", "busy");
    assert_eq!(a.headers.get("retry-after").unwrap(), "1");
    s.http.until("slow-1", |t| t["status"] == "succeed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_between_good_requests_loses_nothing_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_at(dir.path(), |c| c.body_bytes_max = 2048).await;
    let b = Branches::start().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let http = s.http.clone();
        let ok = b.at("ok");
        tasks.push(tokio::spawn(async move {
            let garbage: Vec<u8> = match i % 4 {
                0 => b"{\"steps\": [{\"action\": ".to_vec(),
                1 => vec![0xff; 100],
                2 => vec![b'['; 5000],
                _ => br#"{"gid": "", "steps": 7}"#.to_vec(),
            };
            let bad = http
                .raw("POST", "/v1/sagas", Some("application/json"), garbage)
                .await;
            assert!((400..500).contains(&bad.status), "{}", bad.text);
            let good = json!({"gid": format!("mixed-{i}"),
                              "steps": [{"action": ok, "compensate": ok}]});
            let (st, v) = http.post("/v1/sagas", good).await;
            assert_eq!(st, 200, "{v}");
            format!("mixed-{i}")
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.push(t.await.unwrap());
    }
    s.stop().await;

    // Restart on the same directory: everything acknowledged is there and finishes.
    let s = Server::start_at(dir.path(), |_| {}).await;
    for gid in &accepted {
        s.http.until(gid, |t| t["status"] == "succeed").await;
    }
    let (_, p) = s
        .http
        .get("/v1/transactions?gid_prefix=mixed-&limit=1000")
        .await;
    assert_eq!(p["transactions"].as_array().unwrap().len(), accepted.len());
    s.stop().await;
}
