//! `/v1` endpoints that start and drive transactions: saga, 2PC, TCC (begin, register,
//! submit, abort) and transactional messages (prepare, submit).
//!
//! Each answers once the request's effect is durable (the engine acknowledges only after
//! its log record is synced); with `wait_result` it answers when the transaction has ended
//! or was parked — or, at the latest after the server's `wait_result_max_ms`, with 202 and
//! where the transaction is (its branches, attempts and last error), so a caller never
//! waits without an answer while a branch's service is down and its calls are retried. A
//! create with a gid that exists is idempotent when the content is the same and a 409
//! `gid_exists` otherwise.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tandem_core::{Event, Transaction, TxKind};
use tandem_engine::{Outcome, Wait};

use super::build;
use super::extract::{OptJson, V1Json, V1Path};
use super::model::{
    FinishRequest, MsgRequest, SagaRequest, TccBeginRequest, TccBranchRequest, TwoPcRequest,
};
use super::view::{ErrorBody, TxOutcome, TxPending};
use crate::error::ApiError;
use crate::AppState;

/// 200 with where the transaction is (ended or parked, with `wait_result`), or 202 when a
/// `wait_result` request's wait ran out first.
pub enum Answered {
    Now(TxOutcome),
    StillRunning(Box<TxPending>),
}

impl IntoResponse for Answered {
    fn into_response(self) -> Response {
        match self {
            Answered::Now(o) => Json(o).into_response(),
            Answered::StillRunning(p) => (StatusCode::ACCEPTED, Json(p)).into_response(),
        }
    }
}

type Answer = Result<Answered, ApiError>;

/// The answer to a `wait_result` request that waited since `since`: the outcome `o` when
/// the transaction ended or was parked, else 202 with its current view.
async fn waited(
    state: &AppState,
    gid: &str,
    kind: TxKind,
    o: Option<Outcome>,
    since: Instant,
) -> Answer {
    if let Some(o) = o.filter(|o| o.status.is_final() || o.parked.is_some()) {
        return Ok(Answered::Now(TxOutcome::of(kind, &o)));
    }
    let tx = load(state, gid, Some(kind)).await?;
    if tx.is_final() || tx.parked.is_some() {
        // It ended in the moment between the wait and the read.
        return Ok(Answered::Now(TxOutcome::of_tx(&tx)));
    }
    Ok(Answered::StillRunning(Box::new(TxPending::of(
        &tx,
        since.elapsed(),
    ))))
}

async fn begin(state: &AppState, tx: Transaction, wait_result: bool) -> Answer {
    let kind = tx.kind;
    if !wait_result {
        let outcome = state
            .coord
            .begin(crate::trace::adopt(tx), Wait::Accepted)
            .await?;
        return Ok(Answered::Now(TxOutcome::of(kind, &outcome)));
    }
    let since = Instant::now();
    let bound = Wait::OutcomeWithin(state.cfg.wait_result_max);
    let outcome = state.coord.begin(crate::trace::adopt(tx), bound).await?;
    let gid = outcome.gid.clone();
    waited(state, &gid, kind, Some(outcome), since).await
}

/// The transaction `gid`, which must be of `kind`.
pub(super) async fn load(
    state: &AppState,
    gid: &str,
    kind: Option<TxKind>,
) -> Result<Transaction, ApiError> {
    let tx = state
        .coord
        .get(gid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no transaction {gid:?}")))?;
    match kind {
        Some(k) if k != tx.kind => Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_type",
            format!(
                "transaction {gid:?} is a {}; this endpoint is for {}",
                tx.kind.as_str(),
                k.as_str()
            ),
        )),
        _ => Ok(tx),
    }
}

/// Sends `event` to `gid` (of `kind`) and answers where it is then (or, with
/// `wait_result`, where it ended).
async fn finish(state: &AppState, gid: &str, kind: TxKind, event: Event, wait: bool) -> Answer {
    load(state, gid, Some(kind)).await?;
    let since = Instant::now();
    state.coord.send(gid, event).await?;
    if wait {
        let bound = state.cfg.wait_result_max.saturating_sub(since.elapsed());
        let o = state.coord.wait_within(gid, bound).await?;
        return waited(state, gid, kind, o, since).await;
    }
    let tx = load(state, gid, Some(kind)).await?;
    Ok(Answered::Now(TxOutcome::of_tx(&tx)))
}

