//! [`Client`]: the handle an application keeps (cheap to clone), its builder, and the
//! operations on existing transactions — get, list, wait, retry, stop, stats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::transport::{RetryPolicy, Transport};
use crate::wire::{ListFilter, ReasonRequest, Stats, TxOutcome, TxPage, TxView};

/// Default per-request timeout. A create with `wait_result` is answered only when the
/// transaction ends, so raise it (or use [`Client::wait`]) for slow transactions.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest operator reason the server accepts, in bytes.
pub const REASON_BYTES_MAX: usize = 1000;

/// A client of one Tandem deployment (one or more nodes sharing a store). Cloning is cheap
/// and shares the connection pool.
#[derive(Clone)]
pub struct Client {
    pub(crate) t: Arc<Transport>,
    gid_prefix: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("node", &self.t.node())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    nodes: Vec<String>,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    gid_prefix: String,
}

impl ClientBuilder {
    /// Another node of the same deployment, tried when the ones before do not answer.
    pub fn node(mut self, base_url: &str) -> Self {
        self.nodes
            .push(base_url.trim().trim_end_matches('/').to_owned());
        self
    }

    /// The bearer token (the server's `auth_token`); `None` or empty sends none.
    pub fn token(mut self, token: Option<impl Into<String>>) -> Self {
        self.token = token.map(Into::into).filter(|t: &String| !t.is_empty());
        self
    }

    /// Per-request timeout (default [`REQUEST_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect timeout (default [`CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How requests are resent (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Prefix of the gids the client makes up when the caller names none (default `tc`).
    pub fn gid_prefix(mut self, prefix: &str) -> Self {
        self.gid_prefix = prefix.to_owned();
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a node is not an `http://` or `https://` URL, or the gid
    /// prefix would make invalid gids.
    pub fn build(self) -> Result<Client> {
        if self.nodes.is_empty() {
            return Err(Error::Invalid("no node given".into()));
        }
        for n in &self.nodes {
            let rest = n
                .strip_prefix("http://")
                .or_else(|| n.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['/', '?', '#', ' '])) {
                return Err(Error::Invalid(format!(
                    "{n:?} is not a server base URL: give http://host:port (or https://)"
                )));
            }
        }
        if self.retry.attempts_max == 0 {
            return Err(Error::Invalid(
                "retry.attempts_max must be at least 1".into(),
            ));
        }
        tandem_core::validate_gid(&format!("{}-x", self.gid_prefix))
            .map_err(|e| Error::Invalid(format!("gid prefix {:?}: {e}", self.gid_prefix)))?;
        Ok(Client {
            t: Arc::new(Transport::new(
                self.nodes,
                self.token,
                self.timeout,
                self.connect_timeout,
                self.retry,
            )),
            gid_prefix: self.gid_prefix.into(),
        })
    }
}

