//! What DTM clients send, parsed strictly enough to refuse mistakes with a 4xx and loosely
//! enough to accept what real clients send: every field may be missing or `null`, unknown
//! fields are ignored (dtmcli-py sends `passthrough_headers`, `protocol: null`, …).
//!
//! Units follow DTM: `timeout_to_fail`, `request_timeout` and `retry_interval` are seconds.
//! A DTM transaction maps onto the core's [`Transaction`] as follows:
//! - saga: `steps[i]` {action, compensate} + `payloads[i]` → branches `2i` (action) and
//!   `2i+1` (compensate), id `%02d`; `custom_data` `{"concurrent":true,"orders":{"k":[..]}}`
//!   → `Options::{concurrent, orders}` (DTM's orders are step indexes, 0-based, and name the
//!   steps that must finish before step `k`, exactly the core's DAG);
//! - msg: `steps[i].action` → `Op::Msg` branches; `query_prepared` → the check target, asked
//!   once the message has been `prepared` for `timeout_to_fail` (DTM's default 35 s);
//! - tcc / xa: a `TxKind::Tcc` with no branches; branches arrive by `registerBranch`.

use std::collections::HashMap;

use serde::Deserialize;
use tandem_core::{Branch, BranchStatus, Op, Options, Timestamp, Transaction, TxKind};

use crate::error::ApiError;
use crate::{validate, ServerConfig};

/// DTM's `conf.TimeoutToFail`: a tcc, xa or msg transaction left `prepared` this long is
/// aborted (tcc, xa) or checked through query-prepared (msg).
pub const DTM_TIMEOUT_TO_FAIL_S: u64 = 35;
/// Longest option value in seconds accepted (a day); larger values are surely mistakes.
pub const SECONDS_MAX: u64 = 86_400;

/// DTM's transaction types this API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmType {
    Saga,
    Msg,
    Tcc,
    Xa,
    Workflow,
}

impl DtmType {
    pub fn parse(s: &str) -> Result<DtmType, ApiError> {
        Ok(match s {
            "saga" => DtmType::Saga,
            "msg" => DtmType::Msg,
            "tcc" => DtmType::Tcc,
            "xa" => DtmType::Xa,
            "workflow" => DtmType::Workflow,
            "" => {
                return Err(ApiError::bad_request(
                    "invalid_trans_type",
                    "trans_type is missing",
                ))
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_trans_type",
                    format!(
                        "unknown trans_type {other:?}: expected saga, msg, tcc, xa or workflow"
                    ),
                ))
            }
        })
    }
    pub fn kind(self) -> TxKind {
        match self {
            DtmType::Saga => TxKind::Saga,
            DtmType::Msg => TxKind::Msg,
            DtmType::Tcc | DtmType::Xa => TxKind::Tcc,
            DtmType::Workflow => TxKind::Workflow,
        }
    }
}

/// One DTM step: `action`, `compensate` (saga), `data` (a payload given inline).
pub type Step = HashMap<String, Option<String>>;

/// The body of `prepare`, `submit`, `abort`, `forceStop`, `resetNextCronTime`.
#[derive(Debug, Default, Deserialize)]
pub struct TransReq {
    pub gid: Option<String>,
    pub trans_type: Option<String>,
    pub steps: Option<Vec<Option<Step>>>,
    pub payloads: Option<Vec<Option<String>>>,
    pub custom_data: Option<String>,
    pub query_prepared: Option<String>,
    pub protocol: Option<String>,
    pub wait_result: Option<bool>,
    pub timeout_to_fail: Option<u64>,
    pub request_timeout: Option<u64>,
    pub retry_interval: Option<u64>,
    pub retry_limit: Option<u64>,
    pub branch_headers: Option<HashMap<String, String>>,
    pub concurrent: Option<bool>,
    pub rollback_reason: Option<String>,
    /// Workflow `submit`: `status`, `rollback_reason`, `result`.
    pub req_extra: Option<HashMap<String, String>>,
    /// gRPC: the payloads as bytes (`BinPayloads`), sent to branches as they are. HTTP
    /// clients send strings in `payloads` (or `steps[i].data`) instead.
    #[serde(skip)]
    pub bin_payloads: Option<Vec<Vec<u8>>>,
}

/// Parses a JSON body, naming the problem when it is not one.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("bad request body: {e}")))
}

impl TransReq {
    pub fn gid(&self) -> Result<&str, ApiError> {
        let gid = self.gid.as_deref().unwrap_or("");
        tandem_core::validate_gid(gid)
            .map_err(|e| ApiError::bad_request("invalid_gid", format!("invalid gid: {e}")))?;
        Ok(gid)
    }

