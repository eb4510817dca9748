//! How the engine reaches participants: the [`Transport`] trait, and the in-process
//! transport that calls Rust objects registered by name.
//!
//! A transport turns one branch call into a [`CallOutcome`]; it never decides anything. The
//! engine wraps every call in the per-call timeout and treats a timeout as
//! [`CallOutcome::Error`] — unknown, never failed. The server adds an HTTP transport behind
//! the same trait; a simulation can plug in its own.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tandem_core::{CallOutcome, Op, TxKind};

use crate::participant::{BranchError, Resource, SagaStep, Vote};

/// Everything a participant needs to know about one call. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub gid: Arc<str>,
    pub kind: TxKind,
    pub branch_id: String,
    pub op: Op,
    pub target: String,
    pub payload: Vec<u8>,
    /// Extra headers (server mode) and the trace context.
    pub headers: Arc<Vec<(String, String)>>,
    /// How long the engine waits for the answer (it then counts the call as unknown); a
    /// transport that can tell the participant (a gRPC deadline) passes it on.
    pub timeout: std::time::Duration,
    /// 2PC: the XA transaction id of this branch (`tandem_core::Xid`), built from the
    /// coordinator identity the transaction was created under, its gid, the branch id and the
    /// transaction's nonce. `None` for other protocols.
    pub xid: Option<Arc<str>>,
}

impl CallRequest {
    /// The idempotency key participants should deduplicate on: `gid/branch_id/op`.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.gid, self.branch_id, self.op.as_str())
    }
}

/// One answer, with the protocol-level status code when there is one (HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    pub outcome: CallOutcome,
    pub code: Option<u16>,
}

impl From<CallOutcome> for CallResult {
    fn from(outcome: CallOutcome) -> Self {
        CallResult {
            outcome,
            code: None,
        }
    }
}

/// Calls participants. Implementations must be cheap to call concurrently.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn call(&self, req: CallRequest) -> CallResult;
}

/// An in-process participant, as registered by name.
#[derive(Clone)]
pub enum Local {
    Step(Arc<dyn SagaStep>),
    Resource(Arc<dyn Resource>),
}

/// Calls participants registered in this process by name (the branch target).
#[derive(Clone, Default)]
pub struct InProcess {
    by_name: HashMap<String, Local>,
}

impl InProcess {
    pub fn new() -> Self {
        InProcess::default()
    }
    pub fn insert(&mut self, name: impl Into<String>, p: Local) {
        self.by_name.insert(name.into(), p);
    }
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

fn outcome(r: Result<(), BranchError>) -> CallOutcome {
    match r {
        Ok(()) => CallOutcome::Success,
        Err(BranchError::Failure(m)) => CallOutcome::Failure(m),
        Err(BranchError::Ongoing) => CallOutcome::Ongoing,
        Err(BranchError::Transient(m)) => CallOutcome::Error(m),
        Err(BranchError::NotPrepared) => CallOutcome::NotPrepared,
    }
}

#[async_trait]
impl Transport for InProcess {
    async fn call(&self, req: CallRequest) -> CallResult {
        let Some(p) = self.by_name.get(&req.target) else {
            return CallOutcome::Error(format!(
                "no participant named {:?} in this process",
                req.target
            ))
            .into();
        };
        let out = match (p, req.op) {
            (Local::Step(s), Op::Action) => outcome(s.action(&req).await),
            (Local::Step(s), Op::Compensate) => outcome(s.compensate(&req).await),
            (Local::Resource(r), Op::Prepare) => match r.prepare(&req).await {
                Ok(Vote::Yes) => CallOutcome::Success,
                Ok(Vote::ReadOnly) => CallOutcome::ReadOnly,
                Err(e) => outcome(Err(e)),
            },
            (Local::Resource(r), Op::Commit) => outcome(r.commit(&req).await),
            (Local::Resource(r), Op::Rollback) => outcome(r.rollback(&req).await),
            (Local::Resource(r), Op::CommitOnePhase) => outcome(r.commit_one_phase(&req).await),
            (_, op) => CallOutcome::Error(format!(
                "participant {:?} cannot do {}",
                req.target,
                op.as_str()
            )),
        };
        out.into()
    }
}
