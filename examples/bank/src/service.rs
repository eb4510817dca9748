//! A bank as an HTTP service (axum) on `tandem_participant::axum`: the branch endpoints
//! the coordinator and the checker call, answered in the coordinator's language
//! ([`Reply`]: 200 SUCCESS, 409 FAILURE, 500 = call again).
//!
//! ```text
//!  POST /saga/{debit|undo-debit|credit|undo-credit}       barrier (BranchCall::postgres/mysql)
//!  POST /tcc/{try-,confirm-,cancel-}{debit|credit}        barrier
//!  POST /2pc/{prepare-,commit-,rollback-}{debit|credit}   barrier (2PC over HTTP)
//!  POST /msg/credit                                       barrier (a message delivery)
//!  POST /xa/{debit|credit}?gid&branch_id      local work prepared under gid-branch_id, then
//!                                             registered with the coordinator (DTM XA)
//!  POST /xa-phase2?gid&branch_id&op=commit|rollback       the coordinator's second phase
//!  POST /admin/setup {accounts, balance}   POST /admin/teardown
//!  GET /admin/snapshot   GET /admin/effect?gid=
//! ```

use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_participant::axum::{BranchCall, Reply};
use tandem_participant::xa::{self, Phase2};

use crate::effect::effect;
use crate::http::Http;
use crate::store::{Bank, StepBody};

/// What the handlers share.
pub struct Service {
    pub bank: Bank,
    /// The coordinator, for XA branch registration (`http://host:port`).
    pub coordinator: String,
    /// This service as the coordinator reaches it (`http://host:port`).
    pub public_url: String,
    pub http: Http,
}

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/saga/{step}", post(barrier_step))
        .route("/tcc/{step}", post(barrier_step))
        .route("/2pc/{step}", post(barrier_step))
        .route("/msg/{step}", post(barrier_step))
        .route("/xa/{step}", post(xa_local))
        .route("/xa-phase2", post(xa_phase2))
        .route("/admin/setup", post(setup))
        .route("/admin/teardown", post(teardown))
        .route("/admin/snapshot", get(snapshot))
        .route("/admin/effect", get(effect_of))
        .with_state(service)
}

fn bad(why: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, why.into()).into_response()
}

/// Saga, TCC, 2PC and message steps: the protocol is the first path segment.
async fn barrier_step(
    State(s): State<Arc<Service>>,
    uri: Uri,
    Path(step): Path<String>,
    call: BranchCall,
    Json(body): Json<StepBody>,
) -> Response {
    let protocol = uri.path().trim_start_matches('/').split('/').next();
    let Some(e) = protocol.and_then(|p| effect(p, &step, body.amount)) else {
        return (StatusCode::NOT_FOUND, "no such step").into_response();
    };
    if body.amount <= 0 {
        return bad("amount must be positive");
    }
    s.bank.apply(&call, e, &body).await.into_response()
}

/// XA first phase, called by the client: local work prepared under `gid-branch_id`, then
/// the branch registered (its URL answers both commit and rollback). If registering fails,
/// the prepared work is rolled back here, so nothing stays prepared that the coordinator
/// does not know about.
async fn xa_local(
    State(s): State<Arc<Service>>,
    Path(step): Path<String>,
    RawQuery(query): RawQuery,
    Json(body): Json<StepBody>,
) -> Response {
    let Some(e) = effect("xa", &step, body.amount) else {
        return (StatusCode::NOT_FOUND, "no such step").into_response();
    };
    let (xid, gid, branch_id) = match Phase2::from_query(query.as_deref().unwrap_or("")) {
        Ok(Phase2::Local {
            xid,
            gid,
            branch_id,
        }) => (xid, gid, branch_id),
        Ok(Phase2::Finish { .. }) => return bad("use /xa-phase2 for commit/rollback"),
        Err(e) => return bad(e.to_string()),
    };
    let prepared = s.bank.xa_local(&xid, &gid, &step, e, &body).await;
    if prepared != Reply::Success {
        return prepared.into_response();
    }
    let register = json!({
        "gid": gid,
        "branch_id": branch_id,
        "trans_type": "xa",
        "url": format!("{}/xa-phase2", s.public_url),
        "data": "",
    });
    let url = format!("{}/api/dtmsvr/registerBranch", s.coordinator);
    match s.http.post(&url, Some(&register)).await {
        Ok((200, _)) => Reply::Success,
        other => {
            let rolled = s.bank.xa_finish(&xid, xa::Op::Rollback).await;
            tracing::warn!(?other, ?rolled, %gid, "XA branch registration failed; rolled back");
            Reply::failure("branch registration failed")
        }
    }
    .into_response()
}

/// XA second phase, called by the coordinator.
async fn xa_phase2(State(s): State<Arc<Service>>, RawQuery(query): RawQuery) -> Response {
    match Phase2::from_query(query.as_deref().unwrap_or("")) {
        Ok(Phase2::Finish { xid, op }) => match s.bank.xa_finish(&xid, op).await {
            Ok(()) => Reply::Success,
            Err(e) => Reply::Error(e.to_string()),
        }
        .into_response(),
        Ok(Phase2::Local { .. }) => bad("op must be commit or rollback"),
        Err(e) => bad(e.to_string()),
    }
}

#[derive(Deserialize)]
struct Setup {
    accounts: i64,
    balance: i64,
}

async fn setup(State(s): State<Arc<Service>>, Json(req): Json<Setup>) -> Response {
    match s.bank.setup(req.accounts, req.balance).await {
        Ok(()) => Reply::Success,
        Err(e) => Reply::Error(e.to_string()),
    }
    .into_response()
}

/// Drops this service's tables (`check` and `demo` call it when they are done). The barrier
/// table `dtm_barrier.barrier` stays: it may be shared with other services.
async fn teardown(State(s): State<Arc<Service>>) -> Response {
    match s.bank.drop_tables().await {
        Ok(()) => Reply::Success,
        Err(e) => Reply::Error(e.to_string()),
    }
    .into_response()
}

async fn snapshot(State(s): State<Arc<Service>>) -> Response {
    match s.bank.snapshot().await {
        Ok(snap) => Json(serde_json::to_value(snap).unwrap_or(Value::Null)).into_response(),
        Err(e) => Reply::Error(e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct EffectQuery {
    gid: String,
}

/// What one transaction did to this bank: `{"balance": Δ, "frozen": Δ}` summed over its
/// ledger rows (what `tandem check participant` reads back).
async fn effect_of(State(s): State<Arc<Service>>, Query(q): Query<EffectQuery>) -> Response {
    match s.bank.effect(&q.gid).await {
        Ok((balance, frozen)) => {
            Json(json!({"balance": balance, "frozen": frozen})).into_response()
        }
        Err(e) => Reply::Error(e.to_string()).into_response(),
    }
}