    pub fn dtm_type(&self) -> Result<DtmType, ApiError> {
        DtmType::parse(self.trans_type.as_deref().unwrap_or(""))
    }

    pub fn wait_result(&self) -> bool {
        self.wait_result.unwrap_or(false)
    }

    /// The transaction this request describes, checked (URLs, counts, orders, protocol).
    pub fn to_transaction(
        &self,
        cfg: &ServerConfig,
        now: Timestamp,
    ) -> Result<Transaction, ApiError> {
        self.to_transaction_with(cfg, now, &HashMap::new())
    }

    /// The actions of the steps (for resolving `topic://` ones before building).
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .flatten()
            .flatten()
            .filter_map(|s| s.get("action").and_then(|a| a.as_deref()))
    }

    /// As [`TransReq::to_transaction`], with the subscribers of the topics a message's steps
    /// name (`topics`: name → URLs, from [`crate::topics::resolve`]).
    pub fn to_transaction_with(
        &self,
        cfg: &ServerConfig,
        now: Timestamp,
        topics: &HashMap<String, Vec<String>>,
    ) -> Result<Transaction, ApiError> {
        let gid = self.gid()?;
        let ty = self.dtm_type()?;
        match self.protocol.as_deref() {
            None | Some("") | Some("http") | Some("grpc") => {}
            Some(p) => {
                return Err(ApiError::bad_request(
                    "unsupported_protocol",
                    format!("protocol {p:?} is not supported; http and grpc are"),
                ))
            }
        }
        let mut options = self.options(ty)?;
        if ty == DtmType::Workflow {
            return self.workflow(cfg, gid, options, now);
        }
        let steps = self.steps.as_deref().unwrap_or(&[]);
        validate::branch_count(cfg, steps.len() * 2)?;
        let payloads = self.payloads.as_deref().unwrap_or(&[]);
        let bin = self.bin_payloads.as_deref();
        let given = bin.map_or(payloads.len(), <[Vec<u8>]>::len);
        if given > steps.len() {
            return Err(ApiError::bad_request(
                "invalid_steps",
                format!("{given} payloads for {} steps", steps.len()),
            ));
        }
        let mut branches = Vec::with_capacity(steps.len() * 2);
        for (i, step) in steps.iter().enumerate() {
            let empty = HashMap::new();
            let step = step.as_ref().unwrap_or(&empty);
            let get = |k: &str| step.get(k).and_then(|v| v.as_deref()).unwrap_or("");
            let payload = match (bin, payloads.get(i).and_then(|p| p.as_deref())) {
                (Some(bin), _) => bin.get(i).cloned().unwrap_or_default(),
                (None, Some(p)) => p.as_bytes().to_vec(),
                (None, None) => get("data").as_bytes().to_vec(),
            };
            let id = format!("{:02}", i + 1);
            let action = get("action");
            if !(ty == DtmType::Msg && action.starts_with(crate::topics::TOPIC_PREFIX)) {
                validate::branch_url(cfg, action)?;
            }
            match ty {
                DtmType::Saga => {
                    let compensate = get("compensate");
                    validate::branch_url(cfg, compensate)?;
                    branches.push(Branch::new(id.clone(), Op::Action, action, payload.clone()));
                    branches.push(Branch::new(id, Op::Compensate, compensate, payload));
                }
                DtmType::Msg => match action.strip_prefix(crate::topics::TOPIC_PREFIX) {
                    Some(name) => {
                        let urls = topics.get(name).ok_or_else(|| {
                            ApiError::bad_request(
                                "unknown_topic",
                                format!("topic {name:?} does not exist or has no subscriber"),
                            )
                        })?;
                        let ids = crate::topics::fan_out_ids(i, urls.len());
                        for (id, url) in ids.into_iter().zip(urls) {
                            branches.push(Branch::new(id, Op::Msg, url.as_str(), payload.clone()));
                        }
                        validate::branch_count(cfg, branches.len())?;
                    }
                    None => branches.push(Branch::new(id, Op::Msg, action, payload)),
                },
                DtmType::Tcc | DtmType::Xa | DtmType::Workflow => {
                    return Err(ApiError::bad_request(
                        "invalid_steps",
                        "tcc and xa transactions take branches by registerBranch, not steps",
                    ))
                }
            }
        }
        if ty == DtmType::Saga {
            if steps.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_steps",
                    "a saga needs at least one step",
                ));
            }
            self.saga_custom(steps.len(), &mut options)?;
        }
        let mut tx = Transaction::new(gid, ty.kind(), options, now);
        tx.branches = branches;
        tx.custom_data = self.custom_data.clone().filter(|c| !c.is_empty());
        if ty == DtmType::Msg {
            if let Some(q) = self.query_prepared.as_deref().filter(|q| !q.is_empty()) {
                validate::branch_url(cfg, q)?;
                tx.query_prepared = Some(q.to_string());
            }
        }
        Ok(tx)
    }

    fn options(&self, ty: DtmType) -> Result<Options, ApiError> {
        let secs = |name: &str, v: Option<u64>| -> Result<Option<u64>, ApiError> {
            match v {
                None | Some(0) => Ok(None),
                Some(s) if s > SECONDS_MAX => Err(ApiError::bad_request(
                    "invalid_option",
                    format!("{name} is {s} seconds; the limit is {SECONDS_MAX}"),
                )),
                Some(s) => Ok(Some(s * 1000)),
            }
        };
        let mut o = Options::default();
        let timeout_to_fail = secs("timeout_to_fail", self.timeout_to_fail)?;
        match ty {
            DtmType::Saga => o.timeout_to_fail_ms = timeout_to_fail,
            DtmType::Tcc | DtmType::Xa => {
                o.timeout_to_fail_ms = Some(timeout_to_fail.unwrap_or(DTM_TIMEOUT_TO_FAIL_S * 1000))
            }
            DtmType::Msg | DtmType::Workflow => {
                o.query_prepared_after_ms = timeout_to_fail.unwrap_or(DTM_TIMEOUT_TO_FAIL_S * 1000)
            }
        }
        o.request_timeout_ms = secs("request_timeout", self.request_timeout)?;
        if let Some(ms) = secs("retry_interval", self.retry_interval)? {
            o.retry_interval_ms = ms;
            o.retry_max_ms = o.retry_max_ms.max(ms);
        }
        match self.retry_limit {
            None | Some(0) => {}
            Some(n) if n > 10_000 => {
                return Err(ApiError::bad_request(
                    "invalid_option",
                    format!("retry_limit {n} is above the maximum 10000"),
                ))
            }
            Some(n) => o.retry_limit = n as u32,
        }
        o.wait_result = self.wait_result();
        if let Some(h) = &self.branch_headers {
            let mut h: Vec<(String, String)> =
                h.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            h.sort();
            for (k, v) in &h {
                let ok_name = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
                if !ok_name || v.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                    return Err(ApiError::bad_request(
                        "invalid_option",
                        format!("branch_headers: {k:?} is not a valid HTTP header"),
                    ));
                }
            }
            o.branch_headers = h;
        }
        Ok(o)
    }

    /// A workflow: `custom_data` is DTM's `{"name": ..., "data": base64}`, `query_prepared`
    /// the callback that resumes it. The callback is sent the data as it is, or wrapped in
    /// `workflow.WorkflowData` when the callback is a gRPC method (DTM's workflow server).
    fn workflow(
        &self,
        cfg: &ServerConfig,
        gid: &str,
        options: Options,
        now: Timestamp,
    ) -> Result<Transaction, ApiError> {
        if self.steps.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(
                "invalid_steps",
                "a workflow's client runs its steps; it sends none",
            ));
        }
        let wf = workflow_custom(self.custom_data.as_deref().unwrap_or(""))?;
        let callback = self.query_prepared.as_deref().unwrap_or("");
        let mut tx = crate::workflow::build(cfg, gid, options, &wf.name, wf.data, callback, now)?;
        tx.custom_data = self.custom_data.clone();
        Ok(tx)
    }

    /// DTM's saga `custom_data`: `{"concurrent": bool, "orders": {"k": [before k, ...]}}`.
    fn saga_custom(&self, steps: usize, o: &mut Options) -> Result<(), ApiError> {
        let Some(raw) = self.custom_data.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        #[derive(Deserialize)]
        struct SagaCustom {
            concurrent: Option<bool>,
            orders: Option<HashMap<String, Option<Vec<usize>>>>,
        }
        let bad = |m: String| ApiError::bad_request("invalid_custom_data", m);
        let c: SagaCustom = serde_json::from_str(raw)
            .map_err(|e| bad(format!("saga custom_data is not the expected JSON: {e}")))?;
        o.concurrent = c.concurrent.unwrap_or(false);
        let Some(orders) = c.orders.filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        if !o.concurrent {
            // DTM ignores orders of a sequential saga; so do we.
            return Ok(());
        }
        let mut dag = vec![Vec::new(); steps];
        for (k, before) in orders {
            let k: usize = k
                .parse()
                .map_err(|_| bad(format!("orders key {k:?} is not a step index")))?;
            let before = before.unwrap_or_default();
            if k >= steps || before.iter().any(|&b| b >= steps) {
                return Err(bad(format!(
                    "orders name a step outside 0..{steps}: {k} after {before:?}"
                )));
            }
            dag[k] = before.into_iter().map(|b| b as u16).collect();
            dag[k].sort_unstable();
            dag[k].dedup();
        }
        o.orders = dag;
        Ok(())
    }
}

