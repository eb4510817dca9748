//! Request errors: every failure a client can cause maps to a 4xx with a JSON body that
//! names the problem; only the server's own faults are 5xx.
//!
//! Native API body: `{"error": {"code": "...", "message": "..."}}`. The DTM API renders the
//! same errors in DTM's shape (see [`crate::dtm`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tandem_core::{ApplyError, SpecError};
use tandem_engine::EngineError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

/// A transaction that breaks a rule of its shape (`tandem_core::spec`): 413 for sizes, 422
/// for an impossible saga order, 400 for the rest; the code is the core's.
impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        let status = match &e {
            SpecError::PayloadTooLarge { .. }
            | SpecError::TxTooLarge { .. }
            | SpecError::CustomDataTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SpecError::Orders(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let msg = e.to_string();
        match e {
            EngineError::Gid(_) => ApiError::bad_request("invalid_gid", msg),
            EngineError::GidExists(_) => ApiError::new(StatusCode::CONFLICT, "gid_exists", msg),
            EngineError::NotFound(_) => ApiError::not_found(msg),
            EngineError::Spec(e) | EngineError::Refused(ApplyError::Spec(e)) => e.into(),
            EngineError::Refused(r) => match r {
                ApplyError::WrongStatus { .. } | ApplyError::Ended { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "wrong_status", msg)
                }
                ApplyError::BranchConflict { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "branch_conflict", msg)
                }
                _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_transaction", msg),
            },
            EngineError::Failed(_) | EngineError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg)
            }
            EngineError::OwnedElsewhere { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "owned_elsewhere", msg)
            }
            EngineError::Store(tandem_store::StoreError::Unavailable(_)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg)
            }
            EngineError::UnknownParticipant(_) => ApiError::bad_request("unknown_participant", msg),
            EngineError::Busy { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", msg),
            EngineError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
