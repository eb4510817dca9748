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
//! - msg to a topic: a step whose action is `topic://NAME` fans out to the topic's
//!   subscribers (resolved by [`crate::topics::resolve`] before building);
//! - tcc / xa: a `TxKind::Tcc` with no branches; branches arrive by `registerBranch`;
//! - workflow: `custom_data` `{"name", "data" (base64)}` and the callback in
//!   `query_prepared` (see [`crate::workflow`]); steps arrive by `registerBranch`.
//!
//! The gRPC API maps its messages onto the same [`TransReq`] and [`RegisterFields`]
//! (`crate::grpc::wire`), so both protocols share every check.

use std::collections::HashMap;

use serde::Deserialize;
use tandem_core::spec::{self, DeliverySpec, Shape, StepSpec, TxSpec};
use tandem_core::{BranchStatus, Limits, Op, Options, Timestamp, Transaction, TxKind};

use crate::error::ApiError;
use crate::{validate, ServerConfig};

/// DTM's `conf.TimeoutToFail`: a tcc, xa or msg transaction left `prepared` this long is
/// aborted (tcc, xa) or checked through query-prepared (msg).
pub const DTM_TIMEOUT_TO_FAIL_S: u64 = 35;

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

    /// The transaction this request describes: URLs and protocol checked here, everything
    /// else by `tandem_core::spec`. `submitted`: a message submitted without prepare (it is
    /// delivered at once and never checked).
    pub fn to_transaction(
        &self,
        cfg: &ServerConfig,
        limits: &Limits,
        now: Timestamp,
        submitted: bool,
    ) -> Result<Transaction, ApiError> {
        self.to_transaction_with(cfg, limits, now, submitted, &HashMap::new())
    }

    /// The actions of the steps (to resolve `topic://` ones before building).
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
        limits: &Limits,
        now: Timestamp,
        submitted: bool,
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
        let mut options = self.options(ty);
        let steps = self.steps.as_deref().unwrap_or(&[]);
        let payloads = self.payloads.as_deref().unwrap_or(&[]);
        let bin = self.bin_payloads.as_deref();
        let given = bin.map_or(payloads.len(), <[Vec<u8>]>::len);
        if given > steps.len() {
            return Err(ApiError::bad_request(
                "invalid_steps",
                format!("{given} payloads for {} steps", steps.len()),
            ));
        }
        let empty = HashMap::new();
        let step = |i: usize| {
            let step = steps[i].as_ref().unwrap_or(&empty);
            let get = |k: &str| {
                step.get(k)
                    .and_then(|v| v.as_deref())
                    .unwrap_or("")
                    .to_string()
            };
            let payload = match (bin, payloads.get(i).and_then(|p| p.as_deref())) {
                (Some(bin), _) => bin.get(i).cloned().unwrap_or_default(),
                (None, Some(p)) => p.as_bytes().to_vec(),
                (None, None) => get("data").into_bytes(),
            };
            (get("action"), get("compensate"), payload)
        };
        let shape = match ty {
            DtmType::Saga => {
                let steps = (0..steps.len())
                    .map(|i| {
                        let (action, compensate, payload) = step(i);
                        validate::branch_url(cfg, &action)?;
                        validate::branch_url(cfg, &compensate)?;
                        Ok(StepSpec {
                            action,
                            compensate,
                            payload,
                        })
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?;
                self.saga_custom(steps.len(), &mut options)?;
                Shape::Saga(steps)
            }
            DtmType::Msg => {
                let deliveries = (0..steps.len())
                    .map(|i| {
                        let (target, _, payload) = step(i);
                        let fan_out = match target.strip_prefix(crate::topics::TOPIC_PREFIX) {
                            Some(name) => topics.get(name).cloned().ok_or_else(|| {
                                ApiError::bad_request(
                                    "unknown_topic",
                                    format!("topic {name:?} does not exist or has no subscriber"),
                                )
                            })?,
                            None => {
                                validate::branch_url(cfg, &target)?;
                                Vec::new()
                            }
                        };
                        Ok(DeliverySpec {
                            target,
                            payload,
                            fan_out,
                        })
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?;
                let query_prepared = self.query_prepared.clone().filter(|q| !q.is_empty());
                if let Some(q) = &query_prepared {
                    validate::branch_url(cfg, q)?;
                }
                Shape::Msg {
                    deliveries,
                    query_prepared,
                    submitted,
                }
            }
            DtmType::Tcc | DtmType::Xa => {
                if !steps.is_empty() {
                    return Err(ApiError::bad_request(
                        "invalid_steps",
                        "tcc and xa transactions take branches by registerBranch, not steps",
                    ));
                }
                Shape::Tcc
            }
            DtmType::Workflow => {
                if !steps.is_empty() {
                    return Err(ApiError::bad_request(
                        "invalid_steps",
                        "a workflow's client runs its steps; it sends none",
                    ));
                }
                let wf = workflow_custom(self.custom_data.as_deref().unwrap_or(""))?;
                let callback = self.query_prepared.as_deref().unwrap_or("");
                crate::workflow::shape(cfg, wf.name, wf.data, callback)?
            }
        };
        let spec = TxSpec {
            gid: gid.to_string(),
            shape,
            options,
            custom_data: self.custom_data.clone(),
        };
        Ok(spec::build(spec, limits, now)?)
    }

    /// DTM's options (seconds) as the core's; `tandem_core::spec` checks them.
    fn options(&self, ty: DtmType) -> Options {
        let ms = |v: Option<u64>| v.filter(|&s| s > 0).map(|s| s.saturating_mul(1000));
        let mut o = Options::default();
        let timeout_to_fail = ms(self.timeout_to_fail);
        match ty {
            DtmType::Saga => o.timeout_to_fail_ms = timeout_to_fail,
            DtmType::Tcc | DtmType::Xa => {
                o.timeout_to_fail_ms = Some(timeout_to_fail.unwrap_or(DTM_TIMEOUT_TO_FAIL_S * 1000))
            }
            DtmType::Msg | DtmType::Workflow => {
                o.query_prepared_after_ms = timeout_to_fail.unwrap_or(DTM_TIMEOUT_TO_FAIL_S * 1000)
            }
        }
        o.request_timeout_ms = ms(self.request_timeout);
        if let Some(ms) = ms(self.retry_interval) {
            o.retry_interval_ms = ms;
            o.retry_max_ms = o.retry_max_ms.max(ms);
        }
        if let Some(n) = self.retry_limit.filter(|&n| n > 0) {
            o.retry_limit = u32::try_from(n).unwrap_or(u32::MAX);
        }
        o.wait_result = self.wait_result();
        if let Some(h) = &self.branch_headers {
            let mut h: Vec<(String, String)> =
                h.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            h.sort();
            o.branch_headers = h;
        }
        o
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

/// A workflow's `custom_data`, decoded.
#[derive(Debug)]
pub struct WorkflowCustom {
    pub name: String,
    pub data: Vec<u8>,
}

/// Parses DTM's workflow `custom_data`: `{"name": "...", "data": "<base64>"}` (Go writes
/// the `[]byte` data as base64; absent or null data is empty). The name's rules are
/// `tandem_core::spec`'s.
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
    let data = match r.data.as_deref() {
        None | Some("") => Vec::new(),
        Some(b64) => crate::dtm::view::unbase64(b64)
            .ok_or_else(|| bad("the workflow data is not base64".to_string()))?,
    };
    Ok(WorkflowCustom {
        name: r.name.unwrap_or_default(),
        data,
    })
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

    /// Checks `f` and builds the request; `data` is the branch's payload (or the workflow
    /// step's result).
    pub fn build(
        cfg: &ServerConfig,
        f: RegisterFields<'_>,
        data: Vec<u8>,
    ) -> Result<RegisterReq, ApiError> {
        tandem_core::validate_gid(f.gid)
            .map_err(|e| ApiError::bad_request("invalid_gid", format!("invalid gid: {e}")))?;
        tandem_core::ids::validate_branch_id(f.branch_id)
            .map_err(|e| ApiError::bad_request("invalid_branch_id", e.to_string()))?;
        let ty = DtmType::parse(f.trans_type)?;
        let req = |ops, step| RegisterReq {
            gid: f.gid.to_string(),
            branch_id: f.branch_id.to_string(),
            ty,
            data: data.clone(),
            ops,
            step,
        };
        let ops = match ty {
            DtmType::Tcc => vec![
                (Op::Cancel, f.cancel.to_string()),
                (Op::Confirm, f.confirm.to_string()),
            ],
            DtmType::Xa => vec![
                (Op::Rollback, f.url.to_string()),
                (Op::Commit, f.url.to_string()),
            ],
            DtmType::Workflow => {
                let op = Op::parse(f.op).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_op",
                        format!(
                            "a workflow step's op must be action, compensate, commit, rollback, … not {:?}",
                            f.op
                        ),
                    )
                })?;
                let status = match f.status {
                    "succeed" => BranchStatus::Succeeded,
                    "failed" => BranchStatus::Failed,
                    other => {
                        return Err(ApiError::bad_request(
                            "invalid_status",
                            format!(
                                "a workflow step is recorded as succeed or failed, not {other:?}"
                            ),
                        ))
                    }
                };
                return Ok(req(Vec::new(), Some((op, status))));
            }
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
        Ok(req(ops, None))
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
        let limits = Limits::default();
        let saga = req(serde_json::json!({
            "gid": "g", "trans_type": "saga", "timeout_to_fail": 3, "request_timeout": 2,
            "retry_interval": 5, "retry_limit": 4, "branch_headers": {"X-A": "1"},
            "steps": [{"action": "http://a/x", "compensate": "http://a/y"}, null],
            "payloads": ["{\"n\":1}"],
            "custom_data": "{\"concurrent\":true,\"orders\":{\"1\":[0]}}",
        }))
        .to_transaction(&cfg, &limits, now, false)?;
        let o = &saga.options;
        assert_eq!(o.timeout_to_fail_ms, Some(3000));
        assert_eq!(o.request_timeout_ms, Some(2000));
        assert_eq!((o.retry_interval_ms, o.retry_limit), (5000, 4));
        assert_eq!(o.branch_headers, vec![("X-A".to_string(), "1".to_string())]);
        assert!(o.concurrent);
        assert_eq!(o.orders, vec![vec![], vec![0]]);
        assert_eq!(saga.branches.len(), 4);
        assert_eq!(saga.branches[1].op, Op::Compensate);
        assert_eq!(&saga.branches[3].payload[..], b"");

        let tcc = req(serde_json::json!({"gid": "t", "trans_type": "tcc"}))
            .to_transaction(&cfg, &limits, now, false)?;
        assert_eq!(
            tcc.options.timeout_to_fail_ms,
            Some(DTM_TIMEOUT_TO_FAIL_S * 1000)
        );
        let msg = req(serde_json::json!({
            "gid": "m", "trans_type": "msg", "timeout_to_fail": 1,
            "steps": [{"action": "http://a/m"}], "payloads": ["{}"], "query_prepared": "http://a/q",
        }))
        .to_transaction(&cfg, &limits, now, false)?;
        assert_eq!(msg.options.query_prepared_after_ms, 1000);
        assert_eq!(msg.query_prepared.as_deref(), Some("http://a/q"));
        assert_eq!(msg.branches[0].op, Op::Msg);
        Ok(())
    }
}
