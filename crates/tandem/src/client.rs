//! A small client for a running server's `/v1` API, used by `tandem tx … --server URL`.
//!
//! It speaks plain HTTP/1.1 over one pooled hyper client and reads answers into the
//! server's own view types ([`tandem_server::v1::view`]), so the CLI and the API cannot
//! disagree on a field. Every failure becomes a message a person can act on: the server
//! could not be reached (and where we tried), or the server's own `{"error":{code,message}}`
//! with its status. Each request is bounded by [`REQUEST_TIMEOUT`].

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tandem_server::v1::view::{ErrorBody, TxPage, TxView};

/// Longest a single request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a list page of 1000 transactions fits easily).
pub const ANSWER_BYTES_MAX: usize = 64 << 20;

pub struct ServerClient {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
    /// `TANDEM_AUTH_TOKEN`, sent as a bearer token when the server requires one.
    token: Option<String>,
}

/// Filters of `GET /v1/transactions`, as the CLI takes them.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub parked: Option<bool>,
    pub gid_prefix: Option<String>,
    pub cursor: Option<String>,
    pub limit: usize,
}

pub use tandem_server::dtm::wire::encode_query as encode;

impl ServerClient {
    /// `server` is the base URL, e.g. `http://127.0.0.1:36789`.
    pub fn new(server: &str) -> anyhow::Result<ServerClient> {
        let base = server.trim().trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            bail!("--server {server:?}: give an http:// URL, e.g. http://127.0.0.1:36789");
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Ok(ServerClient {
            base,
            http: Client::builder(TokioExecutor::new()).build(connector),
            token: std::env::var("TANDEM_AUTH_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut req = hyper::Request::builder().method(method).uri(url.as_str());
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .with_context(|| format!("invalid request URL {url}"))?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let res = self.http.request(req).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the tandem server at {}: {}; is `tandem serve` running there?",
                    self.base,
                    tandem_server::net_error::describe(&e, &self.base)
                )
            })?;
            let status = res.status();
            let body = Limited::new(res.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the answer from {url}: {e}"))?
                .to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the tandem server at {} did not answer within {} s",
                self.base,
                REQUEST_TIMEOUT.as_secs()
            )
        })??;
        let (status, body) = answer;
        if status == hyper::StatusCode::UNAUTHORIZED {
            let what = if self.token.is_some() {
                "the token in TANDEM_AUTH_TOKEN is not the server's"
            } else {
                "the server requires a token: set TANDEM_AUTH_TOKEN to its auth_token"
            };
            bail!("server answered 401 to {url}: {what}");
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => anyhow::anyhow!(
                    "server answered {}: {} ({})",
                    status.as_u16(),
                    e.error.message,
                    e.error.code
                ),
                Err(_) => anyhow::anyhow!(
                    "server answered {} to {url}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&body).trim()
                ),
            });
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("unexpected answer from {url}: is this a tandem server?"))
    }

    pub async fn list(&self, f: &ListFilter) -> anyhow::Result<TxPage> {
        let mut q = vec![format!("limit={}", f.limit)];
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode(v)));
            }
        };
        add("status", &f.status);
        add("type", &f.kind);
        add("gid_prefix", &f.gid_prefix);
        add("cursor", &f.cursor);
        if let Some(p) = f.parked {
            q.push(format!("parked={p}"));
        }
        self.call(
            hyper::Method::GET,
            &format!("/v1/transactions?{}", q.join("&")),
            None,
        )
        .await
    }

    pub async fn get(&self, gid: &str) -> anyhow::Result<TxView> {
        self.call(
            hyper::Method::GET,
            &format!("/v1/transactions/{}", encode(gid)),
            None,
        )
        .await
    }

    /// `action` is `retry` or `stop`.
    pub async fn operator(&self, gid: &str, action: &str, reason: &str) -> anyhow::Result<TxView> {
        self.call(
            hyper::Method::POST,
            &format!("/v1/transactions/{}/{action}", encode(gid)),
            Some(serde_json::json!({ "reason": reason })),
        )
        .await
    }
}