impl Client {
    /// A builder for the deployment whose first node is `base_url` (e.g.
    /// `http://127.0.0.1:36789`).
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            nodes: Vec::new(),
            token: None,
            timeout: REQUEST_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            gid_prefix: "tc".into(),
        }
        .node(base_url)
    }

    /// A client of `base_url` with the defaults.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that is not `http(s)://host:port`.
    pub fn new(base_url: &str) -> Result<Client> {
        Client::builder(base_url).build()
    }

    /// The node requests go to first now.
    pub fn node(&self) -> &str {
        self.t.node()
    }

    /// A fresh gid: `<prefix>-<ms since the epoch, hex>-<64 random bits, hex>`.
    pub fn new_gid(&self) -> String {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        format!("{}-{ms:x}-{:016x}", self.gid_prefix, fastrand::u64(..))
    }

    /// `gid` checked against the server's rules, or a fresh one.
    pub(crate) fn gid_or_new(&self, gid: Option<String>) -> Result<String> {
        match gid {
            Some(g) => {
                tandem_core::validate_gid(&g)
                    .map_err(|e| Error::Invalid(format!("gid {g:?}: {e}")))?;
                Ok(g)
            }
            None => Ok(self.new_gid()),
        }
    }

    pub(crate) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Invalid(e.to_string()))?;
        self.t.call(hyper::Method::POST, path, Some(body)).await
    }

    /// One transaction with its branches, attempts and history.
    ///
    /// # Errors
    /// [`Error::Rejected`] `not_found` when there is none ([`Error::is_not_found`]).
    pub async fn get(&self, gid: &str) -> Result<TxView> {
        self.t
            .call(hyper::Method::GET, &tx_path(gid, ""), None)
            .await
    }

    /// One page of transactions, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<TxPage> {
        let q = filter.query();
        let path = if q.is_empty() {
            "/v1/transactions".to_owned()
        } else {
            format!("/v1/transactions?{q}")
        };
        self.t.call(hyper::Method::GET, &path, None).await
    }

    /// The live counters.
    pub async fn stats(&self) -> Result<Stats> {
        self.t.call(hyper::Method::GET, "/v1/stats", None).await
    }

    /// Waits until `gid` has ended (`succeed` or `failed`) or is parked, polling with
    /// backoff (10 ms doubling to 500 ms), for at most `timeout`.
    ///
    /// # Errors
    /// [`Error::WaitTimeout`] when it had not ended in time; the errors of [`Client::get`].
    pub async fn wait(&self, gid: &str, timeout: Duration) -> Result<TxOutcome> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            let o = self.get(gid).await?.outcome();
            if o.is_final() || o.parked.is_some() {
                return Ok(o);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::WaitTimeout {
                    gid: gid.to_owned(),
                    status: o.status,
                    waited,
                });
            }
            tokio::time::sleep(pause.min(timeout - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Operator: retry every unfinished branch of `gid` now (clears parking); `reason` is
    /// recorded in its history.
    pub async fn retry(&self, gid: &str, reason: &str) -> Result<TxView> {
        self.operator(gid, "retry", reason).await
    }

    /// Operator: force-stop `gid` (a saga ends `failed` at once; a 2PC or TCC before its
    /// decision, or a prepared message, is aborted); `reason` is recorded in its history.
    ///
    /// # Errors
    /// [`Error::Rejected`] `wrong_status` after a commit decision (retry instead).
    pub async fn stop(&self, gid: &str, reason: &str) -> Result<TxView> {
        self.operator(gid, "stop", reason).await
    }

    async fn operator(&self, gid: &str, action: &str, reason: &str) -> Result<TxView> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > REASON_BYTES_MAX {
            return Err(Error::Invalid(format!(
                "a reason of 1..={REASON_BYTES_MAX} bytes must say why (it is recorded in the \
                 transaction's history)"
            )));
        }
        let body = serde_json::to_vec(&ReasonRequest {
            reason: reason.to_owned(),
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let path = tx_path(gid, action);
        let answer = self.t.send(hyper::Method::POST, &path, Some(body)).await?;
        match crate::transport::decode::<TxView>(&path, &answer) {
            // The server refuses to stop what has ended; when an earlier try of this very
            // stop got no answer, that try may be what ended it: then this is its answer.
            Err(e) if answer.resent && action == "stop" && e.code() == Some("wrong_status") => {
                let tx = self.get(gid).await?;
                if tx.status == "failed" {
                    Ok(tx)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }
}

/// `/v1/transactions/{gid}[/{action}]`.
fn tx_path(gid: &str, action: &str) -> String {
    let mut p = format!("/v1/transactions/{}", crate::encode_query(gid));
    if !action.is_empty() {
        p.push('/');
        p.push_str(action);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_what_cannot_work() {
        assert!(Client::new("http://127.0.0.1:36789").is_ok());
        assert!(Client::new("https://tandem.example:443/").is_ok());
        for bad in ["127.0.0.1:36789", "ftp://x", "http://", "http://h/v1"] {
            assert!(matches!(Client::new(bad), Err(Error::Invalid(_))), "{bad}");
        }
        assert!(Client::builder("http://h:1")
            .gid_prefix("a b")
            .build()
            .is_err());
    }

    #[test]
    fn generated_gids_are_valid_and_distinct() {
        let c = Client::new("http://127.0.0.1:1").unwrap();
        let (a, b) = (c.new_gid(), c.new_gid());
        assert_ne!(a, b);
        tandem_core::validate_gid(&a).unwrap();
        assert!(a.starts_with("tc-"));
    }
}
