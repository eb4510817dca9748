//! How `tandem tx … --server URL` reaches a running server: a [`tandem_client::Client`]
//! with the CLI's settings (the `TANDEM_AUTH_TOKEN` bearer token, a 30 s request timeout,
//! three tries with backoff when the server does not answer). The request plumbing, the
//! wire types and the error messages — the server could not be reached (and where we
//! tried), or the server's own `{"error":{code,message}}` with its status — are the
//! client crate's, so the CLI and every other Rust caller behave the same.

use std::time::Duration;

use anyhow::Context;
use tandem_client::{Client, RetryPolicy};

/// Longest a single request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the server at `server` (e.g. `http://127.0.0.1:36789`).
pub fn connect(server: &str) -> anyhow::Result<Client> {
    Client::builder(server)
        .token(std::env::var("TANDEM_AUTH_TOKEN").ok())
        .timeout(REQUEST_TIMEOUT)
        .retry(RetryPolicy {
            attempts_max: 3,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
        })
        .build()
        .with_context(|| {
            format!("--server {server:?}: give an http:// URL, e.g. http://127.0.0.1:36789")
        })
}

/// The client's error in the CLI's words: a 401 says what to do about the token.
pub fn explain(e: tandem_client::Error) -> anyhow::Error {
    match &e {
        tandem_client::Error::Rejected { status: 401, .. } => {
            let what = if std::env::var("TANDEM_AUTH_TOKEN").is_ok_and(|t| !t.is_empty()) {
                "the token in TANDEM_AUTH_TOKEN is not the server's"
            } else {
                "the server requires a token: set TANDEM_AUTH_TOKEN to its auth_token"
            };
            anyhow::anyhow!("server answered 401: {what}")
        }
        _ => e.into(),
    }
}
