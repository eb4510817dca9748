//! Turns `/v1` requests into [`Transaction`]s: gid (given or generated), options, branch
//! layout per protocol, and every check on what the client sent (URLs, allow-list, branch
//! counts, headers, ids, reasons) — so that the engine only ever sees well-formed input.
//!
//! Layouts (the engine's, see `tandem_core::tx`): saga step k is `branches[2k]` action and
//! `[2k+1]` compensate, ids "01", "02", …; 2PC participant k is `branches[3k..3k+3]`
//! prepare/commit/rollback (always three, even for one participant: an HTTP participant
//! names its phases by URL, so one-phase commit is not used here); msg delivery k is one
//! `msg` branch.
//!
//! Building is deterministic: the same request yields the same transaction, which is what
//! makes a resubmission with the same gid idempotent (and a different one a 409).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderName, HeaderValue};
use tandem_core::{Branch, Op, Options, Transaction, TxKind};

use super::model::{
    MsgRequest, SagaRequest, TccBeginRequest, TccBranchRequest, TwoPcRequest, TxOptions,
};
use crate::error::ApiError;
use crate::validate;
use crate::AppState;

/// Longest operator reason, in bytes.
pub const REASON_BYTES_MAX: usize = 1000;
/// Longest TCC branch id, in bytes.
pub const BRANCH_ID_LEN_MAX: usize = 64;
/// Most `branch_headers` one transaction may carry.
pub const HEADERS_MAX: usize = 32;

impl From<&Options> for TxOptions {
    fn from(o: &Options) -> TxOptions {
        TxOptions {
            timeout_to_fail_ms: o.timeout_to_fail_ms,
            request_timeout_ms: o.request_timeout_ms,
            retry_interval_ms: Some(o.retry_interval_ms),
            retry_max_ms: Some(o.retry_max_ms),
            retry_limit: Some(o.retry_limit),
            concurrent: Some(o.concurrent),
            orders: Some(o.orders.clone()),
            concurrency_max: Some(o.concurrency_max),
            branch_headers: Some(o.branch_headers.iter().cloned().collect()),
            query_prepared_after_ms: Some(o.query_prepared_after_ms),
        }
    }
}

/// Checks `o` and fills in the defaults.
/// `wait_result` is not part of the stored options: it is how one request waits, not what
/// the transaction is, so a resubmission that only waits differently stays idempotent.
pub fn options(o: &TxOptions) -> Result<Options, ApiError> {
    let d = Options::default();
    let orders = o.orders.clone().unwrap_or_default();
    let headers: Vec<(String, String)> = o
        .branch_headers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if headers.len() > HEADERS_MAX {
        return Err(ApiError::bad_request(
            "invalid_options",
            format!(
                "{} branch_headers; the limit is {HEADERS_MAX}",
                headers.len()
            ),
        ));
    }
    for (k, v) in &headers {
        if HeaderName::from_bytes(k.as_bytes()).is_err() || HeaderValue::from_str(v).is_err() {
            return Err(ApiError::bad_request(
                "invalid_options",
                format!("branch header {k:?} is not a valid HTTP header"),
            ));
        }
    }
    let out = Options {
        timeout_to_fail_ms: o.timeout_to_fail_ms,
        request_timeout_ms: o.request_timeout_ms,
        // A default never contradicts what the client set: a small `retry_max_ms` alone
        // lowers the default interval, a large `retry_interval_ms` alone raises the max.
        retry_interval_ms: o
            .retry_interval_ms
            .unwrap_or(d.retry_interval_ms.min(o.retry_max_ms.unwrap_or(u64::MAX))),
        retry_max_ms: o
            .retry_max_ms
            .unwrap_or(d.retry_max_ms.max(o.retry_interval_ms.unwrap_or(0))),
        retry_limit: o.retry_limit.unwrap_or(d.retry_limit),
        concurrent: o.concurrent.unwrap_or(!orders.is_empty()),
        orders,
        concurrency_max: o.concurrency_max.unwrap_or(d.concurrency_max),
        wait_result: false,
        branch_headers: headers,
        query_prepared_after_ms: o
            .query_prepared_after_ms
            .unwrap_or(d.query_prepared_after_ms),
    };
    if out.retry_interval_ms == 0 || out.retry_max_ms < out.retry_interval_ms {
        return Err(ApiError::bad_request(
            "invalid_options",
            "retry_interval_ms must be at least 1 and at most retry_max_ms",
        ));
    }
    if out.retry_limit == 0 {
        return Err(ApiError::bad_request(
            "invalid_options",
            "retry_limit must be at least 1",
        ));
    }
    if out.request_timeout_ms == Some(0) {
        return Err(ApiError::bad_request(
            "invalid_options",
            "request_timeout_ms must be at least 1",
        ));
    }
    Ok(out)
}

