//! The transaction endpoints of `/api/dtmsvr` over HTTP: each reads DTM's JSON body, calls
//! the wire-independent operation in [`super::service`] (shared with the gRPC API) and
//! renders the result in DTM's HTTP shape.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};

use super::reply::{self, DtmError, DtmResult};
use super::request::{parse_json, RegisterReq, TransReq};
use super::service;
use crate::error::ApiError;
use crate::AppState;

type Body = Result<Bytes, BytesRejection>;

/// The body, or a DTM-shaped 4xx (e.g. 413 over the limit) naming the problem.
pub(crate) fn body(b: Body) -> Result<Bytes, DtmError> {
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

pub async fn prepare(State(s): State<AppState>, b: Body) -> DtmResult {
    service::prepare(&s, &trans(b)?).await?;
    reply::success()
}

pub async fn submit(State(s): State<AppState>, b: Body) -> DtmResult {
    service::submit(&s, &trans(b)?).await?;
    reply::success()
}

pub async fn abort(State(s): State<AppState>, b: Body) -> DtmResult {
    service::abort(&s, &trans(b)?).await?;
    reply::success()
}

pub async fn register_branch(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = RegisterReq::parse(&s.cfg, &body(b)?)?;
    service::register_branch(&s, &req).await?;
    reply::success()
}

pub async fn force_stop(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    service::force_stop(&s, req.gid()?).await?;
    reply::success()
}

pub async fn reset_next_cron_time(State(s): State<AppState>, b: Body) -> DtmResult {
    let req = trans(b)?;
    service::reset_next_cron_time(&s, req.gid()?).await?;
    reply::success()
}

/// `prepareWorkflow`: `{"transaction": {...}, "progresses": [{status, bin_data, branch_id,
/// op}, ...]}` — DTM's shapes (the client reads them as `DtmProgressesReply` JSON).
pub async fn prepare_workflow(State(s): State<AppState>, b: Body) -> DtmResult {
    let tx = service::prepare_workflow(&s, &trans(b)?).await?;
    reply::ok(serde_json::json!({
        "transaction": super::view::transaction(&tx),
        "progresses": super::view::branches(&tx),
        "dtm_result": reply::SUCCESS,
    }))
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
