//! The `/v1` wire types as a client sends and reads them: request bodies (serialize) and
//! answers (deserialize), field for field the server's (`tandem_server::v1::model` and
//! `::view`, checked by this crate's contract test against a real server).
//!
//! Answers ignore fields they do not know, so a newer server does not break an older
//! client; requests never send a field the caller did not set, so the server's defaults
//! apply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Per-transaction settings; `None` leaves the server's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TxOptions {
    /// Give up (abort / roll back) if not decided this long after creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_to_fail_ms: Option<u64>,
    /// Per-call timeout of branch calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// First retry delay after a transient error (doubles up to `retry_max_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_interval_ms: Option<u64>,
    /// Longest retry delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_max_ms: Option<u64>,
    /// Unsuccessful calls of one branch before the transaction is parked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_limit: Option<u32>,
    /// Saga: run steps concurrently (ordered by `orders`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<bool>,
    /// Saga DAG: `orders[i]` = the 0-based steps that must succeed before step `i`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<Vec<Vec<u16>>>,
    /// Saga: most actions in flight at once when concurrent (0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_max: Option<u16>,
    /// Extra headers sent with every branch call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_headers: Option<BTreeMap<String, String>>,
    /// Msg: ask the sender's `query_prepared` URL after this long in `prepared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_prepared_after_ms: Option<u64>,
}

impl TxOptions {
    fn is_default(&self) -> bool {
        self == &TxOptions::default()
    }
}

/// One saga step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SagaStep {
    pub action: String,
    pub compensate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// `POST /v1/sagas`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SagaRequest {
    pub gid: String,
    pub steps: Vec<SagaStep>,
    #[serde(skip_serializing_if = "TxOptions::is_default")]
    pub options: TxOptions,
    pub wait_result: bool,
}

/// One 2PC participant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Participant {
    pub prepare: String,
    pub commit: String,
    pub rollback: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// `POST /v1/2pc`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TwoPcRequest {
    pub gid: String,
    pub participants: Vec<Participant>,
    #[serde(skip_serializing_if = "TxOptions::is_default")]
    pub options: TxOptions,
    pub wait_result: bool,
}

/// `POST /v1/tcc`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TccBeginRequest {
    pub gid: String,
    #[serde(skip_serializing_if = "TxOptions::is_default")]
    pub options: TxOptions,
}

/// `POST /v1/tcc/{gid}/branches`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TccBranchRequest {
    pub branch_id: String,
    pub confirm: String,
    pub cancel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Body of submit and abort.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FinishRequest {
    pub wait_result: bool,
}

/// One message delivery.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MsgBranch {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// `POST /v1/msgs`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MsgRequest {
    pub gid: String,
    pub branches: Vec<MsgBranch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_prepared: Option<String>,
    #[serde(skip_serializing_if = "TxOptions::is_default")]
    pub options: TxOptions,
}

/// Body of the operator actions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReasonRequest {
    pub reason: String,
}

/// Where a transaction is: the answer of every create, submit and abort.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxOutcome {
    pub gid: String,
    /// saga | 2pc | tcc | msg
    #[serde(rename = "type")]
    pub kind: String,
    /// prepared | submitted | aborting | succeed | failed
    pub status: String,
    /// Why automatic progress stopped, when an operator must act.
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (a heuristic outcome): an operator
    /// must look. Absent from servers before it existed.
    #[serde(default)]
    pub heuristic: Option<String>,
}

impl TxOutcome {
    /// True once the transaction has ended (`succeed` or `failed`).
    pub fn is_final(&self) -> bool {
        is_final(&self.status)
    }

    /// True when it ended `succeed`.
    pub fn succeeded(&self) -> bool {
        self.status == "succeed"
    }
}

/// True for the two final statuses.
pub(crate) fn is_final(status: &str) -> bool {
    matches!(status, "succeed" | "failed")
}

