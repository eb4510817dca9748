//! DTM's answer shapes. Since v1.10 DTM clients judge an answer by its status code — 200
//! success, 409 FAILURE (do not retry), 425 ONGOING (not yet) — and older ones by the
//! `dtm_result` field of the body, so every answer carries both.
//!
//! Where DTM answers a client's mistake with a 500 (malformed JSON, an unknown trans_type,
//! a missing gid), we answer 4xx with `{"dtm_result":"FAILURE","message":..,"error":code}`:
//! the request can never succeed as sent, so FAILURE is the right word for old clients too.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tandem_engine::EngineError;
use tandem_store::StoreError;

use crate::error::ApiError;

pub const SUCCESS: &str = "SUCCESS";
pub const FAILURE: &str = "FAILURE";
pub const ONGOING: &str = "ONGOING";

/// An error answer in DTM's shape.
#[derive(Debug)]
pub struct DtmError(pub ApiError);

pub type DtmResult = Result<Response, DtmError>;

impl DtmError {
    /// 409: a business refusal (wrong status, gid reused with other content, rolled back).
    pub fn failure(code: &'static str, message: impl Into<String>) -> DtmError {
        DtmError(ApiError::new(StatusCode::CONFLICT, code, message))
    }
    /// 425: not finished yet.
    pub fn ongoing(message: impl Into<String>) -> DtmError {
        DtmError(ApiError::new(StatusCode::TOO_EARLY, "ongoing", message))
    }
}

impl From<ApiError> for DtmError {
    fn from(e: ApiError) -> DtmError {
        DtmError(e)
    }
}

impl From<tandem_core::SpecError> for DtmError {
    fn from(e: tandem_core::SpecError) -> DtmError {
        DtmError(ApiError::from(e))
    }
}

impl From<EngineError> for DtmError {
    fn from(e: EngineError) -> DtmError {
        match &e {
            EngineError::Store(StoreError::InvalidQuery(m)) => {
                DtmError(ApiError::bad_request("invalid_query", m.clone()))
            }
            _ => DtmError(ApiError::from(e)),
        }
    }
}

impl IntoResponse for DtmError {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut body = json!({ "message": e.message, "error": e.code });
        if e.status == StatusCode::TOO_EARLY {
            body["dtm_result"] = ONGOING.into();
        } else if e.status.is_client_error() {
            body["dtm_result"] = FAILURE.into();
        }
        (e.status, Json(body)).into_response()
    }
}

/// `200 {"dtm_result":"SUCCESS"}`.
pub fn success() -> DtmResult {
    Ok(Json(json!({ "dtm_result": SUCCESS })).into_response())
}

/// `200` with `body` as it is.
pub fn ok(body: Value) -> DtmResult {
    Ok(Json(body).into_response())
}
