//! gRPC status codes on both sides, as DTM uses them.
//!
//! ```text
//!  answer of Tandem's API        HTTP        gRPC
//!  success                       200         OK
//!  FAILURE (refused, rolled back) 409        ABORTED
//!  ONGOING (not yet)             425         FAILED_PRECONDITION
//!  malformed request             400/413/422 INVALID_ARGUMENT
//!  no such transaction           404         NOT_FOUND
//!  missing or wrong token        401         UNAUTHENTICATED
//!  busy, shutting down           503         UNAVAILABLE
//!  the server's own fault        500         INTERNAL
//! ```
//!
//! A participant's answer to a gRPC branch call: OK = success; ABORTED = FAILURE (but
//! ABORTED with the message `ONGOING` = not yet, as DTM servers before v1.10 said it);
//! FAILED_PRECONDITION = not yet; anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL,
//! UNIMPLEMENTED, …) = unknown, retried with backoff.

use tandem_core::CallOutcome;
use tonic::{Code, Status};

use crate::dtm::reply::DtmError;

/// The machine-readable code of an error, sent beside the status as metadata.
pub const ERROR_CODE_KEY: &str = "tandem-error";

/// The gRPC code of an API answer with this HTTP status.
pub fn code_of_http(status: u16) -> Code {
    match status {
        409 => Code::Aborted,
        425 => Code::FailedPrecondition,
        400 | 413 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// An API error as a gRPC status (its code also as `tandem-error` metadata).
pub fn from_dtm(e: DtmError) -> Status {
    let e = e.0;
    let mut st = Status::new(code_of_http(e.status.as_u16()), e.message);
    if let Ok(v) = e.code.parse() {
        st.metadata_mut().insert(ERROR_CODE_KEY, v);
    }
    st
}

/// How a participant's gRPC answer is classified.
pub fn classify(result: Result<(), &Status>) -> CallOutcome {
    let st = match result {
        Ok(()) => return CallOutcome::Success,
        Err(st) => st,
    };
    match st.code() {
        Code::Ok => CallOutcome::Success,
        Code::Aborted if st.message() == "ONGOING" => CallOutcome::Ongoing,
        Code::Aborted => CallOutcome::Failure(format!("gRPC Aborted: {}", snippet(st.message()))),
        Code::FailedPrecondition => CallOutcome::Ongoing,
        code => CallOutcome::Error(format!("gRPC {code:?}: {}", snippet(st.message()))),
    }
}

fn snippet(m: &str) -> String {
    let m = m.trim();
    if m.len() <= 200 {
        return m.to_string();
    }
    let mut end = 200;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &m[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use axum::http::StatusCode;

    #[test]
    fn api_answers_map_like_dtm() {
        let st = |s: StatusCode| from_dtm(DtmError(ApiError::new(s, "x_y", "why"))).code();
        assert_eq!(st(StatusCode::CONFLICT), Code::Aborted);
        assert_eq!(st(StatusCode::TOO_EARLY), Code::FailedPrecondition);
        assert_eq!(st(StatusCode::BAD_REQUEST), Code::InvalidArgument);
        assert_eq!(st(StatusCode::PAYLOAD_TOO_LARGE), Code::InvalidArgument);
        assert_eq!(st(StatusCode::UNPROCESSABLE_ENTITY), Code::InvalidArgument);
        assert_eq!(st(StatusCode::NOT_FOUND), Code::NotFound);
        assert_eq!(st(StatusCode::UNAUTHORIZED), Code::Unauthenticated);
        assert_eq!(st(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(st(StatusCode::INTERNAL_SERVER_ERROR), Code::Internal);
        let full = from_dtm(DtmError(ApiError::bad_request("invalid_gid", "bad gid")));
        assert_eq!(full.message(), "bad gid");
        assert_eq!(
            full.metadata().get(ERROR_CODE_KEY).map(|v| v.to_str().ok()),
            Some(Some("invalid_gid"))
        );
    }

    #[test]
    fn participant_answers_classify_like_dtm() {
        assert_eq!(classify(Ok(())), CallOutcome::Success);
        let c = |code, m: &str| classify(Err(&Status::new(code, m)));
        assert!(
            matches!(c(Code::Aborted, "no money"), CallOutcome::Failure(m) if m.contains("no money"))
        );
        assert_eq!(c(Code::Aborted, "ONGOING"), CallOutcome::Ongoing);
        assert_eq!(c(Code::FailedPrecondition, "later"), CallOutcome::Ongoing);
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unknown,
            Code::Unimplemented,
            Code::InvalidArgument,
            Code::NotFound,
            Code::ResourceExhausted,
        ] {
            assert!(matches!(c(code, "x"), CallOutcome::Error(_)), "{code:?}");
        }
    }
}
