//! Builders for the transactions a client starts: a saga (sequential or a DAG), a
//! two-phase commit over HTTP participants, and a transactional message (prepare, do the
//! local work, submit). TCC, which the client drives step by step, is in [`crate::tcc`].
//!
//! Every builder names its gid before the first request (the caller's, or a fresh one), so
//! a create that got no answer is resent as the very same request and the server answers
//! it idempotently: the transaction is created once, whatever the network did.

use std::future::Future;

use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::{
    FinishRequest, MsgBranch, MsgRequest, Participant, SagaRequest, SagaStep, TwoPcRequest,
    TxOptions, TxOutcome,
};

/// A payload as JSON (`null` means none); a value that does not serialize is kept as the
/// builder's first error.
pub(crate) fn to_payload(p: impl Serialize, err: &mut Option<Error>) -> Option<Value> {
    match serde_json::to_value(p) {
        Ok(Value::Null) => None,
        Ok(v) => Some(v),
        Err(e) => {
            err.get_or_insert(Error::Invalid(format!("payload: {e}")));
            None
        }
    }
}

/// A saga under construction: [`Client::saga`].
#[derive(Debug)]
#[must_use = "a saga does nothing until submitted"]
pub struct Saga {
    client: Client,
    gid: Option<String>,
    steps: Vec<SagaStep>,
    orders: Vec<(usize, Vec<u16>)>,
    options: TxOptions,
    err: Option<Error>,
}

impl Client {
    /// A saga: [`Saga::step`]s run in order (or as a DAG with [`Saga::after`]); when one
    /// fails, the steps that ran are compensated in reverse.
    pub fn saga(&self) -> Saga {
        Saga {
            client: self.clone(),
            gid: None,
            steps: Vec::new(),
            orders: Vec::new(),
            options: TxOptions::default(),
            err: None,
        }
    }

    /// A two-phase commit over HTTP participants.
    pub fn two_pc(&self) -> TwoPc {
        TwoPc {
            client: self.clone(),
            gid: None,
            participants: Vec::new(),
            options: TxOptions::default(),
            err: None,
        }
    }

    /// A transactional message.
    pub fn msg(&self) -> Msg {
        Msg {
            client: self.clone(),
            gid: None,
            branches: Vec::new(),
            query_prepared: None,
            options: TxOptions::default(),
            err: None,
        }
    }
}

impl Saga {
    /// Names the saga (default: a fresh gid).
    pub fn gid(mut self, gid: impl Into<String>) -> Self {
        self.gid = Some(gid.into());
        self
    }

    /// Adds a step: `action` does it, `compensate` undoes it; both get `payload` as their
    /// JSON body (`()` or `Value::Null` for none). Steps are numbered from 0.
    pub fn step(mut self, action: &str, compensate: &str, payload: impl Serialize) -> Self {
        let payload = to_payload(payload, &mut self.err);
        self.steps.push(SagaStep {
            action: action.to_owned(),
            compensate: compensate.to_owned(),
            payload,
        });
        self
    }

    /// DAG: step `step` starts only after every step in `deps` succeeded (0-based). Giving
    /// any order makes the saga concurrent; steps without one start at once.
    pub fn after(mut self, step: usize, deps: &[u16]) -> Self {
        self.orders.push((step, deps.to_vec()));
        self
    }

    /// Per-transaction settings (retries, timeouts, branch headers, ...).
    pub fn options(mut self, options: TxOptions) -> Self {
        self.options = options;
        self
    }

    fn request(self, wait_result: bool) -> Result<(Client, SagaRequest)> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let mut options = self.options;
        if !self.orders.is_empty() {
            let mut orders = vec![Vec::new(); self.steps.len()];
            for (step, deps) in self.orders {
                let slot = orders.get_mut(step).ok_or_else(|| {
                    Error::Invalid(format!(
                        "after({step}, ..): there are only {} steps",
                        self.steps.len()
                    ))
                })?;
                slot.extend(deps);
            }
            options.orders = Some(orders);
        }
        let gid = self.client.gid_or_new(self.gid)?;
        let req = SagaRequest {
            gid,
            steps: self.steps,
            options,
            wait_result,
        };
        Ok((self.client, req))
    }

    /// Submits the saga; answers once it is durably accepted.
    pub async fn submit(self) -> Result<TxOutcome> {
        let (c, req) = self.request(false)?;
        c.post("/v1/sagas", &req).await
    }

    /// Submits the saga and answers once it has ended (or was parked). The request stays
    /// open that long: keep the client's timeout above the saga's duration, or use
    /// [`Saga::submit`] and [`Client::wait`].
    pub async fn submit_and_wait(self) -> Result<TxOutcome> {
        let (c, req) = self.request(true)?;
        let o = c.post("/v1/sagas", &req).await?;
        until_ended(&c, o).await
    }
}

/// A two-phase commit under construction: [`Client::two_pc`].
#[derive(Debug)]
#[must_use = "a 2PC does nothing until submitted"]
pub struct TwoPc {
    client: Client,
    gid: Option<String>,
    participants: Vec<Participant>,
    options: TxOptions,
    err: Option<Error>,
}

impl TwoPc {
    /// Names the transaction (default: a fresh gid).
    pub fn gid(mut self, gid: impl Into<String>) -> Self {
        self.gid = Some(gid.into());
        self
    }

    /// Adds a participant: its three URLs and the JSON body of every call.
    pub fn participant(
        mut self,
        prepare: &str,
        commit: &str,
        rollback: &str,
        payload: impl Serialize,
    ) -> Self {
        let payload = to_payload(payload, &mut self.err);
        self.participants.push(Participant {
            prepare: prepare.to_owned(),
            commit: commit.to_owned(),
            rollback: rollback.to_owned(),
            payload,
        });
        self
    }

