//! What an in-process participant implements: a saga step ([`SagaStep`]: action and
//! compensation) or a two-phase-commit resource ([`Resource`]: prepare, commit, rollback).
//!
//! Calls are at-least-once: after a crash or a timeout the engine calls again with the same
//! [`CallRequest`] (same gid, branch id and op — see [`CallRequest::idempotency_key`]), so
//! every method must make a repeated call harmless. A compensation may also arrive for an
//! action whose outcome the engine never learned (the action may or may not have happened).

use async_trait::async_trait;

pub use crate::transport::CallRequest;

/// How a call ended other than in success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BranchError {
    /// A business refusal: final. An action's failure makes the saga compensate; a vote of
    /// no aborts a 2PC.
    #[error("failure: {0}")]
    Failure(String),
    /// Not finished yet; ask again later (fixed interval).
    #[error("ongoing")]
    Ongoing,
    /// Could not tell (a dependency was down, a timeout): retried with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Phase 2 of an XA resource: nothing is prepared under the branch's xid. Never guess
    /// success here — the engine decides whether an earlier call of ours explains it (see
    /// `tandem_core::twopc`).
    #[error("no prepared transaction under this branch's xid")]
    NotPrepared,
}

/// A 2PC participant's answer to prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// Prepared: the participant will commit or roll back as told, even after a crash.
    Yes,
    /// Nothing to commit; leave me out of phase 2.
    ReadOnly,
}

/// A saga step: an action and the compensation that semantically undoes it.
#[async_trait]
pub trait SagaStep: Send + Sync + 'static {
    async fn action(&self, call: &CallRequest) -> Result<(), BranchError>;
    /// Must not fail for business reasons; it is retried until it succeeds (or parked).
    async fn compensate(&self, call: &CallRequest) -> Result<(), BranchError>;
}

/// A two-phase-commit participant.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// Make the work durable-but-undecided, or refuse with [`BranchError::Failure`].
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError>;
    /// Make prepared work permanent. Called again after crashes: must be idempotent. A
    /// resource that can tell (an XA database) answers [`BranchError::NotPrepared`] when
    /// nothing is prepared under the branch's name, and the engine decides whether its own
    /// earlier commit explains that; one that cannot tell answers success.
    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError>;
    /// Undo prepared work; also called when prepare may never have run (presumed abort).
    /// Nothing prepared is success (or [`BranchError::NotPrepared`], which means the same).
    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError>;
    /// The only participant: commit in one step. Defaults to prepare then commit.
    async fn commit_one_phase(&self, call: &CallRequest) -> Result<(), BranchError> {
        match self.prepare(call).await? {
            Vote::Yes => self.commit(call).await,
            Vote::ReadOnly => Ok(()),
        }
    }
}
