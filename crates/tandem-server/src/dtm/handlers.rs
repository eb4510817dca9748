//! The transaction endpoints of `/api/dtmsvr`: each turns a DTM request into a
//! [`Coordinator`](tandem_engine::Coordinator) call and its result into DTM's answer.
//!
//! Invariant: an answer of 200 to `prepare`, `submit`, `registerBranch`, `abort` is given
//! only after the coordinator made the change durable (the engine's `begin`/`send` resolve
//! after the log write). A resubmitted gid with the same content is answered from the
//! stored transaction and never starts a second one.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use tandem_core::{Event, TxKind, TxStatus};
use tandem_engine::{EngineError, Outcome, Wait};

use super::reply::{self, DtmError, DtmResult};
use super::request::{parse_json, DtmType, RegisterReq, TransReq};
use crate::error::ApiError;
use crate::AppState;

type Body = Result<Bytes, BytesRejection>;

/// The body, or a DTM-shaped 4xx (e.g. 413 over the limit) naming the problem.
fn body(b: Body) -> Result<Bytes, DtmError> {
    b.map_err(|r| {
        DtmError(ApiError::new(
            r.status(),
            "invalid_body",
            format!("cannot read the request body: {}", r.body_text()),
        ))
    })
}

fn trans(b: Body) -> Result<TransReq, DtmError> {
    Ok(parse_json(&body(b)?)?)
}

fn not_found(gid: &str) -> DtmError {
    DtmError(ApiError::not_found(format!("no transaction {gid}")))
}

/// What a caller waiting for the result hears.
fn outcome_answer(o: &Outcome, expected: TxStatus) -> DtmResult {
    if o.status == expected {
        return reply::success();
    }
    if o.status.is_final() {
        let why = o
            .fail_reason
            .clone()
            .unwrap_or_else(|| format!("transaction is {}", o.status.as_str()));
        return Err(DtmError::failure("rolled_back", why));
    }
    match &o.parked {
        Some(r) => Err(DtmError::ongoing(format!("parked for an operator: {r}"))),
        None => Err(DtmError::ongoing(format!(
            "transaction is still {}",
            o.status.as_str()
        ))),
    }
}

/// Waits (bounded by `wait_result_max_ms`) for `gid` to end.
async fn wait_for(s: &AppState, gid: &str, expected: TxStatus) -> DtmResult {
    match s.coord.wait_within(gid, s.cfg.wait_result_max).await? {
        Some(o) => outcome_answer(&o, expected),
        None => Err(DtmError::ongoing(
            "not finished within the wait; it goes on in the background",
        )),
    }
}

pub async fn prepare(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    if req.dtm_type()? == DtmType::Saga {
        return Err(ApiError::bad_request(
            "invalid_trans_type",
            "a saga is submitted directly, not prepared",
        )
        .into());
    }
    let tx = req.to_transaction(&s.cfg, s.coord.limits(), s.coord.now(), false)?;
    let o = s
        .coord
        .begin(crate::trace::adopt(tx), Wait::Accepted)
        .await?;
    if o.status != TxStatus::Prepared {
        return Err(DtmError::failure(
            "wrong_status",
            format!("current status '{}', cannot prepare", o.status.as_str()),
        ));
    }
    reply::success()
}

pub async fn submit(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    let ty = req.dtm_type()?;
    let gid = req.gid()?.to_string();
    let wait = req.wait_result();
    match ty {
        DtmType::Saga => {
            let tx = req.to_transaction(&s.cfg, s.coord.limits(), s.coord.now(), false)?;
            if !wait {
                s.coord
                    .begin(crate::trace::adopt(tx), Wait::Accepted)
                    .await?;
                return reply::success();
            }
            let bound = Wait::OutcomeWithin(s.cfg.wait_result_max);
            let o = s.coord.begin(crate::trace::adopt(tx), bound).await?;
            return outcome_answer(&o, TxStatus::Succeeded);
        }
        DtmType::Msg => match s.coord.get(&gid).await? {
            Some(old) if old.kind != TxKind::Msg => {
                return Err(EngineError::GidExists(gid).into());
            }
            Some(_) => s.coord.send(&gid, Event::Submit).await?,
            None => {
                // Submitted without prepare: no check is needed, deliver at once.
                let tx = req.to_transaction(&s.cfg, s.coord.limits(), s.coord.now(), true)?;
                s.coord
                    .begin(crate::trace::adopt(tx), Wait::Accepted)
                    .await?;
            }
        },
        DtmType::Tcc | DtmType::Xa => {
            s.coord
                .send(&gid, Event::Submit)
                .await
                .map_err(|e| match e {
                    EngineError::NotFound(g) => not_found(&g),
                    e => e.into(),
                })?;
        }
    }
    if wait {
        return wait_for(&s, &gid, TxStatus::Succeeded).await;
    }
    reply::success()
}

