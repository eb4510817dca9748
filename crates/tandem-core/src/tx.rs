//! The durable shape of a transaction: what the log stores and what every API shows.
//!
//! A [`Transaction`] is written whole (a snapshot) each time it changes in a way that must
//! survive a crash; the newest snapshot is the truth. Branches follow DTM's flat layout: one
//! [`Branch`] per (branch id, op) — a saga step is two branches, `action` and `compensate`,
//! sharing a branch id — so the same structure serves every protocol and maps one-to-one onto
//! DTM's `query` answer.
//!
//! Invariants (checked by [`Transaction::check`], which the codec runs on decode):
//! - a final status ([`TxStatus::is_final`]) has `finished_at` set and no branch in flight;
//! - `version` grows by one with every snapshot the machine asks to persist;
//! - at most [`ATTEMPTS_KEPT`] attempts and [`HISTORY_KEPT`] history entries are kept.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The core never reads a clock; callers pass `now`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
    pub fn as_millis(self) -> u64 {
        self.0
    }
}

/// Attempts remembered per branch (the newest); `Branch::attempts` still counts them all.
pub const ATTEMPTS_KEPT: usize = 8;
/// History entries remembered per transaction (the newest).
pub const HISTORY_KEPT: usize = 32;

/// Which protocol a transaction follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxKind {
    Saga,
    /// Two-phase commit: the coordinator prepares every participant itself.
    TwoPc,
    /// Try/confirm/cancel; also DTM's XA mode, where participants prepare themselves and
    /// register `commit`/`rollback` branches.
    Tcc,
    Msg,
    /// DTM's workflow: the client runs the steps and records each one; the coordinator
    /// keeps the record and resumes an unfinished workflow through its callback.
    Workflow,
}

impl TxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::Saga => "saga",
            TxKind::TwoPc => "2pc",
            TxKind::Tcc => "tcc",
            TxKind::Msg => "msg",
            TxKind::Workflow => "workflow",
        }
    }
    pub fn parse(s: &str) -> Option<TxKind> {
        Some(match s {
            "saga" => TxKind::Saga,
            "2pc" | "xa" => TxKind::TwoPc,
            "tcc" => TxKind::Tcc,
            "msg" => TxKind::Msg,
            "workflow" => TxKind::Workflow,
            _ => return None,
        })
    }
}

/// Where a transaction is in its life. Parking is a flag beside it, not a status.
///
/// ```text
///  prepared ──► submitted ──► succeeded
///      │            │
///      └──────► aborting ──► failed
/// ```
/// - saga: created `submitted`; a failed action moves it to `aborting` (compensating).
/// - 2pc: `prepared` while votes are collected; `submitted` is the durable commit decision.
/// - tcc: `prepared` while branches register; `submitted` confirms, `aborting` cancels.
/// - msg: `prepared` until the sender submits (or the query-prepared check says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxStatus {
    Prepared,
    Submitted,
    Aborting,
    Succeeded,
    Failed,
}

impl TxStatus {
    pub fn is_final(self) -> bool {
        matches!(self, TxStatus::Succeeded | TxStatus::Failed)
    }
    /// DTM's spelling, used on every wire format.
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Prepared => "prepared",
            TxStatus::Submitted => "submitted",
            TxStatus::Aborting => "aborting",
            TxStatus::Succeeded => "succeed",
            TxStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<TxStatus> {
        Some(match s {
            "prepared" => TxStatus::Prepared,
            "submitted" => TxStatus::Submitted,
            "aborting" => TxStatus::Aborting,
            "succeed" | "succeeded" => TxStatus::Succeeded,
            "failed" => TxStatus::Failed,
            _ => return None,
        })
    }
}

/// The operation a branch performs on its participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Action,
    Compensate,
    Try,
    Confirm,
    Cancel,
    Prepare,
    Commit,
    Rollback,
    /// Two-phase commit with a single participant: commit in one round trip.
    CommitOnePhase,
    /// A transactional message's delivery.
    Msg,
    /// The message sender's query-prepared check.
    QueryPrepared,
    /// A workflow's callback, which resumes it (on the wire the op is the workflow's name).
    Workflow,
}

impl Op {
    /// DTM's spelling (the `op` query parameter of a branch call).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Action => "action",
            Op::Compensate => "compensate",
            Op::Try => "try",
            Op::Confirm => "confirm",
            Op::Cancel => "cancel",
            Op::Prepare => "prepare",
            Op::Commit => "commit",
            Op::Rollback => "rollback",
            Op::CommitOnePhase => "commit_one_phase",
            Op::Msg => "msg",
            Op::QueryPrepared => "query_prepared",
            Op::Workflow => "workflow",
        }
    }

    /// The op named `s` (DTM's spelling), for ops a client may name: a workflow records
    /// steps by op name.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "action" => Op::Action,
            "compensate" => Op::Compensate,
            "try" => Op::Try,
            "confirm" => Op::Confirm,
            "cancel" => Op::Cancel,
            "prepare" => Op::Prepare,
            "commit" => Op::Commit,
            "rollback" => Op::Rollback,
            "msg" => Op::Msg,
            _ => return None,
        })
    }
}

