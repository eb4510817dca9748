//! A bank as an HTTP service (axum): the branch endpoints the coordinator and the checker
//! call, answering with DTM's conventions (200 SUCCESS, 409 FAILURE, 500 = try again).
//!
//! ```text
//!  POST /saga/{debit|undo-debit|credit|undo-credit}       barrier, op from the query
//!  POST /tcc/{try-,confirm-,cancel-}{debit|credit}        barrier
//!  POST /xa/{debit|credit}?gid&branch_id      local work prepared under gid-branch_id, then
//!                                             registered with the coordinator (DTM XA)
//!  POST /xa-phase2?gid&branch_id&op=commit|rollback       the coordinator's second phase
//!  POST /admin/setup {accounts, balance}      GET /admin/snapshot
//! ```

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_participant::barrier::Barrier;
use tandem_participant::xa::{self, Phase2};

use crate::effect::effect;
use crate::http::Http;
use crate::store::{Answer, Bank, StepBody};

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
        .route("/xa/{step}", post(xa_local))
        .route("/xa-phase2", post(xa_phase2))
        .route("/admin/setup", post(setup))
        .route("/admin/teardown", post(teardown))
        .route("/admin/snapshot", get(snapshot))
        .with_state(service)
}

fn success() -> Response {
    Json(json!({"dtm_result": "SUCCESS"})).into_response()
}

fn failure(message: &str) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"dtm_result": "FAILURE", "message": message})),
    )
        .into_response()
}

fn error(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "branch call failed (500: the caller tries again or aborts)");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

fn reply(answer: anyhow::Result<Answer>) -> Response {
    match answer {
        Ok(Answer::Success) => success(),
        Ok(Answer::Failure(m)) => failure(&m),
        Err(e) => error(e),
    }
}

/// Saga and TCC steps: the protocol is the first path segment.
async fn barrier_step(
    State(s): State<Arc<Service>>,
    uri: axum::http::Uri,
    Path(step): Path<String>,
    RawQuery(query): RawQuery,
    Json(body): Json<StepBody>,
) -> Response {
    let protocol = uri.path().trim_start_matches('/').split('/').next();
    let Some(e) = protocol.and_then(|p| effect(p, &step, body.amount)) else {
        return (StatusCode::NOT_FOUND, "no such step").into_response();
    };
    if body.amount <= 0 {
        return (StatusCode::BAD_REQUEST, "amount must be positive").into_response();
    }
    let barrier = match Barrier::from_query(query.as_deref().unwrap_or("")) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    reply(s.bank.apply(barrier, e, &body).await)
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
        Ok(Phase2::Finish { .. }) => {
            return (
                StatusCode::BAD_REQUEST,
                "use /xa-phase2 for commit/rollback",
            )
                .into_response()
        }
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match s.bank.xa_local(&xid, &gid, &step, e, &body).await {
        Ok(Answer::Success) => {}
        other => return reply(other),
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
        Ok((200, _)) => success(),
        other => {
            let rolled = s.bank.xa_finish(&xid, xa::Op::Rollback).await;
            tracing::warn!(?other, ?rolled, %gid, "XA branch registration failed; rolled back");
            failure("branch registration failed")
        }
    }
}

/// XA second phase, called by the coordinator.
async fn xa_phase2(State(s): State<Arc<Service>>, RawQuery(query): RawQuery) -> Response {
    match Phase2::from_query(query.as_deref().unwrap_or("")) {
        Ok(Phase2::Finish { xid, op }) => match s.bank.xa_finish(&xid, op).await {
            Ok(()) => success(),
            Err(e) => error(e),
        },
        Ok(Phase2::Local { .. }) => {
            (StatusCode::BAD_REQUEST, "op must be commit or rollback").into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct Setup {
    accounts: i64,
    balance: i64,
}

async fn setup(State(s): State<Arc<Service>>, Json(req): Json<Setup>) -> Response {
    match s.bank.setup(req.accounts, req.balance).await {
        Ok(()) => success(),
        Err(e) => error(e),
    }
}

/// Drops this service's tables (`check` and `demo` call it when they are done). The barrier
/// table `dtm_barrier.barrier` stays: it may be shared with other services.
async fn teardown(State(s): State<Arc<Service>>) -> Response {
    match s.bank.drop_tables().await {
        Ok(()) => success(),
        Err(e) => error(e),
    }
}

async fn snapshot(State(s): State<Arc<Service>>) -> Response {
    match s.bank.snapshot().await {
        Ok(snap) => Json(serde_json::to_value(snap).unwrap_or(Value::Null)).into_response(),
        Err(e) => error(e),
    }
}
