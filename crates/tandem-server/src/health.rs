//! `GET /health/live` and `GET /health/ready`: what a load balancer or Kubernetes asks.
//!
//! - **live**: 200 while the process serves HTTP at all.
//! - **ready**: 200 `{"status":"ready","node":…}` while the coordinator accepts work; 503
//!   `{"status":"shutting_down"}` while it drains, and 503 `{"status":"failed","reason":…}` once
//!   its log failed (fail-stop: the process then exits non-zero within a second, and a restart
//!   recovers from the log). Never behind the token: probes carry none, and neither answer
//!   says anything about transactions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

async fn ready(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let node = s.coord.identity().node.clone();
    if let Some(reason) = s.coord.failure() {
        let body = json!({ "status": "failed", "reason": reason, "node": node });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    if !s.coord.ready() {
        let body = json!({ "status": "shutting_down", "node": node });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    (
        StatusCode::OK,
        Json(json!({ "status": "ready", "node": node })),
    )
}