/// Where one branch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BranchStatus {
    /// Not called yet (or its calls are to be forgotten: see `Skipped`).
    Pending,
    /// Called at least once, no final answer yet: the effect may or may not have happened.
    Running,
    Succeeded,
    /// The participant answered with a business failure (final for this op).
    Failed,
    /// Never needed: e.g. the compensation of a step whose action never started, or phase 2
    /// of a participant that voted read-only.
    Skipped,
    /// Called, never answered, and no further call will be made because the transaction
    /// ended (force-stopped, or its action was compensated instead): whether its effect
    /// happened is not known. Only a final transaction has such branches.
    Unknown,
}

impl BranchStatus {
    pub fn is_done(self) -> bool {
        matches!(
            self,
            BranchStatus::Succeeded
                | BranchStatus::Failed
                | BranchStatus::Skipped
                | BranchStatus::Unknown
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BranchStatus::Pending => "prepared",
            BranchStatus::Running => "running",
            BranchStatus::Succeeded => "succeed",
            BranchStatus::Failed => "failed",
            BranchStatus::Skipped => "skipped",
            BranchStatus::Unknown => "unknown",
        }
    }
}

/// How one call ended, as kept in a branch's attempt list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Success,
    /// 2PC prepare answered "nothing to commit".
    ReadOnly,
    Failure,
    Ongoing,
    /// Transport error, timeout or unexpected answer: outcome unknown, retried.
    Error,
    /// An XA resource had no prepared transaction under the branch's xid.
    NotPrepared,
}

/// One call of a branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Timestamp,
    pub latency_us: u64,
    pub outcome: AttemptOutcome,
    /// HTTP status code when the branch is called over HTTP.
    pub code: Option<u16>,
    pub error: Option<String>,
}

/// One (branch id, op) of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub branch_id: String,
    pub op: Op,
    /// A URL (server mode) or the name of an in-process participant (library mode).
    pub target: String,
    /// The body of every call of this branch. Shared (not copied) by a step's or a
    /// participant's ops, in memory and in the log.
    pub payload: Arc<[u8]>,
    pub status: BranchStatus,
    /// Calls made so far, over the transaction's whole life.
    pub attempts: u32,
    /// Unsuccessful answers (error or `ONGOING`) since the last success or operator retry;
    /// the transaction parks when it reaches `Options::retry_limit`.
    pub streak: u32,
    /// When to call again after a transient error or an `ONGOING` answer.
    pub next_at: Option<Timestamp>,
    /// The newest attempts, oldest first, at most [`ATTEMPTS_KEPT`].
    pub recent: Vec<Attempt>,
    /// Not persisted: a call is in flight in this process right now.
    #[serde(skip)]
    pub in_flight: bool,
    /// Not persisted: set when the transaction was resumed from the log with this branch
    /// unfinished, so a call of it may have reached the participant although the log does
    /// not say so (its record was not forced). Phase 2 uses it to tell "already committed,
    /// the answer was lost" from "someone else rolled it back".
    #[serde(skip)]
    pub uncertain: bool,
}

impl Branch {
    pub fn new(
        branch_id: impl Into<String>,
        op: Op,
        target: impl Into<String>,
        payload: impl Into<Arc<[u8]>>,
    ) -> Branch {
        Branch {
            branch_id: branch_id.into(),
            op,
            target: target.into(),
            payload: payload.into(),
            status: BranchStatus::Pending,
            attempts: 0,
            streak: 0,
            next_at: None,
            recent: Vec::new(),
            in_flight: false,
            uncertain: false,
        }
    }

    /// Records an attempt, keeping only the newest [`ATTEMPTS_KEPT`].
    pub fn record_attempt(&mut self, attempt: Attempt) {
        if self.recent.len() >= ATTEMPTS_KEPT {
            self.recent.remove(0);
        }
        self.recent.push(attempt);
    }
}

/// Per-transaction settings; every field has a default, and DTM's names map onto them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Give up (abort/roll back) if not decided within this long after creation.
    pub timeout_to_fail_ms: Option<u64>,
    /// Per-call timeout; `None` means the engine's default.
    pub request_timeout_ms: Option<u64>,
    /// First retry delay; doubles per attempt (with jitter) up to `retry_max_ms`. Also the
    /// fixed interval for `ONGOING` answers.
    pub retry_interval_ms: u64,
    pub retry_max_ms: u64,
    /// Calls per branch before the transaction is parked for an operator.
    pub retry_limit: u32,
    /// Saga: run steps concurrently, ordered by `orders`.
    pub concurrent: bool,
    /// Saga DAG: `orders[i]` lists the steps that must succeed before step `i` starts.
    /// Empty with `concurrent = false` means sequential.
    pub orders: Vec<Vec<u16>>,
    /// Saga: most actions in flight at once when concurrent (0 = no limit beyond the DAG).
    pub concurrency_max: u16,
    /// The caller waits for the final outcome before being answered.
    pub wait_result: bool,
    /// Extra headers passed through on every branch call.
    pub branch_headers: Vec<(String, String)>,
    /// Msg: after this long in `prepared`, ask the sender's query-prepared URL.
    pub query_prepared_after_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout_to_fail_ms: None,
            request_timeout_ms: None,
            retry_interval_ms: 1_000,
            retry_max_ms: 60_000,
            retry_limit: 30,
            concurrent: false,
            orders: Vec::new(),
            concurrency_max: 0,
            wait_result: false,
            branch_headers: Vec::new(),
            query_prepared_after_ms: 10_000,
        }
    }
}

