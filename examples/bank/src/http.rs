//! A small JSON-over-HTTP client (hyper, one pooled keep-alive client) for what
//! `tandem_client` does not cover: the banks' own admin endpoints, and DTM's XA protocol
//! (the checker's XA transfers and the banks' XA branch registrations).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Longest a single call may take before it counts as failed (unknown outcome).
const CALL_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(64)
                .build(connector),
        }
    }

    /// POSTs `body` as JSON (or nothing for `None`); the status and the answer as JSON
    /// (`Value::Null` when it is not JSON).
    pub async fn post(&self, url: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        let req = hyper::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(bytes))?;
        self.send(req).await
    }

    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, Value)> {
        let req = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> anyhow::Result<(u16, Value)> {
        let call = async {
            let resp = self.client.request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {CALL_TIMEOUT:?}"))?
    }
}