/// Submit a saga.
#[utoipa::path(post, path = "/v1/sagas", tag = "saga", request_body = SagaRequest,
    responses(
        (status = 200, description = "Accepted (or ended, with wait_result)", body = TxOutcome),
        (status = 202, description = "wait_result: not ended within wait_result_max_ms; where it is now", body = TxPending),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The gid exists with different content", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 503, description = "Busy: retry after Retry-After seconds", body = ErrorBody)))]
pub async fn create_saga(
    State(state): State<AppState>,
    V1Json(req): V1Json<SagaRequest>,
) -> Answer {
    let wait = req.wait_result;
    let tx = build::saga(&state, req)?;
    begin(&state, tx, wait).await
}

/// Run a two-phase commit over HTTP participants.
#[utoipa::path(post, path = "/v1/2pc", tag = "2pc", request_body = TwoPcRequest,
    responses(
        (status = 200, description = "Accepted (or ended, with wait_result)", body = TxOutcome),
        (status = 202, description = "wait_result: not ended within wait_result_max_ms; where it is now", body = TxPending),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The gid exists with different content", body = ErrorBody),
        (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn create_two_pc(
    State(state): State<AppState>,
    V1Json(req): V1Json<TwoPcRequest>,
) -> Answer {
    let wait = req.wait_result;
    let tx = build::two_pc(&state, req)?;
    begin(&state, tx, wait).await
}

/// Begin a TCC transaction (the body may be empty).
#[utoipa::path(post, path = "/v1/tcc", tag = "tcc", request_body = Option<TccBeginRequest>,
    responses(
        (status = 200, description = "Prepared", body = TxOutcome),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The gid exists with different content", body = ErrorBody)))]
pub async fn create_tcc(
    State(state): State<AppState>,
    OptJson(req): OptJson<TccBeginRequest>,
) -> Answer {
    let tx = build::tcc(&state, req)?;
    begin(&state, tx, false).await
}

/// Register a TCC branch (before calling its try).
#[utoipa::path(post, path = "/v1/tcc/{gid}/branches", tag = "tcc", request_body = TccBranchRequest,
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "Registered (durably)", body = TxOutcome),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such transaction", body = ErrorBody),
        (status = 409, description = "Not a TCC (`wrong_type`), no longer prepared (`wrong_status`), or the branch exists with other content (`branch_conflict`)", body = ErrorBody)))]
pub async fn register_tcc_branch(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    V1Json(req): V1Json<TccBranchRequest>,
) -> Answer {
    let tx = load(&state, &gid, Some(TxKind::Tcc)).await?;
    let event = build::tcc_branch(&state, &tx, req)?;
    state.coord.send(&gid, event).await?;
    let tx = load(&state, &gid, Some(TxKind::Tcc)).await?;
    Ok(Answered::Now(TxOutcome::of_tx(&tx)))
}

/// Submit a TCC transaction: confirm every registered branch.
#[utoipa::path(post, path = "/v1/tcc/{gid}/submit", tag = "tcc", request_body = Option<FinishRequest>,
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "Submitted (or ended, with wait_result)", body = TxOutcome),
        (status = 202, description = "wait_result: not ended within wait_result_max_ms; where it is now", body = TxPending),
        (status = 404, description = "No such transaction", body = ErrorBody),
        (status = 409, description = "Not a TCC, or already aborting/failed", body = ErrorBody)))]
pub async fn submit_tcc(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    OptJson(req): OptJson<FinishRequest>,
) -> Answer {
    finish(&state, &gid, TxKind::Tcc, Event::Submit, req.wait_result).await
}

/// Abort a TCC transaction: cancel every registered branch.
#[utoipa::path(post, path = "/v1/tcc/{gid}/abort", tag = "tcc", request_body = Option<FinishRequest>,
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "Aborting (or ended, with wait_result)", body = TxOutcome),
        (status = 202, description = "wait_result: not ended within wait_result_max_ms; where it is now", body = TxPending),
        (status = 404, description = "No such transaction", body = ErrorBody),
        (status = 409, description = "Not a TCC, or already submitted/succeeded", body = ErrorBody)))]
pub async fn abort_tcc(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    OptJson(req): OptJson<FinishRequest>,
) -> Answer {
    finish(&state, &gid, TxKind::Tcc, Event::Abort, req.wait_result).await
}

/// Prepare a transactional message.
#[utoipa::path(post, path = "/v1/msgs", tag = "msg", request_body = MsgRequest,
    responses(
        (status = 200, description = "Prepared", body = TxOutcome),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The gid exists with different content", body = ErrorBody)))]
pub async fn create_msg(State(state): State<AppState>, V1Json(req): V1Json<MsgRequest>) -> Answer {
    let tx = build::msg(&state, req)?;
    begin(&state, tx, false).await
}

/// Submit a prepared message: deliver it to every branch.
#[utoipa::path(post, path = "/v1/msgs/{gid}/submit", tag = "msg", request_body = Option<FinishRequest>,
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "Submitted (or delivered, with wait_result)", body = TxOutcome),
        (status = 202, description = "wait_result: not delivered within wait_result_max_ms; where it is now", body = TxPending),
        (status = 404, description = "No such transaction", body = ErrorBody),
        (status = 409, description = "Not a message, or already failed", body = ErrorBody)))]
pub async fn submit_msg(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    OptJson(req): OptJson<FinishRequest>,
) -> Answer {
    finish(&state, &gid, TxKind::Msg, Event::Submit, req.wait_result).await
}
