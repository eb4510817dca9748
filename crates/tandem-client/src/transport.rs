//! One request to the coordinator, sent until it is answered: a pooled keep-alive HTTP/1.1
//! client (plain or TLS) over one or more nodes, a bearer token, a per-request timeout, and
//! bounded resubmission with exponential backoff and jitter.
//!
//! Only requests that are safe to repeat are repeated: every request this crate sends is
//! idempotent on the server (a create names its gid, so a resubmission is answered with the
//! transaction's current outcome; a repeated register, submit, abort or retry is answered
//! with where the transaction is; a stop refused as "already ended" after an unanswered try
//! is answered with the transaction that try stopped — `t14` proves it through a proxy that
//! loses answers). A request is resent when no answer came (connection refused or
//! reset, timeout) — moving to the next node, since another coordinator sharing the store
//! can serve it — or when the server said "not now" (503 busy / shutting down, honouring
//! `Retry-After`, and other 5xx). A 4xx is the caller's mistake and is never resent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::wire::ErrorBody;

/// Largest answer read (a list page of 1000 transactions fits easily).
pub const ANSWER_BYTES_MAX: usize = 64 << 20;

/// How often and how patiently a request is resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1 = never resend).
    pub attempts_max: u32,
    /// Delay before the first resend; doubles each time (with ±50 % jitter).
    pub backoff_base: Duration,
    /// Longest delay between two tries.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 6,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Never resend.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            attempts_max: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before try `n + 1` (n ≥ 1 tries made so far).
    pub(crate) fn delay(&self, n: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(20));
        let capped = exp.min(self.backoff_max);
        // Full range jitter around the capped value: [0.5, 1.5) × capped.
        capped.mul_f64(0.5 + fastrand::f64())
    }
}

type HttpClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTP side of a [`crate::Client`].
pub(crate) struct Transport {
    nodes: Vec<String>,
    /// Index of the node to try first (moves on after a node does not answer).
    current: AtomicUsize,
    http: HttpClient,
    token: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

/// What a request's answer was, before it is decoded.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// The `Retry-After` of a 503.
    pub retry_after: Option<Duration>,
    /// An earlier try of this request got no answer (or a 5xx), so it may have taken
    /// effect: a refusal now may be that earlier try's doing.
    pub resent: bool,
}

impl Transport {
    pub(crate) fn new(
        nodes: Vec<String>,
        token: Option<String>,
        timeout: Duration,
        connect_timeout: Duration,
        retry: RetryPolicy,
    ) -> Transport {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Transport {
            nodes,
            current: AtomicUsize::new(0),
            http,
            token,
            timeout,
            retry,
        }
    }

    /// The node requests go to first.
    pub(crate) fn node(&self) -> &str {
        &self.nodes[self.current.load(Ordering::Relaxed) % self.nodes.len()]
    }

