//! What `/v1` answers: transactions, their branches with every remembered attempt, history,
//! list pages and errors. Times are milliseconds since the Unix epoch (`*_ms`); statuses,
//! types and ops use the same spelling as the DTM API (`succeed`, `2pc`, `compensate`).
//!
//! These types also deserialize, so the `tandem` CLI reads the server's answers with them.

use serde::{Deserialize, Serialize};
use tandem_core::{AttemptOutcome, Branch, Transaction, TxKind};
use tandem_engine::Outcome;
use utoipa::ToSchema;

use super::model::TxOptions;

/// Where a transaction is, as answered by the create, submit and abort endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TxOutcome {
    pub gid: String,
    /// saga | 2pc | tcc | msg | workflow
    #[serde(rename = "type")]
    pub kind: String,
    /// prepared | submitted | aborting | succeed | failed
    pub status: String,
    /// Why automatic progress stopped, when an operator must act.
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (a heuristic outcome: e.g. a branch
    /// that was to be committed had been rolled back by someone else). Such a transaction is
    /// parked, never reported succeeded; an operator looks, then stops it.
    #[serde(default)]
    pub heuristic: Option<String>,
}

impl TxOutcome {
    pub fn of(kind: TxKind, o: &Outcome) -> TxOutcome {
        TxOutcome {
            gid: o.gid.clone(),
            kind: kind.as_str().into(),
            status: o.status.as_str().into(),
            parked: o.parked.clone(),
            fail_reason: o.fail_reason.clone(),
            heuristic: o.heuristic.clone(),
        }
    }

    pub fn of_tx(tx: &Transaction) -> TxOutcome {
        TxOutcome {
            gid: tx.gid.clone(),
            kind: tx.kind.as_str().into(),
            status: tx.status.as_str().into(),
            parked: tx.parked.clone(),
            fail_reason: tx.fail_reason.clone(),
            heuristic: tx.heuristic.clone(),
        }
    }
}

/// What a `wait_result` request answers, with HTTP 202, when the transaction has neither
/// ended nor been parked within the server's `wait_result_max_ms`: it goes on in the
/// background; follow it with `GET /v1/transactions/{gid}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TxPending {
    pub gid: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it is now: prepared | submitted | aborting.
    pub status: String,
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// For people: that it is not finished, how long was waited, where to follow it.
    pub message: String,
    /// How long the request waited, in milliseconds.
    pub waited_ms: u64,
    /// The newest error of a branch call, with the branch and URL, e.g.
    /// `step 01 action http://127.0.0.1:8081/debit: connection refused to 127.0.0.1:8081`.
    pub last_error: Option<String>,
    /// The transaction as it is now: every branch with its recent attempts.
    pub transaction: TxView,
}

impl TxPending {
    pub fn of(tx: &Transaction, waited: std::time::Duration) -> TxPending {
        TxPending {
            gid: tx.gid.clone(),
            kind: tx.kind.as_str().into(),
            status: tx.status.as_str().into(),
            parked: tx.parked.clone(),
            fail_reason: tx.fail_reason.clone(),
            message: format!(
                "not finished after waiting {} ms (wait_result_max_ms); it goes on in the \
                 background: GET /v1/transactions/{} shows where it is",
                waited.as_millis(),
                tx.gid
            ),
            waited_ms: waited.as_millis() as u64,
            last_error: last_error(tx),
            transaction: TxView::from(tx),
        }
    }
}

/// The newest branch-call error of `tx`, naming the branch and its URL.
pub fn last_error(tx: &Transaction) -> Option<String> {
    tx.branches
        .iter()
        .filter_map(|b| {
            let a = b.recent.last()?;
            let e = a.error.as_ref()?;
            let verb = if tx.kind == TxKind::Saga {
                "step "
            } else {
                "branch "
            };
            Some((
                a.at,
                format!("{verb}{} {} {}: {e}", b.branch_id, b.op.as_str(), b.target),
            ))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, e)| e)
}

/// One call of a branch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AttemptView {
    pub at_ms: u64,
    pub latency_us: u64,
    /// success | read_only | failure | ongoing | error | not_prepared
    pub outcome: String,
    /// HTTP status code of the answer, when there was one.
    pub code: Option<u16>,
    pub error: Option<String>,
}

/// One (branch id, op) of a transaction.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BranchView {
    pub branch_id: String,
    /// action | compensate | confirm | cancel | prepare | commit | rollback |
    /// commit_one_phase | msg | query_prepared | workflow (a workflow's callback)
    pub op: String,
    pub url: String,
    /// The JSON body sent (a string when it is not JSON; null when empty).
    pub payload: serde_json::Value,
    /// prepared (not called yet) | running | succeed | failed | skipped | unknown (called,
    /// never answered, and the transaction ended without calling it again, e.g. it was
    /// force-stopped: whether its effect happened is not known)
    pub status: String,
    /// Calls made so far.
    pub attempts: u32,
    /// When the next call is due.
    pub next_at_ms: Option<u64>,
    /// The newest attempts, oldest first (at most 8).
    pub recent: Vec<AttemptView>,
}

/// An operator action or notable event, with its reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct HistoryView {
    pub at_ms: u64,
    pub what: String,
    pub reason: String,
}

