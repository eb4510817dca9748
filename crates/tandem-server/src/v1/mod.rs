//! The native JSON API under `/v1`.
//!
//! ```text
//!  POST /v1/sagas                      submit a saga (steps: action + compensate URLs)
//!  POST /v1/2pc                        two-phase commit over HTTP participants
//!  POST /v1/tcc                        begin a TCC transaction
//!  POST /v1/tcc/{gid}/branches         register a branch (confirm + cancel URLs)
//!  POST /v1/tcc/{gid}/submit|abort     confirm / cancel every branch
//!  POST /v1/msgs                       prepare a message (deliveries + query_prepared URL)
//!  POST /v1/msgs/{gid}/submit          deliver it
//!  POST /v1/workflows                  create a workflow (or answer it and its steps)
//!  POST /v1/workflows/{gid}/steps      record a step that ended
//!  POST /v1/workflows/{gid}/finish     end it
//!  GET  /v1/topics (/{name})           message topics and their subscribers
//!  POST /v1/topics/{name}/subscribers  subscribe; DELETE …/subscribers?url= unsubscribes
//!  DELETE /v1/topics/{name}            delete a topic
//!  GET  /v1/transactions               list: status, type, parked, gid_prefix, created range,
//!                                      cursor paging
//!  GET  /v1/transactions/{gid}         one, with branches, attempts and history
//!  POST /v1/transactions/{gid}/retry   operator: retry now   (reason required)
//!  POST /v1/transactions/{gid}/stop    operator: force stop  (reason required)
//!  GET  /v1/stats                      live counters (cheap; the dashboard polls it)
//!  GET  /v1/openapi.json               the OpenAPI 3 document, generated from this code
//! ```
//!
//! Invariants: every client mistake — malformed JSON, wrong types, unknown fields or
//! values, bad gids, URLs, limits, unknown routes or methods — is a 4xx with the JSON error
//! body `{"error":{"code","message"}}` (see [`extract`]); engine backpressure is a 503 with
//! `Retry-After`; a 5xx means the server itself failed.

mod build;
pub mod extract;
mod inspect;
pub mod model;
pub mod openapi;
mod options;
mod protocols;
pub mod stats;
pub mod topics;
pub mod view;
mod workflows;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

/// Seconds a client is told to wait after a 503.
pub const RETRY_AFTER_S: u32 = 1;

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this path",
    )
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such /v1 endpoint (see /v1/openapi.json)")
}

/// Adds `Retry-After` to every 503 (busy or shutting down) that lacks one.
async fn retry_after(mut r: Response) -> Response {
    if r.status() == StatusCode::SERVICE_UNAVAILABLE && !r.headers().contains_key("retry-after") {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(RETRY_AFTER_S));
    }
    r
}

fn m(r: MethodRouter<AppState>) -> MethodRouter<AppState> {
    r.fallback(method_not_allowed)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sagas", m(post(protocols::create_saga)))
        .route("/v1/2pc", m(post(protocols::create_two_pc)))
        .route("/v1/tcc", m(post(protocols::create_tcc)))
        .route(
            "/v1/tcc/{gid}/branches",
            m(post(protocols::register_tcc_branch)),
        )
        .route("/v1/tcc/{gid}/submit", m(post(protocols::submit_tcc)))
        .route("/v1/tcc/{gid}/abort", m(post(protocols::abort_tcc)))
        .route("/v1/msgs", m(post(protocols::create_msg)))
        .route("/v1/msgs/{gid}/submit", m(post(protocols::submit_msg)))
        .route("/v1/workflows", m(post(workflows::create_workflow)))
        .route("/v1/workflows/{gid}/steps", m(post(workflows::record_step)))
        .route(
            "/v1/workflows/{gid}/finish",
            m(post(workflows::finish_workflow)),
        )
        .route("/v1/topics", m(get(topics::list_topics)))
        .route(
            "/v1/topics/{name}",
            m(get(topics::get_topic).delete(topics::delete_topic)),
        )
        .route(
            "/v1/topics/{name}/subscribers",
            m(post(topics::subscribe).delete(topics::unsubscribe)),
        )
        .route("/v1/transactions", m(get(inspect::list_tx)))
        .route("/v1/transactions/{gid}", m(get(inspect::get_tx)))
        .route("/v1/transactions/{gid}/retry", m(post(inspect::retry_tx)))
        .route("/v1/transactions/{gid}/stop", m(post(inspect::stop_tx)))
        .route("/v1/stats", m(get(stats::get_stats)))
        .route("/v1/openapi.json", m(get(openapi::openapi_json)))
        .route("/v1", m(get(no_route)).fallback(no_route))
        .route("/v1/{*rest}", get(no_route).fallback(no_route))
        .layer(axum::middleware::map_response(retry_after))
}