/// Something notable that happened to a transaction: operator actions (with their reason),
/// parking, timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub what: String,
    pub reason: String,
}

/// A transaction: its identity, where it is, and everything it must still do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub gid: String,
    pub kind: TxKind,
    pub status: TxStatus,
    /// Set when automatic progress stopped and an operator must act; the reason says why.
    pub parked: Option<String>,
    pub branches: Vec<Branch>,
    pub options: Options,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// When the transaction entered its current status, or an operator last retried it: the
    /// clock of the "stuck in one status" check, kept with the transaction so that it counts
    /// while the transaction waits in the store.
    pub status_since: Timestamp,
    /// When the engine must next feed [`crate::Event::Tick`]: the earliest retry or timeout.
    pub next_wake: Option<Timestamp>,
    /// Msg: the sender's query-prepared target; free-form for other kinds (DTM custom data).
    pub query_prepared: Option<String>,
    pub custom_data: Option<String>,
    pub history: Vec<HistoryEntry>,
    /// Grows by one with every snapshot persisted; stores keep the highest.
    pub version: u64,
    /// Why the transaction failed, when it did (the first business failure or the timeout).
    pub fail_reason: Option<String>,
    /// Workflow: the result its client reported when it finished (DTM keeps it base64).
    /// Encoded after the rest of the record (see [`crate::codec`]).
    #[serde(skip)]
    pub result: Option<String>,
    /// The coordinator whose log decides this transaction, as it was when the transaction
    /// was created (its xids carry it). `None` for transactions written before identities.
    pub origin: Option<crate::Identity>,
    /// Random per transaction: tells this attempt of the gid from an earlier one whose record
    /// was lost (see [`crate::identity`]). Part of every xid.
    pub nonce: u32,
    /// Set when a participant's state disagrees with the log (e.g. a branch the log decided to
    /// commit is no longer prepared and nothing of ours could have committed it): a heuristic
    /// outcome. The transaction cannot end by itself; it stays parked until an operator stops
    /// it, and the flag stays on its record.
    pub heuristic: Option<String>,
    /// 2PC: every participant can be asked for its prepared transactions after a crash (XA
    /// databases under in-doubt recovery), so the participant list needs no forced write
    /// before the first prepare. Not persisted: it only matters at `Start`.
    #[serde(skip)]
    pub participants_listable: bool,
}

impl Transaction {
    /// A new transaction in its initial status for `kind`, with no branches.
    pub fn new(gid: impl Into<String>, kind: TxKind, options: Options, now: Timestamp) -> Self {
        let status = match kind {
            TxKind::Saga => TxStatus::Submitted,
            TxKind::TwoPc | TxKind::Tcc | TxKind::Msg | TxKind::Workflow => TxStatus::Prepared,
        };
        Transaction {
            gid: gid.into(),
            kind,
            status,
            parked: None,
            branches: Vec::new(),
            options,
            created_at: now,
            updated_at: now,
            finished_at: None,
            status_since: now,
            next_wake: None,
            query_prepared: None,
            custom_data: None,
            history: Vec::new(),
            version: 0,
            fail_reason: None,
            result: None,
            origin: None,
            nonce: 0,
            heuristic: None,
            participants_listable: false,
        }
    }

    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// Appends to the history, keeping the newest [`HISTORY_KEPT`].
    pub fn note(&mut self, at: Timestamp, what: impl Into<String>, reason: impl Into<String>) {
        if self.history.len() >= HISTORY_KEPT {
            self.history.remove(0);
        }
        self.history.push(HistoryEntry {
            at,
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// Index of the branch with this id and op.
    pub fn find(&self, branch_id: &str, op: Op) -> Option<usize> {
        self.branches
            .iter()
            .position(|b| b.op == op && b.branch_id == branch_id)
    }

    /// Structural invariants that must hold for every snapshot written or read.
    pub fn check(&self) -> Result<(), String> {
        if self.status.is_final() {
            if self.finished_at.is_none() {
                return Err(format!("{}: final status without finished_at", self.gid));
            }
            if self.branches.iter().any(|b| b.in_flight) {
                return Err(format!("{}: final status with a call in flight", self.gid));
            }
        }
        if self.history.len() > HISTORY_KEPT {
            return Err(format!(
                "{}: {} history entries",
                self.gid,
                self.history.len()
            ));
        }
        if let Some(b) = self
            .branches
            .iter()
            .find(|b| b.recent.len() > ATTEMPTS_KEPT)
        {
            return Err(format!(
                "{}: branch {} keeps too many attempts",
                self.gid, b.branch_id
            ));
        }
        Ok(())
    }
}
