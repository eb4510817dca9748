//! Maps `/v1` requests onto `tandem_core::spec` — which lays branches out, numbers them,
//! counts them and checks the options — after the one check that belongs to the server: branch
//! URLs (http or https only, the allow-list). The gid, when the client gives none, is generated
//! from the coordinator's durable identity.
//!
//! Building is deterministic: the same request yields the same transaction, which is what
//! makes a resubmission with the same gid idempotent (and a different one a 409).

use tandem_core::spec::{self, DeliverySpec, ParticipantSpec, Shape, StepSpec, TxSpec};
use tandem_core::{Event, Op, Transaction};

use super::model::{MsgRequest, SagaRequest, TccBeginRequest, TccBranchRequest, TwoPcRequest};
use super::options::options;
use crate::error::ApiError;
use crate::validate;
use crate::AppState;

/// Longest operator reason, in bytes.
pub const REASON_BYTES_MAX: usize = 1000;

/// The caller's gid, or a fresh one built from the coordinator's identity.
pub fn gid(state: &AppState, given: Option<String>) -> String {
    given.unwrap_or_else(|| state.coord.new_gid())
}

fn payload(p: &Option<serde_json::Value>) -> Vec<u8> {
    match p {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => v.to_string().into_bytes(),
    }
}

fn urls<'a>(state: &AppState, urls: impl IntoIterator<Item = &'a str>) -> Result<(), ApiError> {
    urls.into_iter()
        .try_for_each(|u| validate::branch_url(&state.cfg, u))
}

fn build(state: &AppState, spec: TxSpec) -> Result<Transaction, ApiError> {
    Ok(spec::build(spec, state.coord.limits(), state.coord.now())?)
}

pub fn saga(state: &AppState, req: SagaRequest) -> Result<Transaction, ApiError> {
    urls(
        state,
        req.steps
            .iter()
            .flat_map(|s| [s.action.as_str(), s.compensate.as_str()]),
    )?;
    let steps = req
        .steps
        .iter()
        .map(|s| StepSpec {
            action: s.action.clone(),
            compensate: s.compensate.clone(),
            payload: payload(&s.payload),
        })
        .collect();
    let spec = TxSpec {
        gid: gid(state, req.gid),
        shape: Shape::Saga(steps),
        options: options(&req.options),
        custom_data: None,
    };
    build(state, spec)
}

pub fn two_pc(state: &AppState, req: TwoPcRequest) -> Result<Transaction, ApiError> {
    urls(
        state,
        req.participants
            .iter()
            .flat_map(|p| [p.prepare.as_str(), p.commit.as_str(), p.rollback.as_str()]),
    )?;
    let participants = req
        .participants
        .iter()
        .map(|p| ParticipantSpec {
            prepare: p.prepare.clone(),
            commit: p.commit.clone(),
            rollback: p.rollback.clone(),
            payload: payload(&p.payload),
        })
        .collect();
    // An HTTP participant names its phases by URL: no one-phase commit here.
    let spec = TxSpec {
        gid: gid(state, req.gid),
        shape: Shape::TwoPc {
            participants,
            one_phase: false,
        },
        options: options(&req.options),
        custom_data: None,
    };
    build(state, spec)
}

pub fn tcc(state: &AppState, req: TccBeginRequest) -> Result<Transaction, ApiError> {
    let spec = TxSpec {
        gid: gid(state, req.gid),
        shape: Shape::Tcc,
        options: options(&req.options),
        custom_data: None,
    };
    build(state, spec)
}

/// The event that registers `req` on `tx` (confirm + cancel), checked.
pub fn tcc_branch(
    state: &AppState,
    tx: &Transaction,
    req: TccBranchRequest,
) -> Result<Event, ApiError> {
    urls(state, [req.confirm.as_str(), req.cancel.as_str()])?;
    let body = payload(&req.payload);
    let ops = vec![(Op::Confirm, req.confirm), (Op::Cancel, req.cancel)];
    Ok(spec::registration(
        tx,
        &req.branch_id,
        ops,
        body,
        state.coord.limits(),
    )?)
}

pub fn msg(state: &AppState, req: MsgRequest) -> Result<Transaction, ApiError> {
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
    let deliveries = req
        .branches
        .iter()
        .map(|b| DeliverySpec {
            target: b.url.clone(),
            payload: payload(&b.payload),
            fan_out: Vec::new(),
        })
        .collect();
    let spec = TxSpec {
        gid: gid(state, req.gid),
        shape: Shape::Msg {
            deliveries,
            query_prepared: req.query_prepared,
            submitted: false,
        },
        options: options(&req.options),
        custom_data: None,
    };
    build(state, spec)
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