/// Longest workflow name, in bytes.
pub const WORKFLOW_NAME_LEN_MAX: usize = 128;

/// A workflow's `custom_data`, decoded.
#[derive(Debug)]
pub struct WorkflowCustom {
    pub name: String,
    pub data: Vec<u8>,
}

/// Parses DTM's workflow `custom_data`: `{"name": "...", "data": "<base64>"}` (Go writes
/// the `[]byte` data as base64; absent or null data is empty).
pub fn workflow_custom(raw: &str) -> Result<WorkflowCustom, ApiError> {
    #[derive(Deserialize)]
    struct Raw {
        name: Option<String>,
        data: Option<String>,
    }
    let bad = |m: String| ApiError::bad_request("invalid_custom_data", m);
    let r: Raw = serde_json::from_str(raw).map_err(|e| {
        bad(format!(
            "a workflow's custom_data must be {{\"name\": ..., \"data\": base64}}: {e}"
        ))
    })?;
    let name = r.name.unwrap_or_default();
    if name.is_empty() || name.len() > WORKFLOW_NAME_LEN_MAX || name.chars().any(|c| c.is_control())
    {
        return Err(bad(format!(
            "the workflow name must be 1..={WORKFLOW_NAME_LEN_MAX} bytes without control characters, not {name:?}"
        )));
    }
    let data = match r.data.as_deref() {
        None | Some("") => Vec::new(),
        Some(b64) => crate::dtm::view::unbase64(b64)
            .ok_or_else(|| bad("the workflow data is not base64".to_string()))?,
    };
    Ok(WorkflowCustom { name, data })
}

