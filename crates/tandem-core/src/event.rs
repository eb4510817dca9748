//! What happens to a transaction ([`Event`]) and what it asks the engine to do ([`Command`]).
//!
//! **Ordering rule.** The engine executes a command list in order. A `Persist { sync: true }`
//! must be durable (acknowledged by the store) before any later command of the same list is
//! executed — that is how "log the decision, then call phase 2" and "log the saga, then call
//! its first action" are expressed. A `Persist { sync: false }` is queued to the log in order
//! but not waited for: it rides along with the next batch, and if it is lost in a crash the
//! state it described is recomputed by calling again (at-least-once calls).

use crate::tx::{Op, Timestamp, Transaction, TxKind, TxStatus};

/// A participant's answer to one call, as the engine classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// Done (2xx). For a 2PC prepare: voted yes.
    Success,
    /// 2PC prepare only: nothing to commit, skip phase 2 for this participant.
    ReadOnly,
    /// Business failure (409 / `FAILURE`): final for this op.
    Failure(String),
    /// Not yet (425 / `ONGOING`): ask again after the fixed interval.
    Ongoing,
    /// Timeout, refused connection, 5xx, anything unexpected: unknown, retried with backoff.
    Error(String),
    /// 2PC phase 2 on an XA resource: no prepared transaction under the branch's xid
    /// (PostgreSQL SQLSTATE 42704, MySQL `XAER_NOTA`). For a rollback that is success; for a
    /// commit it is success only if an earlier commit of ours may have done it, and a
    /// heuristic outcome otherwise (see [`crate::twopc`]).
    NotPrepared,
}

/// Something that happened to a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The transaction was just created (saga, 2PC) or, for TCC and msg, prepared: persist it
    /// and start whatever comes first.
    Start,
    /// The process restarted and loaded this transaction from the log: re-issue every call
    /// whose answer was not logged.
    Resume,
    /// A call ended.
    Answer {
        branch: usize,
        outcome: CallOutcome,
        at: Timestamp,
        latency_us: u64,
        code: Option<u16>,
    },
    /// A time the transaction asked for ([`Command::Wake`]) has come.
    Tick,
    /// TCC / XA: the application registered a branch (its try or local prepare is its own
    /// business). `ops` are the ops the coordinator will call later, e.g. confirm + cancel.
    /// Build it with [`crate::spec::registration`], which checks it against `limits`.
    Register {
        branch_id: String,
        ops: Vec<(Op, String)>,
        payload: Vec<u8>,
        limits: crate::spec::Limits,
    },
    /// Workflow: the client ran one step (`op` of `branch_id`) and reports how it ended
    /// (`Succeeded` or `Failed`) with the step's result.
    Record {
        branch_id: String,
        op: Op,
        status: crate::tx::BranchStatus,
        payload: Vec<u8>,
        limits: crate::spec::Limits,
    },
    /// Workflow: the client finished the workflow with this status (`Succeeded` or
    /// `Failed`), rollback reason and result.
    Conclude {
        status: TxStatus,
        reason: String,
        result: String,
    },
    /// TCC / msg / XA: the application asks to commit.
    Submit,
    /// TCC / XA: the application asks to roll back.
    Abort,
    /// Operator: clear the parked flag and retry every unfinished branch now.
    Retry { reason: String },
    /// Operator: stop trying; the transaction ends `failed` where the protocol allows it.
    Stop { reason: String },
    /// The engine: progress stalled (e.g. stuck in one status past a threshold); park the
    /// transaction with `reason` until an operator retries or stops it.
    Park { reason: String },
}

/// An effect the engine must carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Write the transaction's current snapshot to the log (see the module doc for `sync`).
    Persist { sync: bool },
    /// Call `branches[branch]` (its op, target and payload). The engine feeds the answer
    /// back as [`Event::Answer`].
    Call { branch: usize },
    /// Feed [`Event::Tick`] at this time (replaces any earlier wake-up).
    Wake { at: Timestamp },
    /// Progress stopped; an operator must act. Already persisted by an earlier command.
    Park { reason: String },
    /// The transaction reached a final status; tell whoever waits.
    Done { status: TxStatus },
}

