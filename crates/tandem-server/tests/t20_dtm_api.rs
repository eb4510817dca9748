//! The DTM-compatible API over a real bound port: bad input gets a 4xx JSON answer naming
//! the problem (never a 500, and the server keeps serving), and `query` / `all` answer in
//! DTM's shapes. Guards against regressions where a client's mistake reached the engine or
//! a store error leaked out as a 500.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tandem_server::ServerConfig;

struct Server {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(edit: impl FnOnce(&mut ServerConfig)) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut cfg = ServerConfig {
        data_dir: dir.path().join("db"),
        listen: addr,
        ..ServerConfig::default()
    };
    edit(&mut cfg);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tandem_server::serve_on(listener, cfg, async move {
        let _ = stopped.await;
    }));
    let s = Server {
        base: format!("http://{addr}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
        _stop: stop,
        _dir: dir,
    };
    for _ in 0..200 {
        if s.get("/api/ping").await.is_ok_and(|(c, _)| c == 200) {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("server did not start")
}

impl Server {
    async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let res = self.client.request(req).await?;
        let code = res.status().as_u16();
        let bytes = res.into_body().collect().await?.to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((code, v))
    }
    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send("GET", path, Vec::new()).await
    }
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send("POST", path, serde_json::to_vec(body)?).await
    }
}