/// The body of `registerBranch` (DTM binds it to `map[string]string`).
#[derive(Debug)]
pub struct RegisterReq {
    pub gid: String,
    pub branch_id: String,
    pub ty: DtmType,
    pub data: Vec<u8>,
    /// tcc, xa: the ops the coordinator will call, with their URLs.
    pub ops: Vec<(Op, String)>,
    /// workflow: the step that ended, and how.
    pub step: Option<(Op, BranchStatus)>,
}

/// The fields of a `registerBranch` request, however they arrived (HTTP: one JSON object
/// of strings; gRPC: `DtmBranchRequest` and its `Data` map).
#[derive(Debug, Default, Clone, Copy)]
pub struct RegisterFields<'a> {
    pub gid: &'a str,
    pub branch_id: &'a str,
    pub trans_type: &'a str,
    /// tcc: the confirm and cancel URLs.
    pub confirm: &'a str,
    pub cancel: &'a str,
    /// xa: the URL of both phase-2 ops.
    pub url: &'a str,
    /// workflow: the recorded step's op and status (`succeed` or `failed`).
    pub op: &'a str,
    pub status: &'a str,
}

impl RegisterReq {
    pub fn parse(cfg: &ServerConfig, body: &[u8]) -> Result<RegisterReq, ApiError> {
        let map: HashMap<String, serde_json::Value> = parse_json(body)?;
        // The fields we read must be strings (or null); unknown fields may be anything.
        for k in [
            "gid",
            "branch_id",
            "trans_type",
            "data",
            "confirm",
            "cancel",
            "url",
            "op",
            "status",
        ] {
            match map.get(k) {
                None | Some(serde_json::Value::Null | serde_json::Value::String(_)) => {}
                Some(v) => {
                    return Err(ApiError::bad_request(
                        "invalid_json",
                        format!("{k} must be a string, not {v}"),
                    ))
                }
            }
        }
        let get = |k: &str| map.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let fields = RegisterFields {
            gid: get("gid"),
            branch_id: get("branch_id"),
            trans_type: get("trans_type"),
            confirm: get("confirm"),
            cancel: get("cancel"),
            url: get("url"),
            op: get("op"),
            status: get("status"),
        };
        RegisterReq::build(cfg, fields, get("data").as_bytes().to_vec())
    }

