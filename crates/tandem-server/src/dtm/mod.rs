//! DTM's HTTP protocol (v1.19) under `/api/dtmsvr`, and `/api/ping`.

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
