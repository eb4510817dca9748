//! # tandem-client: drive Tandem from a Rust application
//!
//! A typed async client for the native `/v1` API of `tandem serve`: start sagas (in order
//! or as a DAG), two-phase commits over HTTP participants, TCC transactions (with the
//! register-then-try helper) and transactional messages (with query-prepared and
//! do-and-submit); then wait for, look up, list, retry or stop them.
//!
//! **Safe to resend.** Every create names its gid before the first request (yours or a
//! fresh one), so when a node does not answer the client sends the same request again —
//! with exponential backoff and jitter, to the next node if there are several — and the
//! server answers it idempotently. Errors say whose mistake they were and whether sending
//! again can help ([`Error::fault`], [`Error::retryable`]).
//!
//! A complete participant (one account service, on the barrier) and the saga that calls
//! it — about twenty lines:
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use axum::{extract::State, routing::post, Json, Router};
//! use serde_json::{json, Value};
//! use tandem_participant::axum::{BranchCall, BranchError, Reply};
//!
//! type Db = Arc<Mutex<rusqlite::Connection>>;
//! async fn debit(call: BranchCall, State(db): State<Db>, Json(t): Json<Value>) -> Reply {
//!     let amount = t["amount"].as_i64().unwrap_or(0);
//!     let delta = if call.op() == "compensate" { amount } else { -amount };
//!     call.sqlite(&db, move |tx| match tx.execute(
//!         "UPDATE account SET balance = balance + ?1 WHERE id = 1 AND balance + ?1 >= 0", [delta])? {
//!         0 => Err(BranchError::failure("insufficient funds")),
//!         _ => Ok(()),
//!     }).await
//! }
//!
//! # async fn demo(db: Db) -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route("/debit", post(debit)).with_state(db);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//! let tandem = tandem_client::Client::builder("http://127.0.0.1:36789")
//!     .token(std::env::var("TANDEM_AUTH_TOKEN").ok())
//!     .build()?;
//! let out = tandem.saga()
//!     .step("http://127.0.0.1:8081/debit", "http://127.0.0.1:8081/debit", json!({"amount": 30}))
//!     .step("http://bank-b/credit", "http://bank-b/undo-credit", json!({"amount": 30}))
//!     .submit_and_wait()
//!     .await?;
//! println!("{} {}", out.gid, out.status); // succeed, or failed with both steps undone
//! # Ok(()) }
//! ```
//!
//! TCC, with the register-then-try helper: submit when every try succeeded, else abort.
//!
//! ```no_run
//! # async fn demo(tandem: tandem_client::Client) -> Result<(), tandem_client::Error> {
//! use serde_json::json;
//! tandem
//!     .tcc_run(None, Default::default(), true, |tcc| async move {
//!         tcc.call_try("stock", "http://stock/try", "http://stock/confirm",
//!             "http://stock/cancel", json!({"sku": "A1", "n": 1})).await
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The participant's side — the extractor, protocol answers and the barrier wrapper for
//! axum handlers — is `tandem-participant` with its `axum` feature; prove a participant
//! safe to retry with `tandem check participant`.

mod client;
mod error;
mod protocols;
mod tcc;
mod transport;
pub mod wire;

pub use client::{Client, ClientBuilder, CONNECT_TIMEOUT, REASON_BYTES_MAX, REQUEST_TIMEOUT};
pub use error::{Error, Fault, Result};
pub use protocols::{DoAndSubmitError, Msg, PreparedMsg, Saga, TwoPc};
pub use tcc::{Tcc, BRANCH_ID_LEN_MAX};
pub use transport::{RetryPolicy, ANSWER_BYTES_MAX};
pub use wire::{ListFilter, Stats, TxOptions, TxOutcome, TxPage, TxSummary, TxView};

/// How a participant's answer reads under DTM's conventions (which Tandem follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchAnswer {
    /// 2xx.
    Success,
    /// 409, or a body containing `FAILURE`: a business refusal, final.
    Failure,
    /// 425, or a body containing `ONGOING`: not yet, ask again.
    Ongoing,
    /// Anything else: unknown, retry.
    Error,
}

/// Classifies a participant's answer as the coordinator does (`ONGOING` before `FAILURE`,
/// as DTM checks them).
pub fn classify(status: u16, body: &[u8]) -> BranchAnswer {
    let text = String::from_utf8_lossy(body);
    if status == 425 || text.contains("ONGOING") {
        BranchAnswer::Ongoing
    } else if status == 409 || text.contains("FAILURE") {
        BranchAnswer::Failure
    } else if (200..300).contains(&status) {
        BranchAnswer::Success
    } else {
        BranchAnswer::Error
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for paths and query
/// values).
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_classify_like_the_coordinator() {
        assert_eq!(classify(200, b"{}"), BranchAnswer::Success);
        assert_eq!(
            classify(200, br#"{"dtm_result":"FAILURE"}"#),
            BranchAnswer::Failure
        );
        assert_eq!(classify(409, b""), BranchAnswer::Failure);
        assert_eq!(classify(425, b"FAILURE"), BranchAnswer::Ongoing);
        assert_eq!(classify(500, b""), BranchAnswer::Error);
        assert_eq!(encode_query("a b/c"), "a%20b%2Fc");
    }
}
