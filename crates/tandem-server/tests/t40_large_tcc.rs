//! Large transactions: a TCC with 256 branches of 64 KiB payloads completes, its log grows
//! linearly with its branches, and one past the limits is refused up front with a 4xx naming
//! the limit.
//!
//! Guards against bug 7: every answer rewrote the whole snapshot and each registration stored
//! its payload twice, so about eight 1 MiB registrations exceeded the 16 MiB record limit; the
//! write failed, the driver stopped, the caller saw a 5xx and the transaction sat without a
//! driver. Log bytes grew with the square of the branch count.

mod t10_v1_common;

use serde_json::{json, Value};
use t10_v1_common::*;

async fn log_bytes(s: &Server) -> u64 {
    let text = s.http.raw("GET", "/metrics", None, Vec::new()).await.text;
    text.lines()
        .find_map(|l| l.strip_prefix("tandem_log_bytes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .expect("tandem_log_bytes_total")
}

/// Registers `n` branches of `payload_bytes` each on a new TCC, submits it and waits for the
/// end; returns the log bytes the transaction cost.
async fn tcc(s: &Server, gid: &str, n: usize, payload_bytes: usize) -> u64 {
    let before = log_bytes(s).await;
    let (st, v) = s.http.post("/v1/tcc", json!({"gid": gid})).await;
    assert_eq!(st, 200, "{v}");
    for k in 0..n {
        // Distinct payloads: equal ones would be stored once and prove nothing.
        let blob = format!("{k:08}{}", "p".repeat(payload_bytes.saturating_sub(8)));
        let body =
            json!({"branch_id": format!("b{k}"), "confirm": "", "cancel": "", "payload": blob});
        let (st, v) = s.http.post(&format!("/v1/tcc/{gid}/branches"), body).await;
        assert_eq!(st, 200, "branch {k}: {v}");
    }
    let (st, v) = s
        .http
        .post(
            &format!("/v1/tcc/{gid}/submit"),
            json!({"wait_result": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "succeed", "{v}");
    log_bytes(s).await - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_branch_tcc_of_64_kib_payloads_completes_and_its_log_grows_linearly() {
    let s = Server::start(|c| c.body_bytes_max = 1 << 20).await;
    let big = tcc(&s, "tcc-256", 256, 64 << 10).await;
    let payloads = 256 * (64 << 10) as u64;
    assert!(
        big < payloads * 3 / 2,
        "log bytes {big} for {payloads} bytes of payloads: each payload once, deltas after"
    );
    let (st, v) = s.http.get("/v1/transactions/tcc-256").await;
    assert_eq!(st, 200);
    assert_eq!(
        v["branches"].as_array().map(Vec::len),
        Some(512),
        "confirm + cancel each"
    );

    // Linear in the branch count, with small payloads too (the metadata alone used to grow
    // with the square).
    let b64 = tcc(&s, "tcc-small-64", 64, 16).await;
    let b256 = tcc(&s, "tcc-small-256", 256, 16).await;
    eprintln!("log bytes: 256 x 64 KiB: {big}; 64 x 16 B: {b64}; 256 x 16 B: {b256}");
    assert!(
        b256 < b64 * 6,
        "256 branches cost {b256} log bytes, 64 cost {b64}: more than linear"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_transaction_past_the_limits_is_refused_up_front() {
    let s = Server::start(|c| {
        c.branches_max = 3;
        c.body_bytes_max = 1 << 20;
    })
    .await;
    let (st, _) = s.http.post("/v1/tcc", json!({"gid": "lim"})).await;
    assert_eq!(st, 200);
    let reg = |k: usize| json!({"branch_id": format!("b{k}"), "confirm": "", "cancel": ""});
    for k in 0..3 {
        let (st, v) = s.http.post("/v1/tcc/lim/branches", reg(k)).await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v): (u16, Value) = s.http.post("/v1/tcc/lim/branches", reg(3)).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "too_many_branches");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit is 3")),
        "{v}"
    );
    // A repeat of a registration is not a new branch.
    let (st, v) = s.http.post("/v1/tcc/lim/branches", reg(0)).await;
    assert_eq!(st, 200, "{v}");
    // The transaction still has its driver: it submits and ends.
    let (st, v) = s
        .http
        .post("/v1/tcc/lim/submit", json!({"wait_result": true}))
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    s.stop().await;
}