    /// Sends `body` to `path` until answered (see the module docs) and decodes a 2xx
    /// answer as `T`; a 4xx/5xx becomes the matching [`Error`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let answer = self.send(method, path, body).await?;
        decode(path, &answer)
    }

    /// Sends until answered below 500 (or the tries run out); the raw answer.
    pub(crate) async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        let body = body.map(Bytes::from);
        let mut tries = 0u32;
        let mut resent = false;
        loop {
            tries += 1;
            let node = self.node().to_owned();
            let err = match self.once(&node, method.clone(), path, body.clone()).await {
                Ok(mut a) if a.status < 500 => {
                    a.resent = resent;
                    return Ok(a);
                }
                Ok(a) => {
                    resent = true;
                    server_error(&a)
                }
                Err(e) => {
                    resent = true;
                    // No answer from this node: the next try goes to the next one.
                    let at = self.current.load(Ordering::Relaxed);
                    let _ = self.current.compare_exchange(
                        at,
                        at.wrapping_add(1),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    e
                }
            };
            if !err.retryable() || tries >= self.retry.attempts_max {
                return Err(err);
            }
            let mut delay = self.retry.delay(tries);
            if let Error::Server {
                retry_after: Some(after),
                ..
            } = &err
            {
                delay = delay.max(*after).min(self.retry.backoff_max.max(*after));
            }
            tracing::debug!(%node, path, tries, error = %err, ?delay, "resending");
            tokio::time::sleep(delay).await;
        }
    }

    /// One try against `node`.
    async fn once(
        &self,
        node: &str,
        method: hyper::Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let token = self.token.as_deref();
        self.request(node, method, &format!("{node}{path}"), body, token)
            .await
    }

    /// One request to a participant's `url` (a TCC try): never carries the coordinator's
    /// token.
    pub(crate) async fn participant(&self, url: &str, body: Option<Bytes>) -> Result<Answer> {
        let host = url.split('?').next().unwrap_or(url);
        self.request(host, hyper::Method::POST, url, body, None)
            .await
    }

    async fn request(
        &self,
        node: &str,
        method: hyper::Method,
        url: &str,
        body: Option<Bytes>,
        token: Option<&str>,
    ) -> Result<Answer> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::Invalid(format!("request URL {url}: {e}")))?;
        let sent = tokio::time::timeout(self.timeout, async {
            let res = self
                .http
                .request(req)
                .await
                .map_err(|e| Error::Unreachable {
                    node: node.to_owned(),
                    detail: describe(&e, url),
                })?;
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = Limited::new(res.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| Error::Unreachable {
                    node: node.to_owned(),
                    detail: format!("reading the answer: {e}"),
                })?
                .to_bytes();
            Ok(Answer {
                status,
                body,
                retry_after: retry_after.map(Duration::from_secs),
                resent: false,
            })
        })
        .await;
        match sent {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                node: node.to_owned(),
                after: self.timeout,
            }),
        }
    }
}

/// Words for a failed call that a person can act on (`connection refused to host:port`,
/// `timed out connecting to ...`, `cannot resolve host ...`) instead of the HTTP client's
/// `client error (Connect)`.
fn describe(err: &(dyn std::error::Error + 'static), url: &str) -> String {
    use std::io::ErrorKind;
    let to = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| {
            let port = u.port_u16().unwrap_or(match u.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            u.host().map(|h| format!("{h}:{port}"))
        })
        .unwrap_or_else(|| url.to_owned());
    let mut texts = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return format!("connection refused to {to}"),
                ErrorKind::TimedOut => return format!("timed out connecting to {to}"),
                ErrorKind::ConnectionReset => return format!("connection reset by {to}"),
                ErrorKind::ConnectionAborted => return format!("connection aborted by {to}"),
                _ => {}
            }
        }
        texts.push(e.to_string());
        cur = e.source();
    }
    let all = texts.join(" ").to_lowercase();
    if all.contains("dns error") || all.contains("failed to lookup address") {
        let host = to.rsplit_once(':').map_or(to.as_str(), |(h, _)| h);
        return format!("cannot resolve host {host} (DNS lookup failed)");
    }
    if all.contains("connection closed before message completed") {
        return format!("{to} closed the connection before answering");
    }
    texts.dedup();
    texts.join(": ")
}

/// A 5xx answer as an error.
fn server_error(a: &Answer) -> Error {
    let (code, message) = error_fields(a.status, &a.body);
    Error::Server {
        status: a.status,
        code,
        message,
        retry_after: a.retry_after,
    }
}

fn error_fields(status: u16, body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (
            format!("http_{status}"),
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(500)
                .collect(),
        ),
    }
}

/// Decodes an answer: 2xx as `T`, 4xx as [`Error::Rejected`].
pub(crate) fn decode<T: DeserializeOwned>(path: &str, a: &Answer) -> Result<T> {
    if !(200..300).contains(&a.status) {
        let (code, message) = error_fields(a.status, &a.body);
        return Err(Error::Rejected {
            status: a.status,
            code,
            message,
        });
    }
    serde_json::from_slice(&a.body).map_err(|e| Error::Protocol {
        url: path.to_owned(),
        detail: e.to_string(),
    })
}

/// TLS for https nodes: rustls with the system's trusted roots.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // ring supports the default protocol versions: not an input error.
        .expect("ring provides TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let p = RetryPolicy {
            attempts_max: 10,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 < Duration::from_millis(150));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 < Duration::from_millis(600));
            assert!(p.delay(30) < Duration::from_millis(1500));
        }
    }
}
