//! The answer to a body over `body_bytes_max`: 413 naming the limit in bytes and the
//! setting that raises it, in the JSON shape of the API that was called (`/v1`'s
//! `{"error":{code,message}}`, or DTM's `{message, error, dtm_result}` under `/api/`).
//!
//! axum's body-limit rejection says only "length limit exceeded", and the extractors pass
//! that on; this middleware, which knows the configured limit, rewrites such a 413 on the
//! way out. A 413 that names its own limit — the core's `too_large` for a payload over its
//! limit — is left as it is.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// Most bytes of a 413's own body that are read to see what it is.
const PEEK_BYTES_MAX: usize = 64 * 1024;

/// The message of every body-limit 413.
pub fn message(limit: usize) -> String {
    format!(
        "request body is larger than the limit of {limit} bytes (body_bytes_max, \
         TANDEM_BODY_BYTES_MAX, --body-bytes-max)"
    )
}

/// Whether `body` is a JSON error whose code is the core's `too_large` (in either shape).
fn names_its_own_limit(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    v["error"]["code"] == "too_large" || v["error"] == "too_large"
}

pub async fn explain(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let dtm = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if res.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return res;
    }
    let (parts, body) = res.into_parts();
    if let Ok(bytes) = axum::body::to_bytes(body, PEEK_BYTES_MAX).await {
        if names_its_own_limit(&bytes) {
            return Response::from_parts(parts, Body::from(bytes));
        }
    }
    let e = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        message(state.cfg.body_bytes_max),
    );
    if dtm {
        crate::dtm::reply::DtmError(e).into_response()
    } else {
        e.into_response()
    }
}