/// The caller's gid, or a fresh one: `<node>-<ms, hex>-<pid, hex>-<counter, hex>`, unique
/// across restarts because the clock moves on between two starts.
pub fn gid(state: &AppState, given: Option<String>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    given.unwrap_or_else(|| {
        format!(
            "{}-{:x}-{:x}-{:x}",
            state.cfg.node_name,
            state.coord.now().0,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    })
}

fn payload(p: &Option<serde_json::Value>) -> Vec<u8> {
    match p {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => v.to_string().into_bytes(),
    }
}

/// Branch ids as DTM numbers them: "01", "02", …
fn branch_id(k: usize) -> String {
    format!("{:02}", k + 1)
}

fn urls<'a>(state: &AppState, urls: impl IntoIterator<Item = &'a str>) -> Result<(), ApiError> {
    urls.into_iter()
        .try_for_each(|u| validate::branch_url(&state.cfg, u))
}

pub fn saga(state: &AppState, req: SagaRequest) -> Result<Transaction, ApiError> {
    if req.steps.is_empty() {
        return Err(ApiError::bad_request(
            "no_steps",
            "a saga needs one or more steps",
        ));
    }
    validate::branch_count(&state.cfg, req.steps.len() * 2)?;
    urls(
        state,
        req.steps
            .iter()
            .flat_map(|s| [s.action.as_str(), s.compensate.as_str()]),
    )?;
    let opts = options(&req.options)?;
    let mut tx = Transaction::new(gid(state, req.gid), TxKind::Saga, opts, state.coord.now());
    for (k, s) in req.steps.iter().enumerate() {
        let p = payload(&s.payload);
        tx.branches.push(Branch::new(
            branch_id(k),
            Op::Action,
            s.action.as_str(),
            p.clone(),
        ));
        tx.branches.push(Branch::new(
            branch_id(k),
            Op::Compensate,
            s.compensate.as_str(),
            p,
        ));
    }
    Ok(tx)
}

pub fn two_pc(state: &AppState, req: TwoPcRequest) -> Result<Transaction, ApiError> {
    if req.participants.is_empty() {
        return Err(ApiError::bad_request(
            "no_participants",
            "a 2PC needs one or more participants",
        ));
    }
    validate::branch_count(&state.cfg, req.participants.len() * 3)?;
    urls(
        state,
        req.participants
            .iter()
            .flat_map(|p| [p.prepare.as_str(), p.commit.as_str(), p.rollback.as_str()]),
    )?;
    let opts = options(&req.options)?;
    let mut tx = Transaction::new(gid(state, req.gid), TxKind::TwoPc, opts, state.coord.now());
    for (k, p) in req.participants.iter().enumerate() {
        let body = payload(&p.payload);
        for (op, url) in [
            (Op::Prepare, &p.prepare),
            (Op::Commit, &p.commit),
            (Op::Rollback, &p.rollback),
        ] {
            tx.branches
                .push(Branch::new(branch_id(k), op, url.as_str(), body.clone()));
        }
    }
    Ok(tx)
}