pub async fn abort(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    let gid = req.gid()?.to_string();
    let tx = s.coord.get(&gid).await?.ok_or_else(|| not_found(&gid))?;
    match (tx.kind, tx.status) {
        (TxKind::Msg, TxStatus::Prepared) => {
            s.coord.stop(&gid, "aborted by the sender").await?;
        }
        (TxKind::Msg, TxStatus::Failed) => {}
        (TxKind::Tcc, _) => s.coord.send(&gid, Event::Abort).await?,
        (kind, status) => {
            return Err(DtmError::failure(
                "wrong_status",
                format!(
                    "trans type '{}' current status '{}', cannot abort",
                    kind.as_str(),
                    status.as_str()
                ),
            ))
        }
    }
    if req.wait_result() {
        return wait_for(&s, &gid, TxStatus::Failed).await;
    }
    reply::success()
}

pub async fn register_branch(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = RegisterReq::parse(&s.cfg, &body(b)?)?;
    let missing = || {
        DtmError::failure(
            "not_found",
            format!("no trans with gid: {} status: prepared found", req.gid),
        )
    };
    let tx = s.coord.get(&req.gid).await?.ok_or_else(missing)?;
    if tx.kind != TxKind::Tcc {
        return Err(DtmError::failure(
            "wrong_kind",
            format!(
                "{} is a {} transaction; registerBranch is for tcc and xa",
                req.gid,
                tx.kind.as_str()
            ),
        ));
    }
    let event = tandem_core::spec::registration(
        &tx,
        &req.branch_id,
        req.ops.clone(),
        req.data.clone(),
        s.coord.limits(),
    )?;
    s.coord.send(&req.gid, event).await.map_err(|e| match e {
        EngineError::NotFound(_) => missing(),
        e => e.into(),
    })?;
    let _ = req.ty;
    reply::success()
}

pub async fn force_stop(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    let gid = req.gid()?.to_string();
    let tx = s.coord.get(&gid).await?.ok_or_else(|| not_found(&gid))?;
    if tx.is_final() {
        return Err(DtmError::failure(
            "wrong_status",
            format!(
                "global transaction force stop error. status: {}",
                tx.status.as_str()
            ),
        ));
    }
    s.coord.stop(&gid, "forceStop (DTM API)").await?;
    reply::success()
}

pub async fn reset_next_cron_time(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    let gid = req.gid()?.to_string();
    match s.coord.retry(&gid, "resetNextCronTime (DTM API)").await {
        // DTM resets the time of an ended transaction too; nothing is due, so that is a no-op.
        Ok(()) | Err(EngineError::Refused(tandem_core::ApplyError::Ended { .. })) => {
            reply::success()
        }
        Err(EngineError::NotFound(g)) => Err(not_found(&g)),
        Err(e) => Err(e.into()),
    }
}

pub async fn query(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> DtmResult {
    let gid = q.get("gid").map(String::as_str).unwrap_or("");
    if gid.is_empty() {
        return Err(ApiError::bad_request("invalid_gid", "no gid specified").into());
    }
    let tx = s.coord.get(gid).await?;
    let (t, b) = match &tx {
        Some(tx) => (super::view::transaction(tx), super::view::branches(tx)),
        None => (serde_json::Value::Null, Vec::new()),
    };
    reply::ok(serde_json::json!({ "transaction": t, "branches": b }))
}
