//! The engine's errors: one enum, each variant saying whose mistake it is.

use tandem_core::{ApplyError, GidError};
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
    /// Backpressure: too many transactions are active; try again later.
    #[error("busy: {active} transactions are active (limit {limit})")]
    Busy { active: usize, limit: usize },
    #[error("configuration: {0}")]
    Config(String),
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// Whether the caller may succeed by trying the same request again later.
    pub fn retryable(&self) -> bool {
        match self {
            EngineError::Busy { .. } => true,
            EngineError::Store(e) => e.retryable(),
            _ => false,
        }
    }
}
