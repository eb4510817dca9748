//! Turns `/v1` requests into [`Transaction`]s: gid (given or generated), branch layout per
//! protocol, and every check on what the client sent (URLs, allow-list, branch counts, ids,
//! reasons; options in [`super::options`]) — so that the engine only ever sees well-formed
//! input.
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

use tandem_core::{Branch, Op, Transaction, TxKind};

use super::model::{MsgRequest, SagaRequest, TccBeginRequest, TccBranchRequest, TwoPcRequest};
use super::options::options;
use crate::error::ApiError;
use crate::validate;
use crate::AppState;

/// Longest operator reason, in bytes.
pub const REASON_BYTES_MAX: usize = 1000;
/// Longest TCC branch id, in bytes.
pub const BRANCH_ID_LEN_MAX: usize = 64;

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
