//! What can go wrong talking to a Tandem server, and whose mistake it was.
//!
//! Every error answers two questions a caller must act on: [`Error::fault`] — was it the
//! caller's request, the server, the network, or a participant the client called on the
//! caller's behalf — and [`Error::retryable`] — is sending the same request again safe and
//! useful. The client already resends retryable requests itself (bounded, with backoff, see
//! [`crate::RetryPolicy`]); a retryable error that reaches the caller means those attempts
//! ran out, and the outcome of a create may be unknown: resend it with the same gid, or
//! [`crate::Client::get`] it.

use std::time::Duration;

/// Result of the client's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whose mistake an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request itself is wrong (bad gid, unknown transaction, invalid body, wrong
    /// status): sending it again will not help.
    Caller,
    /// The server failed or is overloaded / shutting down.
    Server,
    /// No answer: the node is down, unreachable, or too slow.
    Network,
    /// A participant the client called for the caller (a TCC `try`) refused or failed.
    Participant,
}

/// An error of the client: [`Error::fault`] says whose mistake it was, [`Error::retryable`]
/// whether sending the same request again is safe and may help. The client already resent
/// retryable requests itself (bounded, with backoff); a retryable error that reaches the
/// caller means those tries ran out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not even be built from what the caller gave (a gid with a bad
    /// character, a base URL that is not http(s), ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No node could be reached (connection refused or reset, DNS, TLS).
    #[error(
        "cannot reach the tandem server at {node}: {detail}; is `tandem serve` running there?"
    )]
    Unreachable {
        /// The node tried last.
        node: String,
        /// Why, as the network layer said it.
        detail: String,
    },
    /// The request was sent but no answer came in time: its effect is unknown.
    #[error("the tandem server at {node} did not answer within {} ms", after.as_millis())]
    Timeout {
        /// The node tried last.
        node: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The server refused the request (4xx): the caller's mistake, named by `code`
    /// (`invalid_gid`, `not_found`, `gid_exists`, `wrong_status`, `invalid_body`, ...).
    #[error("server answered {status}: {message} ({code})")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The API's machine-readable code.
        code: String,
        /// For people.
        message: String,
    },
    /// The server failed (5xx), or is busy or shutting down (503, `busy`/`shutting_down`).
    #[error("server answered {status}: {message} ({code})")]
    Server {
        /// HTTP status.
        status: u16,
        /// The API's code, or `http_<status>` when the body had none.
        code: String,
        /// For people.
        message: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The answer is not what a Tandem server answers (not JSON of the expected shape).
    #[error("unexpected answer from {url}: {detail}; is this a tandem server?")]
    Protocol {
        /// The request's URL.
        url: String,
        /// What did not fit.
        detail: String,
    },
    /// [`crate::Client::wait`] gave up before the transaction ended.
    #[error("transaction {gid:?} had not ended after {} ms (last seen: {status})", waited.as_millis())]
    WaitTimeout {
        /// The transaction.
        gid: String,
        /// Its status when the wait gave up.
        status: String,
        /// How long the client waited.
        waited: Duration,
    },
    /// A participant the client called (a TCC `try`) answered FAILURE, or could not be
    /// reached; abort the transaction.
    #[error("participant {url}: {detail}")]
    Participant {
        /// The call's URL, without its query.
        url: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// True for a business failure (409 / `FAILURE`): final, not worth retrying.
        failure: bool,
        /// What it answered, or why there was no answer.
        detail: String,
    },
}

impl Error {
    /// Whose mistake this is.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Invalid(_) | Error::Rejected { .. } => Fault::Caller,
            Error::Server { .. } | Error::Protocol { .. } => Fault::Server,
            Error::Unreachable { .. } | Error::Timeout { .. } => Fault::Network,
            Error::WaitTimeout { .. } => Fault::Server,
            Error::Participant { .. } => Fault::Participant,
        }
    }

    /// True when sending the same request again is safe and may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Invalid(_) | Error::Rejected { .. } | Error::Protocol { .. } => false,
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::WaitTimeout { .. } => true,
            // 501 Not Implemented will not change; every other 5xx may.
            Error::Server { status, .. } => *status != 501,
            Error::Participant { failure, .. } => !failure,
        }
    }

    /// The API's error code (`not_found`, `gid_exists`, `busy`, ...), when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Rejected { code, .. } | Error::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True for a 404 `not_found`.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("not_found")
    }

    /// True when the request's effect may have happened although no answer said so.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_and_retries() {
        let rejected = Error::Rejected {
            status: 422,
            code: "invalid_body".into(),
            message: "x".into(),
        };
        assert_eq!(rejected.fault(), Fault::Caller);
        assert!(!rejected.retryable());
        let busy = Error::Server {
            status: 503,
            code: "busy".into(),
            message: "x".into(),
            retry_after: None,
        };
        assert_eq!(busy.fault(), Fault::Server);
        assert!(busy.retryable());
        let down = Error::Unreachable {
            node: "n".into(),
            detail: "refused".into(),
        };
        assert_eq!(down.fault(), Fault::Network);
        assert!(down.retryable() && !down.outcome_unknown());
        let failed_try = Error::Participant {
            url: "u".into(),
            status: Some(409),
            failure: true,
            detail: "no".into(),
        };
        assert!(!failed_try.retryable());
        assert_eq!(failed_try.fault(), Fault::Participant);
    }
}
