//! The engine's errors: one enum, each variant saying whose mistake it is.

use tandem_core::{ApplyError, GidError, SpecError};
use tandem_store::StoreError;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("invalid gid: {0}")]
    Gid(#[from] GidError),
    #[error("transaction {0} already exists with different content")]
    GidExists(String),
    #[error("no transaction {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] ApplyError),
    #[error("unknown participant {0:?}: register it with the coordinator before use")]
    UnknownParticipant(String),
    /// Another live node drives the transaction right now (shared stores); try again shortly.
    #[error("transaction is being driven by node {owner}; try again shortly")]
    OwnedElsewhere { owner: String },
    /// Backpressure: too many transactions are active; try again later.
    #[error("busy: {active} transactions are active (limit {limit})")]
    Busy { active: usize, limit: usize },
    /// The transaction asked for breaks a rule of its shape (the caller's mistake).
    #[error(transparent)]
    Spec(SpecError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    /// A shared store is unreachable or this node's lease on it lapsed: nothing is accepted
    /// until it is back (it resumes by itself).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The log failed; the coordinator stopped acting (fail-stop) and must be restarted, which
    /// recovers from the log.
    #[error(
        "the coordinator stopped after its log failed ({0}); restart it to recover from the log"
    )]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SpecError> for EngineError {
    fn from(e: SpecError) -> EngineError {
        match e {
            SpecError::Gid(g) => EngineError::Gid(g),
            other => EngineError::Spec(other),
        }
    }
}

impl EngineError {
    /// Whether the caller may succeed by trying the same request again later.
    pub fn retryable(&self) -> bool {
        match self {
            EngineError::Busy { .. }
            | EngineError::OwnedElsewhere { .. }
            | EngineError::Unavailable(_) => true,
            EngineError::Store(e) => e.retryable(),
            _ => false,
        }
    }
}
