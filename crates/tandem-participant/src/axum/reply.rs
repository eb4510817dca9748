//! Answers in the coordinator's language, and the error type of business code.
//!
//! | [`Reply`] | HTTP | body | the coordinator then |
//! |---|---|---|---|
//! | `Success` | 200 | `{"dtm_result":"SUCCESS"}` | moves on |
//! | `Failure(why)` | 409 | `{"dtm_result":"FAILURE","message":why}` | rolls back (a business "no": final) |
//! | `Ongoing` | 425 | `{"dtm_result":"ONGOING"}` | asks again later, at a fixed interval |
//! | `Error(why)` | 500 | `{"error":{"code":"participant_error","message":why}}` | retries with backoff (outcome unknown) |
//! | `BadCall(why)` | 400 | `{"error":{"code":"invalid_branch_call","message":why}}` | retries; fix the caller |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::barrier::{MsgStatus, Outcome, Skip};

/// What a branch handler answers: `Success` 200 `{"dtm_result":"SUCCESS"}`; `Failure` 409
/// `FAILURE` (a business "no": the transaction rolls back); `Ongoing` 425 `ONGOING` (ask
/// again); `Error` 500 (the coordinator calls again with backoff); `BadCall` 400.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Reply {
    /// Done (or already done, or nothing to undo).
    Success,
    /// A business refusal: final; the transaction rolls back.
    Failure(String),
    /// Not yet: ask again.
    Ongoing,
    /// Something broke (database down, ...): the coordinator calls again.
    Error(String),
    /// The call did not carry a valid branch identity.
    BadCall(String),
}

impl Reply {
    /// `Reply::Failure` with a reason.
    pub fn failure(why: impl Into<String>) -> Reply {
        Reply::Failure(why.into())
    }

    /// The HTTP status this answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Success => StatusCode::OK,
            Reply::Failure(_) => StatusCode::CONFLICT,
            // 425 Too Early.
            Reply::Ongoing => StatusCode::from_u16(425).unwrap_or(StatusCode::CONFLICT),
            Reply::Error(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Reply::BadCall(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            Reply::Success => json!({"dtm_result": "SUCCESS"}),
            Reply::Failure(m) => json!({"dtm_result": "FAILURE", "message": m}),
            Reply::Ongoing => json!({"dtm_result": "ONGOING"}),
            Reply::Error(m) => {
                tracing::warn!(error = %m, "branch call failed (500: the coordinator calls again)");
                json!({"error": {"code": "participant_error", "message": m}})
            }
            Reply::BadCall(m) => json!({"error": {"code": "invalid_branch_call", "message": m}}),
        };
        (status, Json(body)).into_response()
    }
}

impl From<MsgStatus> for Reply {
    /// A message check: committed → deliver; rolled back → drop it.
    fn from(s: MsgStatus) -> Reply {
        match s {
            MsgStatus::Committed => Reply::Success,
            MsgStatus::RolledBack => Reply::failure("the local transaction did not commit"),
        }
    }
}

impl<T> From<Outcome<T>> for Reply {
    fn from(o: Outcome<T>) -> Reply {
        match o {
            Outcome::Ran(_) | Outcome::Skipped(Skip::Duplicate | Skip::NullCompensation) => {
                Reply::Success
            }
            Outcome::Skipped(Skip::Refused) => Reply::failure(
                "refused by the barrier: this branch's compensation (or its other second phase) came first",
            ),
        }
    }
}

/// Why business code did not complete. Returning it from a barrier wrapper's closure rolls
/// the local transaction back, barrier rows included, so a later call runs the code again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BranchError {
    /// A business refusal (insufficient funds, unknown account): answered 409 FAILURE.
    #[error("{0}")]
    Failure(String),
    /// Not yet possible: answered 425 ONGOING, asked again.
    #[error("not yet: {0}")]
    Ongoing(String),
    /// A failure that a retry may cure (the database, a timeout): answered 500.
    #[error("{0}")]
    Retry(String),
}

impl BranchError {
    /// A business refusal.
    pub fn failure(why: impl Into<String>) -> BranchError {
        BranchError::Failure(why.into())
    }
}

impl From<BranchError> for Reply {
    fn from(e: BranchError) -> Reply {
        match e {
            BranchError::Failure(m) => Reply::Failure(m),
            BranchError::Ongoing(_) => Reply::Ongoing,
            BranchError::Retry(m) => Reply::Error(m),
        }
    }
}

impl From<tokio_postgres::Error> for BranchError {
    fn from(e: tokio_postgres::Error) -> BranchError {
        BranchError::Retry(match e.as_db_error() {
            Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
            None => format!("postgres: {e}"),
        })
    }
}

impl From<mysql_async::Error> for BranchError {
    fn from(e: mysql_async::Error) -> BranchError {
        BranchError::Retry(format!("mysql: {e}"))
    }
}

impl From<rusqlite::Error> for BranchError {
    fn from(e: rusqlite::Error) -> BranchError {
        BranchError::Retry(format!("sqlite: {e}"))
    }
}
