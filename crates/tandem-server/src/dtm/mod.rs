//! DTM's HTTP protocol (v1.19) under `/api/dtmsvr`, and `/api/ping`, so that existing DTM
//! clients (Go, Java, Python, Node, PHP, C#) work against Tandem unchanged.
//!
//! ```text
//!  client ──prepare/submit/abort/registerBranch──► handlers ──► Coordinator (durable)
//!         ◄── 200 SUCCESS | 409 FAILURE | 425 ONGOING | 4xx {message, error} ──
//! ```
//!
//! - [`request`]: parsing and checking DTM bodies, mapping them onto the core's model;
//! - [`handlers`]: the transaction endpoints; [`admin`]: `query`, `all`, `newGid`, `version`;
//! - [`topics`]: subscribe, unsubscribe, topics as DTM's KV rows, `resetCronTime`;
//! - [`service`]: the operations themselves, shared with the gRPC API;
//! - [`reply`]: DTM's answer shapes; [`view`]: DTM's shape of a stored transaction;
//! - [`wire`]: the names and answer classes a participant sees on a branch call.
//!
//! Deliberate differences from DTM are listed in `docs/dtm-compat.md`.

pub mod admin;
pub mod handlers;
pub mod reply;
pub mod request;
pub mod service;
pub mod topics;
pub mod view;
pub mod wire;

use axum::routing::{any, delete, get, post};
use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    use handlers as h;
    Router::new()
        .route("/api/ping", any(admin::ping))
        .route("/api/dtmsvr/version", get(admin::version))
        .route("/api/dtmsvr/newGid", get(admin::new_gid))
        .route("/api/dtmsvr/prepare", post(h::prepare))
        .route("/api/dtmsvr/submit", post(h::submit))
        .route("/api/dtmsvr/abort", post(h::abort))
        .route("/api/dtmsvr/forceStop", post(h::force_stop))
        .route("/api/dtmsvr/registerBranch", post(h::register_branch))
        .route("/api/dtmsvr/registerXaBranch", post(h::register_branch))
        .route("/api/dtmsvr/registerTccBranch", post(h::register_branch))
        .route("/api/dtmsvr/query", get(h::query))
        .route("/api/dtmsvr/all", get(admin::all))
        .route(
            "/api/dtmsvr/resetNextCronTime",
            post(h::reset_next_cron_time),
        )
        .route("/api/dtmsvr/prepareWorkflow", post(h::prepare_workflow))
        .route(
            "/api/dtmsvr/resetCronTime",
            get(topics::reset_cron_time).post(topics::reset_cron_time),
        )
        .route(
            "/api/dtmsvr/subscribe",
            get(topics::subscribe).post(topics::subscribe),
        )
        .route(
            "/api/dtmsvr/unsubscribe",
            get(topics::unsubscribe).post(topics::unsubscribe),
        )
        .route(
            "/api/dtmsvr/topic/{name}",
            delete(topics::delete_topic).post(topics::delete_topic),
        )
        .route("/api/dtmsvr/scanKV", get(topics::scan_kv))
        .route("/api/dtmsvr/queryKV", get(topics::query_kv))
        .route("/api/dtmsvr", any(no_route))
        .route("/api/dtmsvr/{*rest}", any(no_route))
}

/// An unknown `/api/dtmsvr/...` path: 404 with a JSON body, as `/v1` answers.
async fn no_route(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::not_found(format!(
        "no DTM endpoint {} (see docs/dtm-compat.md for the supported ones)",
        uri.path()
    ))
}