    /// Per-transaction settings.
    pub fn options(mut self, options: TxOptions) -> Self {
        self.options = options;
        self
    }

    async fn send(self, wait_result: bool) -> Result<TxOutcome> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let req = TwoPcRequest {
            gid: self.client.gid_or_new(self.gid)?,
            participants: self.participants,
            options: self.options,
            wait_result,
        };
        let o = self.client.post("/v1/2pc", &req).await?;
        if wait_result {
            return until_ended(&self.client, o).await;
        }
        Ok(o)
    }

    /// Starts it; answers once it is durably accepted.
    pub async fn submit(self) -> Result<TxOutcome> {
        self.send(false).await
    }

    /// Starts it and answers once it has ended (or was parked).
    pub async fn submit_and_wait(self) -> Result<TxOutcome> {
        self.send(true).await
    }
}

/// A transactional message under construction: [`Client::msg`].
#[derive(Debug)]
#[must_use = "a message does nothing until prepared"]
pub struct Msg {
    client: Client,
    gid: Option<String>,
    branches: Vec<MsgBranch>,
    query_prepared: Option<String>,
    options: TxOptions,
    err: Option<Error>,
}

/// A prepared message: submit it once the local transaction committed.
#[derive(Debug, Clone)]
pub struct PreparedMsg {
    client: Client,
    gid: String,
}

/// Why [`Msg::do_and_submit`] did not submit.
#[derive(Debug, thiserror::Error)]
pub enum DoAndSubmitError<E> {
    /// The local work failed; the message stays prepared until the coordinator's check
    /// (`query_prepared`) finds the local transaction rolled back and drops it.
    #[error("local transaction: {0}")]
    Local(E),
    /// Preparing or submitting failed (see [`Error::retryable`]; a submit is safe to resend).
    #[error(transparent)]
    Client(#[from] Error),
}

impl Msg {
    /// Names the message (default: a fresh gid).
    pub fn gid(mut self, gid: impl Into<String>) -> Self {
        self.gid = Some(gid.into());
        self
    }

    /// Adds a delivery: `url` is called (op `action`) with `payload` after submit.
    pub fn branch(mut self, url: &str, payload: impl Serialize) -> Self {
        let payload = to_payload(payload, &mut self.err);
        self.branches.push(MsgBranch {
            url: url.to_owned(),
            payload,
        });
        self
    }

    /// The sender's check, asked when the message stays prepared too long: 2xx = deliver,
    /// 409/`FAILURE` = drop, 425/`ONGOING` = ask again. Answer it with
    /// `tandem_participant::barrier::*::query_prepared`.
    pub fn query_prepared(mut self, url: &str) -> Self {
        self.query_prepared = Some(url.to_owned());
        self
    }

    /// Per-transaction settings.
    pub fn options(mut self, options: TxOptions) -> Self {
        self.options = options;
        self
    }

    /// Prepares the message (durably); nothing is delivered before [`PreparedMsg::submit`].
    pub async fn prepare(self) -> Result<PreparedMsg> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let req = MsgRequest {
            gid: self.client.gid_or_new(self.gid)?,
            branches: self.branches,
            query_prepared: self.query_prepared,
            options: self.options,
        };
        let o: TxOutcome = self.client.post("/v1/msgs", &req).await?;
        Ok(PreparedMsg {
            client: self.client,
            gid: o.gid,
        })
    }

    /// DTM's `DoAndSubmit`: prepares the message, runs `local(gid)` (the local transaction,
    /// which should pass the barrier with `Barrier::for_msg(gid)`), and submits when it
    /// succeeded.
    ///
    /// # Errors
    /// [`DoAndSubmitError::Local`] with the local work's error (the message is then left to
    /// the coordinator's check), or [`DoAndSubmitError::Client`].
    pub async fn do_and_submit<F, Fut, E>(self, local: F) -> Result<TxOutcome, DoAndSubmitError<E>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let prepared = self.prepare().await?;
        local(prepared.gid.clone())
            .await
            .map_err(DoAndSubmitError::Local)?;
        Ok(prepared.submit(false).await?)
    }
}

impl PreparedMsg {
    /// The message's gid.
    pub fn gid(&self) -> &str {
        &self.gid
    }

    /// Delivers it; with `wait_result`, answers once every delivery succeeded.
    pub async fn submit(&self, wait_result: bool) -> Result<TxOutcome> {
        finish(&self.client, "msgs", &self.gid, "submit", wait_result).await
    }
}

/// `POST /v1/{kind}/{gid}/{what}` (submit or abort). The server answers a repeat with where
/// the transaction is, so a resend after a lost answer is safe.
pub(crate) async fn finish(
    client: &Client,
    kind: &str,
    gid: &str,
    what: &str,
    wait_result: bool,
) -> Result<TxOutcome> {
    let path = format!("/v1/{kind}/{}/{what}", crate::encode_query(gid));
    let o: TxOutcome = client.post(&path, &FinishRequest { wait_result }).await?;
    if wait_result {
        return until_ended(client, o).await;
    }
    Ok(o)
}

/// `o`, or — when a `wait_result` answer came before the end (the server bounds how long it
/// holds a request and then answers 202 with where the transaction is) — the outcome once
/// it has ended or was parked, polled with [`Client::wait`].
async fn until_ended(client: &Client, o: TxOutcome) -> Result<TxOutcome> {
    if o.is_final() || o.parked.is_some() {
        return Ok(o);
    }
    client.wait(&o.gid, client.t.timeout).await
}