/// Why an event was refused (a client's mistake, or a race the caller must hear about).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("transaction {gid} is {status}; {what} is not allowed now")]
    WrongStatus {
        gid: String,
        status: &'static str,
        what: &'static str,
    },
    /// An operator action (retry, stop) on a transaction that has already ended.
    #[error("transaction {gid} has already ended ({status}); {what} would change nothing")]
    Ended {
        gid: String,
        status: &'static str,
        what: &'static str,
    },
    #[error("{kind} transactions do not accept {what}")]
    WrongKind {
        kind: &'static str,
        what: &'static str,
    },
    #[error("branch {branch_id}/{op} is already registered with different content")]
    BranchConflict { branch_id: String, op: &'static str },
    /// The event would break a rule of the transaction's shape (e.g. a registration past
    /// the branch limit).
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error("invalid transaction: {0}")]
    Invalid(String),
}

impl ApplyError {
    pub(crate) fn wrong_status(tx: &Transaction, what: &'static str) -> ApplyError {
        ApplyError::WrongStatus {
            gid: tx.gid.clone(),
            status: tx.status.as_str(),
            what,
        }
    }
}

impl Transaction {
    /// Feeds one event to the transaction's protocol machine and returns what to do.
    ///
    /// Events for a final transaction change nothing and return no commands (an ended
    /// transaction never changes), except that client requests that would need a different
    /// ending are refused, and so are operator actions (they could only mislead: a retry
    /// or stop of an ended transaction does nothing).
    pub fn apply(&mut self, event: Event, now: Timestamp) -> Result<Vec<Command>, ApplyError> {
        if self.is_final() {
            return match event {
                Event::Submit if self.status == TxStatus::Succeeded => Ok(Vec::new()),
                Event::Abort if self.status == TxStatus::Failed => Ok(Vec::new()),
                Event::Conclude { status, .. } if status == self.status => Ok(Vec::new()),
                Event::Submit
                | Event::Abort
                | Event::Register { .. }
                | Event::Record { .. }
                | Event::Conclude { .. } => Err(ApplyError::wrong_status(self, event_name(&event))),
                Event::Retry { .. } | Event::Stop { .. } => Err(ApplyError::Ended {
                    gid: self.gid.clone(),
                    status: self.status.as_str(),
                    what: event_name(&event),
                }),
                _ => Ok(Vec::new()),
            };
        }
        if let Event::Answer { branch, .. } = &event {
            if *branch >= self.branches.len() {
                return Err(ApplyError::Invalid(format!("no branch {branch}")));
            }
        }
        let mut out = Vec::new();
        let status = self.status;
        match self.kind {
            TxKind::Saga => crate::saga::apply(self, event, now, &mut out)?,
            TxKind::TwoPc => crate::twopc::apply(self, event, now, &mut out)?,
            TxKind::Tcc => crate::tcc::apply(self, event, now, &mut out)?,
            TxKind::Msg => crate::msg::apply(self, event, now, &mut out)?,
            TxKind::Workflow => crate::workflow::apply(self, event, now, &mut out)?,
        }
        if self.status != status {
            self.status_since = now;
        }
        Ok(out)
    }
}

pub(crate) fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Start => "start",
        Event::Resume => "resume",
        Event::Answer { .. } => "answer",
        Event::Tick => "tick",
        Event::Register { .. } => "registerBranch",
        Event::Record { .. } => "registerBranch (workflow)",
        Event::Conclude { .. } => "submit (workflow)",
        Event::Submit => "submit",
        Event::Abort => "abort",
        Event::Retry { .. } => "retry",
        Event::Stop { .. } => "stop",
        Event::Park { .. } => "park",
    }
}