/// A transaction with everything it carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TxView {
    pub gid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (a heuristic outcome: e.g. a branch
    /// that was to be committed had been rolled back by someone else). Such a transaction is
    /// parked, never reported succeeded; an operator looks, then stops it.
    #[serde(default)]
    pub heuristic: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub query_prepared: Option<String>,
    pub options: TxOptions,
    pub branches: Vec<BranchView>,
    pub history: Vec<HistoryView>,
    /// Grows with every durable change.
    pub version: u64,
    /// Workflow: the result its client finished it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// One line of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TxSummary {
    pub gid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (a heuristic outcome: e.g. a branch
    /// that was to be committed had been rolled back by someone else). Such a transaction is
    /// parked, never reported succeeded; an operator looks, then stops it.
    #[serde(default)]
    pub heuristic: Option<String>,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub branch_count: usize,
}

/// One page of `GET /v1/transactions`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TxPage {
    pub transactions: Vec<TxSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The error body of every 4xx and 5xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: e.g. `malformed_json`, `invalid_body`, `invalid_gid`,
    /// `gid_exists`, `body_too_large`, `too_many_branches`, `invalid_url`,
    /// `host_not_allowed`, `not_found`, `wrong_type`, `wrong_status`, `busy`.
    pub code: String,
    /// For people: what was wrong.
    pub message: String,
}

pub fn outcome_name(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Success => "success",
        AttemptOutcome::ReadOnly => "read_only",
        AttemptOutcome::Failure => "failure",
        AttemptOutcome::Ongoing => "ongoing",
        AttemptOutcome::Error => "error",
        AttemptOutcome::NotPrepared => "not_prepared",
    }
}

/// A payload as JSON when it is JSON, as a string otherwise, null when empty.
pub fn payload_value(bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into()))
}

fn branch_view(b: &Branch) -> BranchView {
    BranchView {
        branch_id: b.branch_id.clone(),
        op: b.op.as_str().into(),
        url: b.target.clone(),
        payload: payload_value(&b.payload),
        status: b.status.as_str().into(),
        attempts: b.attempts,
        next_at_ms: b.next_at.map(|t| t.0),
        recent: b
            .recent
            .iter()
            .map(|a| AttemptView {
                at_ms: a.at.0,
                latency_us: a.latency_us,
                outcome: outcome_name(a.outcome).into(),
                code: a.code,
                error: a.error.clone(),
            })
            .collect(),
    }
}

impl From<&Transaction> for TxView {
    fn from(tx: &Transaction) -> TxView {
        TxView {
            gid: tx.gid.clone(),
            kind: tx.kind.as_str().into(),
            status: tx.status.as_str().into(),
            parked: tx.parked.clone(),
            fail_reason: tx.fail_reason.clone(),
            heuristic: tx.heuristic.clone(),
            created_at_ms: tx.created_at.0,
            updated_at_ms: tx.updated_at.0,
            finished_at_ms: tx.finished_at.map(|t| t.0),
            query_prepared: tx.query_prepared.clone(),
            options: TxOptions::from(&tx.options),
            branches: tx.branches.iter().map(branch_view).collect(),
            history: tx
                .history
                .iter()
                .map(|h| HistoryView {
                    at_ms: h.at.0,
                    what: h.what.clone(),
                    reason: h.reason.clone(),
                })
                .collect(),
            version: tx.version,
            result: tx.result.clone(),
        }
    }
}

impl From<&Transaction> for TxSummary {
    fn from(tx: &Transaction) -> TxSummary {
        TxSummary {
            gid: tx.gid.clone(),
            kind: tx.kind.as_str().into(),
            status: tx.status.as_str().into(),
            parked: tx.parked.clone(),
            fail_reason: tx.fail_reason.clone(),
            heuristic: tx.heuristic.clone(),
            created_at_ms: tx.created_at.0,
            finished_at_ms: tx.finished_at.map(|t| t.0),
            branch_count: tx.branches.len(),
        }
    }
}

/// One recorded step of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkflowStepView {
    pub branch_id: String,
    pub op: String,
    /// succeed | failed
    pub status: String,
    /// What the step returned (JSON when it is JSON, else a string; null when empty).
    pub result: serde_json::Value,
}

/// A workflow and every step recorded so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkflowView {
    pub gid: String,
    /// prepared | succeed | failed
    pub status: String,
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// The result the client finished it with (DTM clients send base64 text).
    pub result: Option<String>,
    pub steps: Vec<WorkflowStepView>,
}

impl From<&Transaction> for WorkflowView {
    fn from(tx: &Transaction) -> WorkflowView {
        WorkflowView {
            gid: tx.gid.clone(),
            status: tx.status.as_str().into(),
            parked: tx.parked.clone(),
            fail_reason: tx.fail_reason.clone(),
            result: tx.result.clone(),
            steps: crate::workflow::steps(tx)
                .map(|b| WorkflowStepView {
                    branch_id: b.branch_id.clone(),
                    op: b.op.as_str().into(),
                    status: b.status.as_str().into(),
                    result: payload_value(&b.payload),
                })
                .collect(),
        }
    }
}
