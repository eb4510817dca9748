//! What clients send to `/v1`: one request type per operation, each documented in the
//! OpenAPI document through `ToSchema`.
//!
//! Every request type denies unknown fields, so a misspelt option (`wait_reslt`) is a 422
//! naming it rather than a silently ignored setting. Payloads are any JSON value and are
//! sent to the branch as its request body; absent or `null` means no body (the branch is
//! then called with GET, DTM's convention).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Per-transaction settings; every field is optional and has the default shown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TxOptions {
    /// Give up (abort / roll back) if not decided this long after creation.
    pub timeout_to_fail_ms: Option<u64>,
    /// Per-call timeout; absent means the server's `request_timeout`.
    pub request_timeout_ms: Option<u64>,
    /// First retry delay after a transient error (doubles up to `retry_max_ms`); also the
    /// fixed interval after an `ONGOING` answer. Default 1000.
    pub retry_interval_ms: Option<u64>,
    /// Longest retry delay. Default 60000.
    pub retry_max_ms: Option<u64>,
    /// Unsuccessful calls of one branch before the transaction is parked for an operator.
    /// Default 30.
    pub retry_limit: Option<u32>,
    /// Saga: run steps concurrently, ordered by `orders`. Defaults to true when `orders`
    /// is given, false otherwise.
    pub concurrent: Option<bool>,
    /// Saga DAG: `orders[i]` lists the (0-based) steps that must succeed before step `i`
    /// starts.
    pub orders: Option<Vec<Vec<u16>>>,
    /// Saga: most actions in flight at once when concurrent (0 = no limit).
    pub concurrency_max: Option<u16>,
    /// Extra headers sent with every branch call.
    pub branch_headers: Option<BTreeMap<String, String>>,
    /// Msg: ask the sender's `query_prepared` URL after this long in `prepared`.
    /// Default 10000.
    pub query_prepared_after_ms: Option<u64>,
}

/// One saga step: its action and the compensation that undoes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaStepIn {
    /// URL called (op `action`) to do the step.
    pub action: String,
    /// URL called (op `compensate`) to undo it if the saga aborts after it started.
    pub compensate: String,
    /// JSON body of both calls.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// `POST /v1/sagas`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaRequest {
    /// Caller-chosen id (`[A-Za-z0-9-_.:@]`, 1..=128 bytes); generated when absent.
    #[serde(default)]
    pub gid: Option<String>,
    /// The steps, run in order unless `options.concurrent`/`options.orders` say otherwise.
    pub steps: Vec<SagaStepIn>,
    #[serde(default)]
    pub options: TxOptions,
    /// Answer only when the saga has ended (or was parked).
    #[serde(default)]
    pub wait_result: bool,
}

/// One 2PC participant: the three URLs the coordinator calls.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantIn {
    /// Phase 1: prepare (2xx = yes, 409/`FAILURE` = no).
    pub prepare: String,
    /// Phase 2 after a commit decision.
    pub commit: String,
    /// Phase 2 after an abort decision.
    pub rollback: String,
    /// JSON body of every call.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// `POST /v1/2pc`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoPcRequest {
    #[serde(default)]
    pub gid: Option<String>,
    pub participants: Vec<ParticipantIn>,
    #[serde(default)]
    pub options: TxOptions,
    #[serde(default)]
    pub wait_result: bool,
}

/// `POST /v1/tcc`: open a TCC transaction; branches are registered next.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TccBeginRequest {
    #[serde(default)]
    pub gid: Option<String>,
    #[serde(default)]
    pub options: TxOptions,
}

/// `POST /v1/tcc/{gid}/branches`: register a branch before calling its try.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TccBranchRequest {
    /// Unique within the transaction (`[A-Za-z0-9-_.]`, 1..=64 bytes).
    pub branch_id: String,
    /// URL called (op `confirm`) after submit.
    pub confirm: String,
    /// URL called (op `cancel`) after abort.
    pub cancel: String,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// Body of submit and abort (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    /// Answer only when the transaction has ended (or was parked).
    #[serde(default)]
    pub wait_result: bool,
}

/// One message delivery.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsgBranchIn {
    /// URL called (op `action`) to deliver the message.
    pub url: String,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// `POST /v1/msgs`: prepare a transactional message (then submit it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsgRequest {
    #[serde(default)]
    pub gid: Option<String>,
    /// The deliveries, made after submit.
    pub branches: Vec<MsgBranchIn>,
    /// The sender's check, asked when the message stays prepared longer than
    /// `options.query_prepared_after_ms`: 2xx = submit it, 409/`FAILURE` = drop it,
    /// 425/`ONGOING` = ask again later.
    #[serde(default)]
    pub query_prepared: Option<String>,
    #[serde(default)]
    pub options: TxOptions,
}

/// Body of the operator actions.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why (required, 1..=1000 bytes); recorded in the transaction's history.
    pub reason: String,
}

/// Filters and paging of `GET /v1/transactions`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// prepared | submitted | aborting | succeed | failed
    pub status: Option<String>,
    /// saga | 2pc | tcc | msg | workflow
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only parked (true) or only not parked (false) transactions.
    pub parked: Option<bool>,
    /// Only gids starting with this.
    pub gid_prefix: Option<String>,
    /// Created at or after (ms since the epoch).
    pub created_from_ms: Option<u64>,
    /// Created before (ms since the epoch).
    pub created_to_ms: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<usize>,
}

/// `POST /v1/workflows`: a workflow whose client runs the steps and records them here.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// Caller-chosen id; generated when absent. An existing workflow's gid answers that
    /// workflow and its recorded steps (how a restarted client resumes).
    #[serde(default)]
    pub gid: Option<String>,
    /// The workflow's name (1..=128 bytes); its callback is called with it as `op`.
    pub name: String,
    /// The workflow's input: any JSON, sent to the callback as its body.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// Called to resume the workflow when it is still unfinished
    /// `options.query_prepared_after_ms` after creation, then again with backoff until the
    /// client finishes it: an http(s) URL (POST, query `gid`, `trans_type=workflow`,
    /// `branch_id=00`, `op=<name>`) or a gRPC method (`workflow.WorkflowData`). Absent:
    /// never resumed by the coordinator.
    #[serde(default)]
    pub callback: Option<String>,
    #[serde(default)]
    pub options: TxOptions,
}

/// `POST /v1/workflows/{gid}/steps`: one step of the workflow ended.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStepRequest {
    /// The step's id (1..=64 of `[A-Za-z0-9-_.]`), e.g. "01".
    pub branch_id: String,
    /// action | compensate | commit | rollback | try | confirm | cancel | prepare | msg
    pub op: String,
    /// succeed | failed
    pub status: String,
    /// What the step returned (any JSON), answered back when the workflow is resumed.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

/// `POST /v1/workflows/{gid}/finish`: the client ended the workflow.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFinishRequest {
    /// succeed | failed
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// The workflow's result (any JSON; kept as its JSON text).
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}