/// One call of a branch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttemptView {
    pub at_ms: u64,
    pub latency_us: u64,
    /// success | read_only | failure | ongoing | error
    pub outcome: String,
    pub code: Option<u16>,
    pub error: Option<String>,
}

/// One (branch id, op) of a transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BranchView {
    pub branch_id: String,
    pub op: String,
    pub url: String,
    pub payload: Value,
    /// prepared | running | succeed | failed | skipped
    pub status: String,
    pub attempts: u32,
    pub next_at_ms: Option<u64>,
    /// The newest attempts, oldest first.
    pub recent: Vec<AttemptView>,
}

/// An operator action or notable event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryView {
    pub at_ms: u64,
    pub what: String,
    pub reason: String,
}

/// A transaction with everything it carries (`GET /v1/transactions/{gid}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TxView {
    pub gid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (a heuristic outcome): an operator
    /// must look. Absent from servers before it existed.
    #[serde(default)]
    pub heuristic: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub query_prepared: Option<String>,
    pub options: TxOptions,
    pub branches: Vec<BranchView>,
    pub history: Vec<HistoryView>,
    pub version: u64,
}

impl TxView {
    /// Its outcome fields.
    pub fn outcome(&self) -> TxOutcome {
        TxOutcome {
            gid: self.gid.clone(),
            kind: self.kind.clone(),
            status: self.status.clone(),
            parked: self.parked.clone(),
            fail_reason: self.fail_reason.clone(),
            heuristic: self.heuristic.clone(),
        }
    }
}

/// One line of a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxSummary {
    pub gid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (a heuristic outcome): an operator
    /// must look. Absent from servers before it existed.
    #[serde(default)]
    pub heuristic: Option<String>,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub branch_count: usize,
}

/// One page of a list, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxPage {
    pub transactions: Vec<TxSummary>,
    /// Pass as [`ListFilter::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and paging of a list (`GET /v1/transactions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// prepared | submitted | aborting | succeed | failed
    pub status: Option<String>,
    /// saga | 2pc | tcc | msg
    pub kind: Option<String>,
    /// Only parked (true) or only not parked (false).
    pub parked: Option<bool>,
    pub gid_prefix: Option<String>,
    pub created_from_ms: Option<u64>,
    pub created_to_ms: Option<u64>,
    pub cursor: Option<String>,
    /// 1..=1000; `None` = the server's default (100).
    pub limit: Option<usize>,
}

impl ListFilter {
    /// The query string (without `?`).
    pub(crate) fn query(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", crate::encode_query(&v)));
            }
        };
        add("status", self.status.clone());
        add("type", self.kind.clone());
        add("parked", self.parked.map(|p| p.to_string()));
        add("gid_prefix", self.gid_prefix.clone());
        add(
            "created_from_ms",
            self.created_from_ms.map(|v| v.to_string()),
        );
        add("created_to_ms", self.created_to_ms.map(|v| v.to_string()));
        add("cursor", self.cursor.clone());
        add("limit", self.limit.map(|v| v.to_string()));
        q.join("&")
    }
}

/// Live counters (`GET /v1/stats`), as the server names them; fields this client does not
/// know are kept in `other`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    #[serde(default)]
    pub active: u64,
    #[serde(default)]
    pub started: u64,
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub parked: u64,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The error body of every 4xx and 5xx.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_send_only_what_was_set() {
        let r = SagaRequest {
            gid: "g".into(),
            steps: vec![SagaStep {
                action: "a".into(),
                compensate: "c".into(),
                payload: None,
            }],
            options: TxOptions::default(),
            wait_result: false,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"gid":"g","steps":[{"action":"a","compensate":"c"}],"wait_result":false})
        );
        let f = ListFilter {
            status: Some("failed".into()),
            gid_prefix: Some("a b".into()),
            limit: Some(5),
            ..ListFilter::default()
        };
        assert_eq!(f.query(), "status=failed&gid_prefix=a%20b&limit=5");
    }
}
