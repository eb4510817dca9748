//! `/v1` end to end over real HTTP: every protocol against branch services in the test
//! (saga success, failure with compensation order, DAG; 2PC commit and rollback; TCC
//! confirm and cancel; msg submit and query-prepared), then get with attempts, list filters and paging, and the
//! operator actions with their reasons recorded. Guards against API/engine mismatches that
//! unit tests of either side cannot see.

#![allow(clippy::unwrap_used)]

mod t10_v1_common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use t10_v1_common::{Branches, Server};

fn ops(v: &Value) -> Vec<(String, String, String)> {
    v["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["branch_id"].as_str().unwrap().to_string(),
                b["op"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_success_failure_and_dag() {
    let s = Server::start(|_| {}).await;
    let b = Branches::start().await;

    // Success, waiting for the result.
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "saga-ok", "wait_result": true, "steps": [
                {"action": b.at("ok-a1"), "compensate": b.at("ok-c1"), "payload": {"amount": 10}},
                {"action": b.at("ok-a2"), "compensate": b.at("ok-c2")}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"gid": "saga-ok", "type": "saga", "status": "succeed", "parked": null, "fail_reason": null, "heuristic": null})
    );
    assert_eq!(b.calls_of("action"), vec!["ok-a1 01", "ok-a2 02"]);
    assert!(b.calls_of("compensate").is_empty());

    // Idempotent resubmission: same answer, no new calls.
    let (st, v2) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "saga-ok", "wait_result": true, "steps": [
                {"action": b.at("ok-a1"), "compensate": b.at("ok-c1"), "payload": {"amount": 10}},
                {"action": b.at("ok-a2"), "compensate": b.at("ok-c2")}]}),
        )
        .await;
    assert_eq!((st, &v2), (200, &v));
    // Waiting differently is the same request too.
    let (st, v3) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "saga-ok", "steps": [
                {"action": b.at("ok-a1"), "compensate": b.at("ok-c1"), "payload": {"amount": 10}},
                {"action": b.at("ok-a2"), "compensate": b.at("ok-c2")}]}),
        )
        .await;
    assert_eq!((st, &v3), (200, &v));
    assert_eq!(b.calls_of("action").len(), 2);

    // Failure at step 3: steps 2 then 1 compensated, in that order.
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "saga-bad", "wait_result": true, "steps": [
                {"action": b.at("ok-b1"), "compensate": b.at("ok-d1")},
                {"action": b.at("ok-b2"), "compensate": b.at("ok-d2")},
                {"action": b.at("fail-b3"), "compensate": b.at("ok-d3")}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["fail_reason"].as_str().unwrap().contains("409"), "{v}");
    let comp: Vec<String> = b
        .calls_of("compensate")
        .into_iter()
        .filter(|c| c != "ok-d3 03")
        .collect();
    assert_eq!(comp, vec!["ok-d2 02", "ok-d1 01"]);

    // DAG: step 0 first, then 1 and 2 (any order), then 3 after both.
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "saga-dag", "wait_result": true,
                "options": {"orders": [[], [0], [0], [1, 2]]},
                "steps": [
                {"action": b.at("ok-g0"), "compensate": b.at("ok-h0")},
                {"action": b.at("ok-g1"), "compensate": b.at("ok-h1")},
                {"action": b.at("ok-g2"), "compensate": b.at("ok-h2")},
                {"action": b.at("ok-g3"), "compensate": b.at("ok-h3")}]}),
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    let order: Vec<String> = b
        .calls_of("action")
        .into_iter()
        .filter(|c| c.starts_with("ok-g"))
        .collect();
    assert_eq!(order.len(), 4);
    assert_eq!(order[0], "ok-g0 01");
    assert_eq!(order[3], "ok-g3 04");
    let (_, t) = s.http.get("/v1/transactions/saga-dag").await;
    assert_eq!(t["options"]["concurrent"], true);
    assert_eq!(t["options"]["orders"], json!([[], [0], [0], [1, 2]]));

    // Without wait_result: accepted, then it finishes; generated gid.
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"steps": [{"action": b.at("ok-n"), "compensate": b.at("ok-m")}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let gid = v["gid"].as_str().unwrap().to_string();
    assert!(gid.starts_with("tandem-"), "{gid}");
    s.http.until(&gid, |t| t["status"] == "succeed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_and_rollback() {
    let s = Server::start(|_| {}).await;
    let b = Branches::start().await;
    let part = |p: &str, prepare: &str| {
        json!({"prepare": b.at(&format!("{prepare}-{p}")), "commit": b.at(&format!("ok-commit-{p}")),
               "rollback": b.at(&format!("ok-rollback-{p}")), "payload": {"p": p}})
    };
    let (st, v) = s
        .http
        .post(
            "/v1/2pc",
            json!({"gid": "2pc-ok", "wait_result": true,
                   "participants": [part("x", "ok"), part("y", "ok")]}),
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    assert_eq!(v["type"], "2pc");
    let mut commits = b.calls_of("commit");
    commits.sort();
    assert_eq!(commits, vec!["ok-commit-x 01", "ok-commit-y 02"]);
    assert!(b.calls_of("rollback").is_empty());

    let (st, v) = s
        .http
        .post(
            "/v1/2pc",
            json!({"gid": "2pc-no", "wait_result": true,
                   "participants": [part("p", "ok"), part("q", "fail")]}),
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("failed")), "{v}");
    assert_eq!(b.calls_of("commit").len(), 2, "no new commit");
    assert!(b
        .calls_of("rollback")
        .contains(&"ok-rollback-p 01".to_string()));

    // One participant still uses its three URLs.
    let (st, v) = s
        .http
        .post(
            "/v1/2pc",
            json!({"gid": "2pc-one", "wait_result": true, "participants": [part("z", "ok")]}),
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    assert!(b.calls_of("commit").contains(&"ok-commit-z 01".to_string()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcc_confirm_and_cancel_and_msg() {
    let s = Server::start(|_| {}).await;
    let b = Branches::start().await;
    for (gid, finish, op) in [
        ("tcc-yes", "submit", "confirm"),
        ("tcc-no", "abort", "cancel"),
    ] {
        let (st, v) = s.http.post("/v1/tcc", json!({ "gid": gid })).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("prepared")), "{v}");
        for id in ["b1", "b2"] {
            let (st, v) = s
                .http
                .post(
                    &format!("/v1/tcc/{gid}/branches"),
                    json!({"branch_id": id, "confirm": b.at(&format!("ok-confirm-{gid}")),
                       "cancel": b.at(&format!("ok-cancel-{gid}")), "payload": {"id": id}}),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
        let (st, v) = s
            .http
            .post(
                &format!("/v1/tcc/{gid}/{finish}"),
                json!({"wait_result": true}),
            )
            .await;
        let want = if finish == "submit" {
            "succeed"
        } else {
            "failed"
        };
        assert_eq!((st, v["status"].as_str()), (200, Some(want)), "{v}");
        let mut calls = b.calls_of(op);
        calls.retain(|c| c.contains(gid));
        calls.sort();
        assert_eq!(
            calls,
            vec![format!("ok-{op}-{gid} b1"), format!("ok-{op}-{gid} b2")]
        );
    }
    assert!(b.calls_of("cancel").iter().all(|c| !c.contains("tcc-yes")));
    // A second submit of a succeeded TCC is idempotent; an abort is refused.
    let (st, _) = s.http.post("/v1/tcc/tcc-yes/submit", json!({})).await;
    assert_eq!(st, 200);
    let (st, v) = s.http.post("/v1/tcc/tcc-yes/abort", json!({})).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("wrong_status")),
        "{v}"
    );
    let (st, v) = s
        .http
        .post(
            "/v1/msgs",
            json!({"gid": "msg-1", "query_prepared": b.at("ok-query"),
               "branches": [{"url": b.at("ok-deliver1"), "payload": {"n": 1}},
                            {"url": b.at("ok-deliver2")}]}),
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("prepared")), "{v}");
    let (st, v) = s
        .http
        .post(
            "/v1/tcc/msg-1/branches",
            json!({"branch_id": "x", "confirm": b.at("ok"), "cancel": b.at("ok")}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("wrong_type")),
        "{v}"
    );
    // No Content-Type: the body is JSON all the same.
    let a = s
        .http
        .raw(
            "POST",
            "/v1/msgs/msg-1/submit",
            None,
            br#"{"wait_result":true}"#.to_vec(),
        )
        .await;
    let (st, v) = (a.status, a.body);
    assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    let mut delivered: Vec<String> = b
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("ok-deliver"))
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        vec!["ok-deliver1 action 01", "ok-deliver2 action 02"]
    );
    let t = s.http.until("msg-1", |t| t["status"] == "succeed").await;
    assert_eq!(t["query_prepared"], json!(b.at("ok-query")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_never_submitted_is_settled_by_query_prepared() {
    let s = Server::start(|_| {}).await;
    let b = Branches::start().await;
    // The sender committed but never submitted: the check says so, the message goes out.
    // The sender rolled back: the check answers FAILURE, the message is dropped.
    for (gid, check, want) in [
        ("msg-committed", "ok-check", "succeed"),
        ("msg-rolled-back", "fail-check", "failed"),
    ] {
        let (st, v) = s
            .http
            .post(
                "/v1/msgs",
                json!({"gid": gid, "query_prepared": b.at(check),
                   "options": {"query_prepared_after_ms": 50, "retry_interval_ms": 20},
                   "branches": [{"url": b.at(&format!("ok-deliver-{gid}"))}]}),
            )
            .await;
        assert_eq!((st, v["status"].as_str()), (200, Some("prepared")), "{v}");
        let t = s.http.until(gid, |t| t["status"] == want).await;
        let check = t["branches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|br| br["op"] == "query_prepared")
            .unwrap()
            .clone();
        assert!(check["attempts"].as_u64().unwrap() >= 1, "{t}");
    }
    let delivered: Vec<String> = b
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("ok-deliver"))
        .collect();
    assert_eq!(delivered, vec!["ok-deliver-msg-committed action 01"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_list_and_operator_actions() {
    let s = Server::start(|_| {}).await;
    let b = Branches::start().await;
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for i in 0..5 {
        let (st, _) = s
            .http
            .post(
                "/v1/sagas",
                json!({"gid": format!("list-{i}"), "wait_result": true,
                   "steps": [{"action": b.at("ok"), "compensate": b.at("ok")}]}),
            )
            .await;
        assert_eq!(st, 200);
    }
    // A step that keeps erroring parks the saga after retry_limit calls.
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "stuck-1", "wait_result": true,
               "options": {"retry_limit": 2, "retry_interval_ms": 10, "retry_max_ms": 20},
               "steps": [{"action": b.at("err-x"), "compensate": b.at("ok-undo")}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["parked"].is_string(), "{v}");

    // Get: branches with every attempt (time, outcome, code, latency, error).
    let (st, t) = s.http.get("/v1/transactions/stuck-1").await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        ops(&t),
        vec![
            ("01".into(), "action".into(), "running".into()),
            ("01".into(), "compensate".into(), "prepared".into())
        ]
    );
    let action = &t["branches"][0];
    assert_eq!(action["attempts"], 2);
    let recent = action["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    for a in recent {
        assert_eq!(a["outcome"], "error");
        assert_eq!(a["code"], 500);
        assert!(a["at_ms"].as_u64().unwrap() >= t0);
        assert!(a["latency_us"].is_u64());
        assert!(a["error"].as_str().unwrap().contains("boom"), "{a}");
    }

    // List: filters and paging.
    let (st, p) = s.http.get("/v1/transactions?parked=true").await;
    assert_eq!(st, 200, "{p}");
    let gids = |p: &Value| -> Vec<String> {
        p["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["gid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(gids(&p), vec!["stuck-1"]);
    let (_, p) = s
        .http
        .get("/v1/transactions?status=succeed&type=saga&gid_prefix=list-")
        .await;
    assert_eq!(gids(&p).len(), 5);
    let (_, p) = s.http.get("/v1/transactions?type=tcc").await;
    assert!(gids(&p).is_empty());
    let (_, p) = s
        .http
        .get(&format!(
            "/v1/transactions?created_from_ms={t0}&created_to_ms={}",
            t0 + 3_600_000
        ))
        .await;
    assert_eq!(gids(&p).len(), 6);
    let (_, p) = s
        .http
        .get(&format!("/v1/transactions?created_to_ms={t0}"))
        .await;
    assert!(gids(&p).is_empty());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/transactions?gid_prefix=list-&limit=2&cursor={c}"),
            None => "/v1/transactions?gid_prefix=list-&limit=2".into(),
        };
        let (st, p) = s.http.get(&q).await;
        assert_eq!(st, 200, "{p}");
        let page = gids(&p);
        assert!(page.len() <= 2);
        seen.extend(page);
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["list-4", "list-3", "list-2", "list-1", "list-0"]);

    // Operator: retry (still erroring, parks again) then stop; both reasons recorded.
    let (st, t) = s
        .http
        .post(
            "/v1/transactions/stuck-1/retry",
            json!({"reason": "service fixed? try again"}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    let t = s
        .http
        .until("stuck-1", |t| {
            t["parked"].is_string() && t["branches"][0]["attempts"].as_u64() >= Some(4)
        })
        .await;
    assert!(t["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["reason"] == "service fixed? try again"));
    let (st, t) = s
        .http
        .post(
            "/v1/transactions/stuck-1/stop",
            json!({"reason": "ticket OPS-7: give up"}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    let t = s.http.until("stuck-1", |t| t["status"] == "failed").await;
    assert!(t["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["reason"] == "ticket OPS-7: give up"));
    assert!(t["fail_reason"].as_str().unwrap().contains("OPS-7"), "{t}");
    // A force-stopped saga makes no further calls: the operator owns its clean-up.
    assert!(b.calls_of("compensate").is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_names_every_endpoint() {
    let s = Server::start(|_| {}).await;
    let (st, doc) = s.http.get("/v1/openapi.json").await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (p, m) in [
        ("/v1/sagas", "post"),
        ("/v1/2pc", "post"),
        ("/v1/tcc", "post"),
        ("/v1/tcc/{gid}/branches", "post"),
        ("/v1/tcc/{gid}/submit", "post"),
        ("/v1/tcc/{gid}/abort", "post"),
        ("/v1/msgs", "post"),
        ("/v1/msgs/{gid}/submit", "post"),
        ("/v1/transactions", "get"),
        ("/v1/transactions/{gid}", "get"),
        ("/v1/transactions/{gid}/retry", "post"),
        ("/v1/transactions/{gid}/stop", "post"),
        ("/v1/openapi.json", "get"),
    ] {
        assert!(
            paths.get(p).and_then(|x| x.get(m)).is_some(),
            "{m} {p} missing"
        );
    }
    // Submit, abort and TCC begin may have an empty body; the saga needs one.
    let required = |p: &str| doc["paths"][p]["post"]["requestBody"]["required"].clone();
    assert_ne!(required("/v1/tcc/{gid}/submit"), json!(true));
    assert_ne!(required("/v1/tcc"), json!(true));
    assert_eq!(required("/v1/sagas"), json!(true));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "SagaRequest",
        "TxView",
        "AttemptView",
        "TxPage",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let params: Vec<&str> = doc["paths"]["/v1/transactions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for q in [
        "status",
        "type",
        "parked",
        "gid_prefix",
        "created_from_ms",
        "cursor",
        "limit",
    ] {
        assert!(
            params.contains(&q),
            "query parameter {q} missing: {params:?}"
        );
    }
    s.stop().await;
}

/// Guards against (issue 16): a `wait_result` request that waits as long as a failing
/// branch's retries (~25 minutes by default) with no answer. Each waiting endpoint answers
/// within `wait_result_max_ms`: `/v1` with 202 and where the transaction is (the last error
/// names the refused connection), the DTM API with 425 ONGOING; the transaction goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_result_answers_within_wait_result_max() {
    let bound = Duration::from_millis(1500);
    let s = Server::start(|c| c.wait_result_max = bound).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = format!("http://{closed}/debit");

    // A saga.
    let t0 = Instant::now();
    let (st, v) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "w-saga", "wait_result": true,
                   "steps": [{"action": dead, "compensate": dead}]}),
        )
        .await;
    let took = t0.elapsed();
    assert_eq!(st, 202, "{v}");
    assert!(
        took >= bound && took < bound + Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(v["gid"], "w-saga");
    assert_eq!(v["status"], "submitted");
    let last = v["last_error"].as_str().unwrap();
    assert!(
        last.contains(&format!("connection refused to {closed}")),
        "{last}"
    );
    assert!(last.contains(&dead), "{last}");
    assert_eq!(v["transaction"]["branches"][0]["status"], "running", "{v}");
    assert!(v["waited_ms"].as_u64().unwrap() >= 1500, "{v}");

    // The same request again (idempotent) also answers within the bound.
    let t0 = Instant::now();
    let (st, _) = s
        .http
        .post(
            "/v1/sagas",
            json!({"gid": "w-saga", "wait_result": true,
                   "steps": [{"action": dead, "compensate": dead}]}),
        )
        .await;
    assert_eq!(st, 202);
    assert!(t0.elapsed() < bound + Duration::from_secs(2));

    // A TCC submit.
    let (st, _) = s.http.post("/v1/tcc", json!({"gid": "w-tcc"})).await;
    assert_eq!(st, 200);
    let (st, v) = s
        .http
        .post(
            "/v1/tcc/w-tcc/branches",
            json!({"branch_id": "b1", "confirm": dead, "cancel": dead}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let t0 = Instant::now();
    let (st, v) = s
        .http
        .post("/v1/tcc/w-tcc/submit", json!({"wait_result": true}))
        .await;
    assert_eq!(st, 202, "{v}");
    assert!(t0.elapsed() < bound + Duration::from_secs(2));
    assert!(
        v["last_error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{v}"
    );

    // DTM's submit with wait_result: 425 ONGOING.
    let t0 = Instant::now();
    let (st, v) = s
        .http
        .post(
            "/api/dtmsvr/submit",
            json!({"gid": "w-dtm", "trans_type": "saga", "wait_result": true,
                   "steps": [{"action": dead, "compensate": dead}], "payloads": [""]}),
        )
        .await;
    assert_eq!(st, 425, "{v}");
    assert_eq!(v["dtm_result"], "ONGOING", "{v}");
    assert!(t0.elapsed() < bound + Duration::from_secs(2));

    // An unknown DTM path: 404 with /v1's JSON body.
    let (st, v) = s.http.get("/api/dtmsvr/noSuchThing").await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/api/dtmsvr/noSuchThing"));
}