pub fn tcc(state: &AppState, req: TccBeginRequest) -> Result<Transaction, ApiError> {
    let opts = options(&req.options)?;
    Ok(Transaction::new(
        gid(state, req.gid),
        TxKind::Tcc,
        opts,
        state.coord.now(),
    ))
}

/// Checks a TCC registration against the transaction's current branch count `have`.
pub fn tcc_branch(
    state: &AppState,
    have: usize,
    req: &TccBranchRequest,
) -> Result<Vec<u8>, ApiError> {
    let id = &req.branch_id;
    if id.is_empty()
        || id.len() > BRANCH_ID_LEN_MAX
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::bad_request(
            "invalid_branch_id",
            format!(
                "branch_id {id:?} must be 1..={BRANCH_ID_LEN_MAX} bytes of letters, digits, - _ ."
            ),
        ));
    }
    validate::branch_count(&state.cfg, have + 2)?;
    urls(state, [req.confirm.as_str(), req.cancel.as_str()])?;
    Ok(payload(&req.payload))
}

pub fn msg(state: &AppState, req: MsgRequest) -> Result<Transaction, ApiError> {
    if req.branches.is_empty() {
        return Err(ApiError::bad_request(
            "no_branches",
            "a message needs one or more branches",
        ));
    }
    validate::branch_count(&state.cfg, req.branches.len() + 1)?;
    urls(state, req.branches.iter().map(|b| b.url.as_str()))?;
    if let Some(q) = &req.query_prepared {
        if q.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_url",
                "query_prepared must be a URL (omit it for none)",
            ));
        }
        validate::branch_url(&state.cfg, q)?;
    }
    let opts = options(&req.options)?;
    let mut tx = Transaction::new(gid(state, req.gid), TxKind::Msg, opts, state.coord.now());
    tx.query_prepared = req.query_prepared;
    for (k, b) in req.branches.iter().enumerate() {
        tx.branches.push(Branch::new(
            branch_id(k),
            Op::Msg,
            b.url.as_str(),
            payload(&b.payload),
        ));
    }
    Ok(tx)
}

/// An operator's reason: required, bounded.
pub fn reason(r: &str) -> Result<String, ApiError> {
    let r = r.trim();
    if r.is_empty() {
        return Err(ApiError::bad_request(
            "reason_required",
            "a reason is required (it is recorded in the transaction's history)",
        ));
    }
    if r.len() > REASON_BYTES_MAX {
        return Err(ApiError::bad_request(
            "reason_too_long",
            format!(
                "reason is {} bytes; the limit is {REASON_BYTES_MAX}",
                r.len()
            ),
        ));
    }
    Ok(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_defaults_never_contradict_the_client() {
        let o = |json: serde_json::Value| {
            let t: TxOptions = serde_json::from_value(json).map_err(|e| e.to_string())?;
            options(&t).map_err(|e| e.message)
        };
        let d = o(serde_json::json!({})).unwrap();
        assert_eq!(d, Options::default());
        let small = o(serde_json::json!({"retry_max_ms": 200})).unwrap();
        assert_eq!((small.retry_interval_ms, small.retry_max_ms), (200, 200));
        let big = o(serde_json::json!({"retry_interval_ms": 90_000})).unwrap();
        assert_eq!((big.retry_interval_ms, big.retry_max_ms), (90_000, 90_000));
        assert!(o(serde_json::json!({"retry_interval_ms": 10, "retry_max_ms": 5})).is_err());
        assert!(o(serde_json::json!({"retry_limit": 0})).is_err());
        let dag = o(serde_json::json!({"orders": [[], [0]]})).unwrap();
        assert!(dag.concurrent);
        let headers = o(serde_json::json!({"branch_headers": {"b": "2", "a": "1"}})).unwrap();
        assert_eq!(
            headers.branch_headers,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(o(serde_json::json!({"branch_headers": {"a": "x\ny"}})).is_err());
    }
}
