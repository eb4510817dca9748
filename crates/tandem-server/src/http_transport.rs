//! Branch calls over HTTP, with DTM's conventions, so existing DTM participants work as
//! they are.
//!
//! - POST with the payload as the JSON body; GET when there is no payload (xa phase 2 is
//!   always POST, as DTM does).
//! - Query string: `gid`, `trans_type`, `branch_id`, `op`, and the answer's classes (2xx
//!   success; 409 or `FAILURE` business failure; 425 or `ONGOING` not yet; anything else, a
//!   timeout or a refused connection unknown, retried with backoff by the engine): DTM's
//!   vocabulary, kept in [`crate::dtm::wire`].
//! - `branch_headers` are passed through; every call carries a W3C `traceparent`.
//! - `https://` URLs are called over TLS (rustls, the system's trusted roots).
//! - An empty URL is a no-op that succeeds (DTM's convention, used to measure coordinator
//!   overhead alone).
//!
//! One pooled keep-alive client serves every call; answers are read up to
//! [`ANSWER_BYTES_MAX`] (a participant cannot make the coordinator buffer without bound).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tandem_core::{CallOutcome, Op};
use tandem_engine::{CallRequest, CallResult, Transport};

use crate::dtm::wire::{call_url, classify, trans_type};

/// Most bytes of a participant's answer that are read.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;

pub struct HttpTransport {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    spans: Option<crate::otlp::Exporter>,
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new()
    }
}

impl HttpTransport {
    pub fn new() -> HttpTransport {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        HttpTransport {
            client,
            spans: None,
        }
    }

    /// Exports a span for every branch call.
    pub fn with_spans(mut self, spans: crate::otlp::Exporter) -> HttpTransport {
        self.spans = Some(spans);
        self
    }
}

/// TLS for https branch URLs: rustls with the system's trusted roots (a machine without
/// any gets an empty store, and https calls then fail as retryable errors, loudly logged).
impl HttpTransport {
    /// POSTs a JSON body to `url` (alerts, span export), bounded by `timeout`; the answer's
    /// status, or why there was none. The answer body is read (bounded) and dropped.
    pub async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u16, String> {
        let mut builder = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad request to {url}: {e}"))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| crate::net_error::describe(&e, url))?;
            let status = response.status().as_u16();
            let _ = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await;
            Ok(status)
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
    }
}

fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        tracing::warn!("no trusted root certificates found: https branch calls will fail");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // ring's default provider supports the default protocol versions: not an input error.
        .expect("ring provides TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A call's span id when spans are not exported: stable per gid, branch and op.
pub(crate) fn call_span_id(gid: &str, branch_id: &str, op: Op) -> u64 {
    crate::trace::fnv(3, &format!("{gid}/{branch_id}/{}", op.as_str())) | 1
}

/// The `traceparent` a call without a submitter's trace context carries (trace id from the
/// gid, so every call of one transaction shares a trace).
pub fn traceparent(gid: &str, branch_id: &str, op: Op) -> String {
    crate::trace::TraceParent {
        trace_id: crate::trace::trace_id(gid, &[]),
        span_id: call_span_id(gid, branch_id, op),
    }
    .header()
}

#[async_trait]
impl Transport for HttpTransport {
    async fn call(&self, mut req: CallRequest) -> CallResult {
        if req.target.is_empty() {
            return CallOutcome::Success.into();
        }
        let url = call_url(&req);
        let method = if req.payload.is_empty() && trans_type(req.kind, req.op) != "xa" {
            hyper::Method::GET
        } else {
            hyper::Method::POST
        };
        // One trace per transaction: the submitter's trace id (or the gid's), a span per call.
        let trace_id = crate::trace::trace_id(&req.gid, &req.headers);
        let span_id = if self.spans.is_some() {
            crate::trace::new_span_id()
        } else {
            call_span_id(&req.gid, &req.branch_id, req.op)
        };
        let tp = crate::trace::TraceParent { trace_id, span_id };
        let mut builder = hyper::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header("traceparent", tp.header());
        if !req.payload.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        for (k, v) in req.headers.iter() {
            if !k.eq_ignore_ascii_case("traceparent") {
                builder = builder.header(k.as_str(), v.as_str());
            }
        }
        let start_ns = crate::otlp::now_ns();
        let payload = std::mem::take(&mut req.payload);
        let result = self.send(builder, payload, &url, &req.target).await;
        if let Some(spans) = &self.spans {
            let attrs = vec![
                ("http.request.method", serde_json::json!(method.as_str())),
                ("url.full", serde_json::json!(url)),
            ];
            spans.export(call_span(&req, tp, start_ns, attrs, &result));
        }
        result
    }
}

/// The exported span of one branch call; `protocol_attrs` say how it was made.
pub(crate) fn call_span(
    req: &CallRequest,
    tp: crate::trace::TraceParent,
    start_ns: u64,
    protocol_attrs: Vec<(&'static str, serde_json::Value)>,
    result: &CallResult,
) -> crate::otlp::Span {
    use serde_json::json;
    let (outcome, error) = match &result.outcome {
        CallOutcome::Success | CallOutcome::ReadOnly => ("success", None),
        CallOutcome::Failure(e) => ("failure", Some(e.clone())),
        CallOutcome::Ongoing => ("ongoing", None),
        CallOutcome::Error(e) => ("error", Some(e.clone())),
        CallOutcome::NotPrepared => ("not_prepared", None),
    };
    let mut attrs = vec![
        ("tandem.gid", json!(&*req.gid)),
        ("tandem.branch_id", json!(req.branch_id)),
        ("tandem.op", json!(req.op.as_str())),
        ("tandem.outcome", json!(outcome)),
    ];
    attrs.extend(protocol_attrs);
    if let Some(code) = result.code {
        attrs.push(("http.response.status_code", json!(code)));
    }
    crate::otlp::Span {
        trace_id: tp.trace_id,
        span_id: tp.span_id,
        parent: Some(crate::trace::tx_span_id(&req.gid)),
        name: format!("{} {}", req.op.as_str(), req.branch_id),
        kind: crate::otlp::KIND_CLIENT,
        start_ns,
        end_ns: crate::otlp::now_ns(),
        attrs,
        error,
    }
}

impl HttpTransport {
    async fn send(
        &self,
        builder: hyper::http::request::Builder,
        payload: Vec<u8>,
        url: &str,
        target: &str,
    ) -> CallResult {
        let request = match builder.body(Full::new(Bytes::from(payload))) {
            Ok(r) => r,
            Err(e) => return CallOutcome::Error(format!("bad request to {url}: {e}")).into(),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return CallOutcome::Error(crate::net_error::describe(&e, target)).into(),
        };
        let status = response.status().as_u16();
        let body = match Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return CallResult {
                    outcome: CallOutcome::Error(format!("reading the answer: {e}")),
                    code: Some(status),
                }
            }
        };
        CallResult {
            outcome: classify(status, &body),
            code: Some(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_w3c_shaped() {
        let t = traceparent("g1", "01", Op::Action);
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
        assert_eq!(
            traceparent("g1", "02", Op::Action)[..35],
            t[..35],
            "one trace per transaction"
        );
    }
}

#[cfg(test)]
mod tls_tests {
    use std::sync::Arc;

    use tandem_core::TxKind;

    use super::*;

    /// An https URL is dialled with TLS (here against a plain TCP listener, so the
    /// handshake fails): a retryable error, never "scheme not supported".
    #[tokio::test]
    async fn https_urls_are_called_over_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let t = HttpTransport::new();
        let req = CallRequest {
            gid: Arc::from("g"),
            kind: TxKind::Saga,
            branch_id: "01".into(),
            op: Op::Action,
            target: format!("https://{addr}/x"),
            payload: Vec::new(),
            headers: Arc::new(Vec::new()),
            xid: None,
            timeout: std::time::Duration::from_secs(5),
        };
        let res = t.call(req).await;
        match res.outcome {
            CallOutcome::Error(e) => assert!(!e.contains("scheme"), "{e}"),
            other => panic!("expected a TLS error, got {other:?}"),
        }
    }
}