fn saga(gid: &str, steps: usize) -> Value {
    json!({
        "gid": gid, "trans_type": "saga",
        "steps": (0..steps).map(|_| json!({"action": "", "compensate": ""})).collect::<Vec<_>>(),
        "payloads": (0..steps).map(|_| "{}").collect::<Vec<_>>(),
        "wait_result": true,
        "protocol": null, "custom_data": null, "passthrough_headers": [], "unknown": {"x": 1},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_naming_the_problem() -> anyhow::Result<()> {
    let s = start(|c| {
        c.branches_max = 8;
        c.body_bytes_max = 64 * 1024;
        c.allowed_hosts = Some(vec!["svc.internal".into()]);
    })
    .await?;
    let long_gid = "g".repeat(200);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/api/dtmsvr/submit",
            b"{not json".to_vec(),
            400,
            "bad request body",
        ),
        ("/api/dtmsvr/submit", b"".to_vec(), 400, "empty"),
        (
            "/api/dtmsvr/submit",
            br#"{"gid":"g1","trans_type":"saga","wait_result":"yes"}"#.to_vec(),
            400,
            "invalid type",
        ),
        (
            "/api/dtmsvr/submit",
            br#"{"gid":"g1","trans_type":"workflowz"}"#.to_vec(),
            400,
            "workflowz",
        ),
        (
            "/api/dtmsvr/submit",
            br#"{"gid":"","trans_type":"saga"}"#.to_vec(),
            400,
            "gid",
        ),
        (
            "/api/dtmsvr/submit",
            serde_json::to_vec(&json!({"gid": long_gid, "trans_type": "saga"}))?,
            400,
            "limit",
        ),
        (
            "/api/dtmsvr/submit",
            // branches_max counts steps, as users do: 8 is the limit here.
            serde_json::to_vec(&saga("g-many", 9))?,
            400,
            "9 steps; the limit is 8",
        ),
        (
            "/api/dtmsvr/submit",
            serde_json::to_vec(
                &json!({"gid":"g-url","trans_type":"saga","steps":[{"action":"file:///etc/passwd","compensate":""}],"payloads":["{}"]}),
            )?,
            400,
            "http://",
        ),
        (
            "/api/dtmsvr/submit",
            serde_json::to_vec(
                &json!({"gid":"g-host","trans_type":"saga","steps":[{"action":"http://evil/a","compensate":""}],"payloads":["{}"]}),
            )?,
            400,
            "allow-list",
        ),
        (
            "/api/dtmsvr/submit",
            serde_json::to_vec(
                &json!({"gid":"g-ord","trans_type":"saga","steps":[{"action":"","compensate":""}],"payloads":["{}"],"custom_data":"{\"concurrent\":true,\"orders\":{\"0\":[7]}}"}),
            )?,
            400,
            "orders",
        ),
        (
            "/api/dtmsvr/submit",
            serde_json::to_vec(&json!({"gid":"g-neg","trans_type":"saga","timeout_to_fail":-1}))?,
            400,
            "invalid",
        ),
        ("/api/dtmsvr/submit", vec![b' '; 70 * 1024], 413, "body"),
        (
            "/api/dtmsvr/registerBranch",
            br#"{"gid":"nope","branch_id":"01","trans_type":"tcc"}"#.to_vec(),
            409,
            "no trans",
        ),
        (
            "/api/dtmsvr/registerBranch",
            br#"{"gid":"g","branch_id":"01","trans_type":"saga"}"#.to_vec(),
            400,
            "tcc, xa and workflow",
        ),
        (
            "/api/dtmsvr/registerBranch",
            br#"{"gid":"g","branch_id":7,"trans_type":"tcc"}"#.to_vec(),
            400,
            "branch_id must be a string",
        ),
        (
            "/api/dtmsvr/prepare",
            br#"{"gid":"g-s","trans_type":"saga"}"#.to_vec(),
            400,
            "saga",
        ),
        (
            "/api/dtmsvr/abort",
            br#"{"gid":"missing","trans_type":"tcc"}"#.to_vec(),
            404,
            "missing",
        ),
    ];
    for (path, body, code, needle) in cases {
        let (got, v) = s.send("POST", path, body.clone()).await?;
        let text = v.to_string();
        assert_eq!(
            got,
            code,
            "{path} {}: {text}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert!(
            text.contains(needle),
            "{path}: {text} should mention {needle:?}"
        );
        assert_eq!(v["dtm_result"], "FAILURE", "{text}");
    }
    for q in [
        "/api/dtmsvr/query",
        "/api/dtmsvr/all?limit=abc",
        "/api/dtmsvr/all?limit=5000",
        "/api/dtmsvr/all?status=weird",
        "/api/dtmsvr/all?transType=x",
        "/api/dtmsvr/all?position=garbage",
        "/api/dtmsvr/all?createTimeStart=yesterday",
    ] {
        let (got, v) = s.get(q).await?;
        assert_eq!(got, 400, "{q}: {v}");
    }
    let (code, v) = s.post("/api/dtmsvr/prepareWorkflow", &json!({})).await?;
    assert_eq!(code, 400, "{v}");
    assert!(v["message"].to_string().contains("trans_type"), "{v}");
    let (code, v) = s
        .post(
            "/api/dtmsvr/prepareWorkflow",
            &json!({"gid": "wf-bad", "trans_type": "workflow", "custom_data": "{\"name\":\"\"}"}),
        )
        .await?;
    assert_eq!(code, 400, "{v}");
    assert!(v["message"].to_string().contains("name"), "{v}");
    // Same gid, different content: refused; the first one is intact.
    assert_eq!(
        s.post("/api/dtmsvr/submit", &saga("g-same", 1)).await?.0,
        200
    );
    assert_eq!(
        s.post("/api/dtmsvr/submit", &saga("g-same", 1)).await?.0,
        200,
        "idempotent"
    );
    let (code, v) = s.post("/api/dtmsvr/submit", &saga("g-same", 2)).await?;
    assert_eq!(
        (code, v["dtm_result"].clone()),
        (409, json!("FAILURE")),
        "{v}"
    );
    let (_, v) = s.get("/api/dtmsvr/query?gid=g-same").await?;
    assert_eq!(v["transaction"]["status"], "succeed");
    assert_eq!(v["branches"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_all_answer_in_dtm_shapes() -> anyhow::Result<()> {
    let s = start(|_| {}).await?;
    let (code, v) = s.get("/api/dtmsvr/newGid").await?;
    assert_eq!(code, 200);
    assert_eq!(v["dtm_result"], "SUCCESS");
    let gid0 = v["gid"].as_str().unwrap_or_default().to_string();
    assert!(!gid0.is_empty());
    assert_ne!(s.get("/api/dtmsvr/newGid").await?.1["gid"], json!(gid0));
    assert!(s.get("/api/dtmsvr/version").await?.1["version"].is_string());

    for i in 0..5 {
        let (code, v) = s
            .post("/api/dtmsvr/submit", &saga(&format!("page-{i}"), 1))
            .await?;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v, json!({"dtm_result": "SUCCESS"}));
    }
    let (code, v) = s.get("/api/dtmsvr/query?gid=page-0").await?;
    assert_eq!(code, 200);
    let t = &v["transaction"];
    for (k, want) in [
        ("gid", json!("page-0")),
        ("trans_type", json!("saga")),
        ("status", json!("succeed")),
        ("protocol", json!("http")),
        ("wait_result", json!(true)),
        ("concurrent", json!(false)),
    ] {
        assert_eq!(t[k], want, "{k} in {t}");
    }
    for k in ["create_time", "update_time", "finish_time", "options"] {
        assert!(t[k].is_string(), "{k} in {t}");
    }
    assert_eq!(t["steps"], json!([{"action": "", "compensate": ""}]));
    assert_eq!(t["payloads"], json!(["{}"]));
    let b = &v["branches"];
    assert_eq!(b[0]["op"], "compensate");
    assert_eq!(b[1]["op"], "action");
    assert_eq!(b[1]["status"], "succeed");
    assert_eq!(b[1]["branch_id"], "01");
    assert_eq!(b[1]["bin_data"], "e30=", "base64 of {{}}");

    let (_, v) = s.get("/api/dtmsvr/query?gid=never").await?;
    assert_eq!(v, json!({"transaction": null, "branches": []}));

    // Paging: 2 + 2 + 1, no duplicates, empty next_position at the end.
    let mut seen = Vec::new();
    let mut position = String::new();
    loop {
        let (code, v) = s
            .get(&format!(
                "/api/dtmsvr/all?limit=2&transType=saga&status=succeed&position={position}"
            ))
            .await?;
        assert_eq!(code, 200, "{v}");
        for t in v["transactions"].as_array().into_iter().flatten() {
            seen.push(t["gid"].as_str().unwrap_or_default().to_string());
        }
        position = v["next_position"].as_str().unwrap_or_default().to_string();
        if position.is_empty() {
            break;
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..5).map(|i| format!("page-{i}")).collect::<Vec<_>>()
    );
    let (_, v) = s.get("/api/dtmsvr/all?gid=page-3").await?;
    assert_eq!(v["transactions"][0]["gid"], "page-3");

    // TCC through the API, including the aliases and forceStop.
    let tcc = json!({"gid": "tcc-1", "trans_type": "tcc"});
    assert_eq!(s.post("/api/dtmsvr/prepare", &tcc).await?.0, 200);
    assert_eq!(
        s.post("/api/dtmsvr/prepare", &tcc).await?.0,
        200,
        "prepare is idempotent"
    );
    let reg = json!({"gid": "tcc-1", "branch_id": "01", "trans_type": "tcc", "data": "{}", "confirm": "", "cancel": "", "status": "prepared", "extra": [1, {"x": null}]});
    assert_eq!(s.post("/api/dtmsvr/registerTccBranch", &reg).await?.0, 200);
    let (_, v) = s.get("/api/dtmsvr/query?gid=tcc-1").await?;
    let ops: Vec<&str> = v["branches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["op"].as_str())
        .collect();
    assert_eq!(ops, ["cancel", "confirm"]);
    assert_eq!(s.post("/api/dtmsvr/resetNextCronTime", &tcc).await?.0, 200);
    assert_eq!(s.post("/api/dtmsvr/forceStop", &tcc).await?.0, 200);
    for _ in 0..200 {
        if s.get("/api/dtmsvr/query?gid=tcc-1").await?.1["transaction"]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (code, v) = s.post("/api/dtmsvr/forceStop", &tcc).await?;
    assert_eq!(code, 409, "{v}");

    // XA: registered branches are rolled back by op on abort.
    let xa = json!({"gid": "xa-1", "trans_type": "xa", "wait_result": true});
    assert_eq!(s.post("/api/dtmsvr/prepare", &xa).await?.0, 200);
    let reg = json!({"gid": "xa-1", "branch_id": "01", "trans_type": "xa", "url": ""});
    assert_eq!(s.post("/api/dtmsvr/registerXaBranch", &reg).await?.0, 200);
    let (code, v) = s.post("/api/dtmsvr/abort", &xa).await?;
    assert_eq!(code, 200, "{v}");
    let (_, v) = s.get("/api/dtmsvr/query?gid=xa-1").await?;
    assert_eq!(v["transaction"]["trans_type"], "xa");
    assert_eq!(v["transaction"]["status"], "failed");
    let (code, v) = s.post("/api/dtmsvr/submit", &xa).await?;
    assert_eq!((code, v["dtm_result"].clone()), (409, json!("FAILURE")));
    Ok(())
}
