//! Shared by the `/v1` tests: a real server on a free port over a temporary data
//! directory, a small HTTP client, and branch services (axum apps on other ports) that
//! record every call and answer by the path they were called on.
//!
//! Branch paths: `/ok*` → 200 SUCCESS, `/fail*` → 409 FAILURE, `/err*` → 500,
//! `/slow*` → 200 after 2 s. Each call is recorded as `"<path> <op> <branch_id>"`.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tandem_server::ServerConfig;

pub struct Server {
    pub url: String,
    pub http: Http,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    owned_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh temporary data directory.
    pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server::start_at(dir.path(), tune).await;
        s.owned_dir = Some(dir);
        s
    }

    /// A server on `dir` (e.g. again after [`Server::stop`], to check what survived).
    pub async fn start_at(dir: &std::path::Path, tune: impl FnOnce(&mut ServerConfig)) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = ServerConfig {
            listen: addr,
            data_dir: dir.to_path_buf(),
            shutdown_grace: Duration::from_secs(3),
            ..ServerConfig::default()
        };
        tune(&mut cfg);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tandem_server::serve_on(listener, cfg, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let url = format!("http://{addr}");
        let http = Http::new(&url);
        for _ in 0..200 {
            if http.get("/v1/openapi.json").await.0 != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Server {
            url,
            http,
            stop: Some(stop),
            task: Some(task),
            owned_dir: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// A tiny JSON-over-HTTP client.
#[derive(Clone)]
pub struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http {
            base: base.to_string(),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let res = match self
            .client
            .request(b.body(Full::new(Bytes::from(body))).unwrap())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Answer {
                    status: 0,
                    headers: Default::default(),
                    body: Value::Null,
                    text: e.to_string(),
                }
            }
        };
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let a = self
            .raw(
                "POST",
                path,
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await;
        (a.status, a.body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let a = self.raw("GET", path, None, Vec::new()).await;
        (a.status, a.body)
    }

    /// Polls `GET /v1/transactions/{gid}` until `done` holds (at most 10 s).
    pub async fn until(&self, gid: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..500 {
            let (s, v) = self.get(&format!("/v1/transactions/{gid}")).await;
            if s == 200 && done(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{gid} never reached the expected state: {last}");
    }
}

/// A branch service recording its calls.
pub struct Branches {
    pub url: String,
    pub calls: Arc<Mutex<Vec<String>>>,
}

#[derive(serde::Deserialize)]
struct CallQuery {
    #[serde(default)]
    op: String,
    #[serde(default)]
    branch_id: String,
}

async fn answer(
    State(calls): State<Arc<Mutex<Vec<String>>>>,
    Path(name): Path<String>,
    Query(q): Query<CallQuery>,
) -> (StatusCode, String) {
    calls
        .lock()
        .unwrap()
        .push(format!("{name} {} {}", q.op, q.branch_id));
    if name.starts_with("fail") {
        (StatusCode::CONFLICT, r#"{"dtm_result":"FAILURE"}"#.into())
    } else if name.starts_with("err") {
        (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
    } else {
        if name.starts_with("slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        (StatusCode::OK, r#"{"dtm_result":"SUCCESS"}"#.into())
    }
}

impl Branches {
    pub async fn start() -> Branches {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/{name}", axum::routing::any(answer))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Branches { url, calls }
    }

    pub fn at(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls whose op is `op`, as `"<path> <branch_id>"`.
    pub fn calls_of(&self, op: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| {
                let mut p = c.split(' ');
                let (name, o, id) = (p.next()?, p.next()?, p.next()?);
                (o == op).then(|| format!("{name} {id}"))
            })
            .collect()
    }
}
