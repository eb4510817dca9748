//! TCC, driven by the client: begin, then for each branch register its confirm/cancel and
//! call its try (the client calls the try itself, as DTM's TCC does), then submit
//! (confirm everything) or abort (cancel everything).
//!
//! ```text
//!  begin ──► register b1 ──► try b1 ──► register b2 ──► try b2 ──► submit ─► confirm all
//!                               │ FAILURE / no answer          │
//!                               └──────────────► abort ◄───────┘ ─► cancel all
//! ```
//!
//! A branch is registered *before* its try is called, so a try that ran (or may have run)
//! is always cancelled on abort; the participant's barrier makes a cancel whose try never
//! ran a no-op, and refuses a try that arrives after its cancel. [`Client::tcc_run`] does
//! all of it around a closure.

use std::future::Future;

use bytes::Bytes;
use serde::Serialize;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocols::{finish, to_payload};
use crate::wire::{TccBeginRequest, TccBranchRequest, TxOptions, TxOutcome};

/// Longest TCC branch id, in bytes (the server's limit).
pub const BRANCH_ID_LEN_MAX: usize = 64;

/// A TCC transaction that has begun: [`Client::tcc`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tcc {
    client: Client,
    gid: String,
}

impl Client {
    /// Begins a TCC transaction named `gid` (or a fresh one) with `options`.
    pub async fn tcc(&self, gid: Option<String>, options: TxOptions) -> Result<Tcc> {
        let req = TccBeginRequest {
            gid: self.gid_or_new(gid)?,
            options,
        };
        let o: TxOutcome = self.post("/v1/tcc", &req).await?;
        Ok(Tcc {
            client: self.clone(),
            gid: o.gid,
        })
    }

    /// DTM's `TccGlobalTransaction`: begins a TCC transaction, runs `body` with it (register
    /// branches and call their tries with [`Tcc::call_try`]), then submits when `body`
    /// succeeded and aborts when it failed. With `wait_result` the answer comes once the
    /// transaction ended.
    ///
    /// # Errors
    /// `body`'s error (after the abort was sent), or the client's.
    pub async fn tcc_run<F, Fut>(
        &self,
        gid: Option<String>,
        options: TxOptions,
        wait_result: bool,
        body: F,
    ) -> Result<TxOutcome>
    where
        F: FnOnce(Tcc) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let tcc = self.tcc(gid, options).await?;
        match body(tcc.clone()).await {
            Ok(()) => tcc.submit(wait_result).await,
            Err(e) => {
                if let Err(abort) = tcc.abort(wait_result).await {
                    tracing::warn!(gid = %tcc.gid, error = %abort, "abort after a failed body");
                }
                Err(e)
            }
        }
    }
}

impl Tcc {
    /// The transaction's gid.
    pub fn gid(&self) -> &str {
        &self.gid
    }

    /// Registers branch `branch_id` (`[A-Za-z0-9-_.]`, 1..=64 bytes): `confirm` and `cancel`
    /// are called with `payload` after submit or abort. Idempotent.
    pub async fn register(
        &self,
        branch_id: &str,
        confirm: &str,
        cancel: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        let mut err = None;
        let payload = to_payload(payload, &mut err);
        if let Some(e) = err {
            return Err(e);
        }
        let req = TccBranchRequest {
            branch_id: branch_id.to_owned(),
            confirm: confirm.to_owned(),
            cancel: cancel.to_owned(),
            payload,
        };
        let path = format!("/v1/tcc/{}/branches", crate::encode_query(&self.gid));
        let _: TxOutcome = self.client.post(&path, &req).await?;
        Ok(())
    }

    /// Registers branch `branch_id`, then calls its `try_url` the way the coordinator calls
    /// branches (POST, JSON `payload`, query `gid`, `trans_type=tcc`, `branch_id`,
    /// `op=try`), resending when the participant does not answer or answers "not yet"
    /// (a try behind a barrier is safe to repeat).
    ///
    /// # Errors
    /// [`Error::Participant`] when the try answered FAILURE (409) or never succeeded: abort.
    pub async fn call_try(
        &self,
        branch_id: &str,
        try_url: &str,
        confirm: &str,
        cancel: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        let mut err = None;
        let body = to_payload(payload, &mut err);
        if let Some(e) = err {
            return Err(e);
        }
        self.register(branch_id, confirm, cancel, &body).await?;
        let sep = if try_url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{try_url}{sep}gid={}&trans_type=tcc&branch_id={}&op=try",
            crate::encode_query(&self.gid),
            crate::encode_query(branch_id)
        );
        let body = body.map(|v| Bytes::from(v.to_string()));
        let t = &self.client.t;
        let mut tries = 0;
        loop {
            tries += 1;
            let err = match t.participant(&url, body.clone()).await {
                Ok(a) => match crate::classify(a.status, &a.body) {
                    crate::BranchAnswer::Success => return Ok(()),
                    crate::BranchAnswer::Failure => {
                        return Err(Error::Participant {
                            url: try_url.to_owned(),
                            status: Some(a.status),
                            failure: true,
                            detail: snippet(&a.body),
                        })
                    }
                    crate::BranchAnswer::Ongoing | crate::BranchAnswer::Error => {
                        Error::Participant {
                            url: try_url.to_owned(),
                            status: Some(a.status),
                            failure: false,
                            detail: snippet(&a.body),
                        }
                    }
                },
                Err(e) => Error::Participant {
                    url: try_url.to_owned(),
                    status: None,
                    failure: false,
                    detail: e.to_string(),
                },
            };
            if tries >= t.retry.attempts_max {
                return Err(err);
            }
            tokio::time::sleep(t.retry.delay(tries)).await;
        }
    }

    /// Confirms every registered branch.
    pub async fn submit(&self, wait_result: bool) -> Result<TxOutcome> {
        finish(&self.client, "tcc", &self.gid, "submit", wait_result).await
    }

    /// Cancels every registered branch.
    pub async fn abort(&self, wait_result: bool) -> Result<TxOutcome> {
        finish(&self.client, "tcc", &self.gid, "abort", wait_result).await
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect()
}
