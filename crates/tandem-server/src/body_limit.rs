//! The answer to a body over `body_bytes_max`: 413 naming the limit in bytes and the
//! setting that raises it, in the JSON shape of the API that was called (`/v1`'s
//! `{"error":{code,message}}`, or DTM's `{message, error, dtm_result}` under `/api/`).
//!
//! axum's body-limit rejection says only "length limit exceeded"; this middleware, which
//! knows the configured limit, replaces any 413 on the way out.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// The message of every 413.
pub fn message(limit: usize) -> String {
    format!(
        "request body is larger than the limit of {limit} bytes (body_bytes_max, \
         TANDEM_BODY_BYTES_MAX, --body-bytes-max)"
    )
}

pub async fn explain(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let dtm = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if res.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return res;
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