    /// Checks `f` and builds the request; `data` is the branch's payload.
    pub fn build(
        cfg: &ServerConfig,
        f: RegisterFields<'_>,
        data: Vec<u8>,
    ) -> Result<RegisterReq, ApiError> {
        tandem_core::validate_gid(f.gid)
            .map_err(|e| ApiError::bad_request("invalid_gid", format!("invalid gid: {e}")))?;
        let branch_id = f.branch_id;
        if branch_id.is_empty()
            || branch_id.len() > 64
            || !branch_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ApiError::bad_request(
                "invalid_branch_id",
                format!("branch_id {branch_id:?} must be 1..=64 of [A-Za-z0-9-_.]"),
            ));
        }
        let ty = DtmType::parse(f.trans_type)?;
        if ty == DtmType::Workflow {
            let op = Op::parse(f.op).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_op",
                    format!("a workflow step's op must be action, compensate, commit, rollback, … not {:?}", f.op),
                )
            })?;
            let status = match f.status {
                "succeed" => BranchStatus::Succeeded,
                "failed" => BranchStatus::Failed,
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_status",
                        format!("a workflow step is recorded as succeed or failed, not {other:?}"),
                    ))
                }
            };
            return Ok(RegisterReq {
                gid: f.gid.to_string(),
                branch_id: branch_id.to_string(),
                ty,
                data,
                ops: Vec::new(),
                step: Some((op, status)),
            });
        }
        let ops = match ty {
            DtmType::Tcc => vec![
                (Op::Cancel, f.cancel.to_string()),
                (Op::Confirm, f.confirm.to_string()),
            ],
            DtmType::Xa => vec![
                (Op::Rollback, f.url.to_string()),
                (Op::Commit, f.url.to_string()),
            ],
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_trans_type",
                    format!(
                        "registerBranch is for tcc, xa and workflow, not {}",
                        f.trans_type
                    ),
                ))
            }
        };
        for (_, url) in &ops {
            validate::branch_url(cfg, url)?;
        }
        Ok(RegisterReq {
            gid: f.gid.to_string(),
            branch_id: branch_id.to_string(),
            ty,
            data,
            ops,
            step: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> TransReq {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn options_follow_dtm_units_and_defaults() -> Result<(), ApiError> {
        let cfg = ServerConfig::default();
        let now = Timestamp(1);
        let saga = req(serde_json::json!({
            "gid": "g", "trans_type": "saga", "timeout_to_fail": 3, "request_timeout": 2,
            "retry_interval": 5, "retry_limit": 4, "branch_headers": {"X-A": "1"},
            "steps": [{"action": "http://a/x", "compensate": "http://a/y"}, null],
            "payloads": ["{\"n\":1}"],
            "custom_data": "{\"concurrent\":true,\"orders\":{\"1\":[0]}}",
        }))
        .to_transaction(&cfg, now)?;
        let o = &saga.options;
        assert_eq!(o.timeout_to_fail_ms, Some(3000));
        assert_eq!(o.request_timeout_ms, Some(2000));
        assert_eq!((o.retry_interval_ms, o.retry_limit), (5000, 4));
        assert_eq!(o.branch_headers, vec![("X-A".to_string(), "1".to_string())]);
        assert!(o.concurrent);
        assert_eq!(o.orders, vec![vec![], vec![0]]);
        assert_eq!(saga.branches.len(), 4);
        assert_eq!(saga.branches[1].op, Op::Compensate);
        assert_eq!(saga.branches[3].payload, b"");

        let tcc =
            req(serde_json::json!({"gid": "t", "trans_type": "tcc"})).to_transaction(&cfg, now)?;
        assert_eq!(
            tcc.options.timeout_to_fail_ms,
            Some(DTM_TIMEOUT_TO_FAIL_S * 1000)
        );
        let msg = req(serde_json::json!({
            "gid": "m", "trans_type": "msg", "timeout_to_fail": 1,
            "steps": [{"action": "http://a/m"}], "payloads": ["{}"], "query_prepared": "http://a/q",
        }))
        .to_transaction(&cfg, now)?;
        assert_eq!(msg.options.query_prepared_after_ms, 1000);
        assert_eq!(msg.query_prepared.as_deref(), Some("http://a/q"));
        assert_eq!(msg.branches[0].op, Op::Msg);
        Ok(())
    }
}
