//! A transaction's shape, in one place: what a client may ask for ([`TxSpec`]), the limits it
//! is held to ([`Limits`]), and the only code that turns the one into a [`Transaction`]
//! ([`build`]) or a TCC registration into an [`Event`] ([`registration`]).
//!
//! Every API (the native `/v1`, DTM's HTTP and gRPC protocols, the library's builders) maps its
//! input onto a [`TxSpec`] and its errors from [`SpecError`]; none of them lays out branches,
//! numbers them, counts them or checks options itself. So the rules are written once:
//!
//! - **Layout.** Saga step `k` is `branches[2k]` (`action`) and `[2k+1]` (`compensate`); 2PC
//!   participant `k` is `branches[3k..3k+3]` (`prepare`, `commit`, `rollback`), or a single
//!   `commit_one_phase` branch when one participant may commit in one round trip; a message's
//!   delivery `k` is one `msg` branch, or, sent to a topic, one branch per subscriber with
//!   ids `kk-01`, `kk-02`, … (DTM's fan-out); TCC starts empty and grows by registration; a
//!   workflow holds its callback (see [`crate::workflow`]) and grows by recorded steps ([`record`]).
//!   Ids are [`branch_id`]`(k)` ("01", "02", …) unless the client names them (TCC, workflow).
//! - **Limits**, counted as users count: saga steps, 2PC participants, TCC registrations,
//!   message deliveries — never internal ops. Payload bytes per branch and per transaction
//!   (each payload is stored once).
//! - **Options**: [`Options::check`] (retry limits, intervals, timeouts, headers).
//!
//! Building is deterministic — the same spec gives the same transaction — which is what makes
//! a resubmission with the same gid idempotent (and a different one a conflict).

use std::sync::Arc;

use crate::event::Event;
use crate::ids::{branch_id, validate_branch_id, validate_gid, BranchIdError, GidError};
use crate::tx::{Branch, Op, Options, Timestamp, Transaction, TxKind, TxStatus};

/// Most steps a saga may have, whatever the configured limit.
pub const SAGA_STEPS_MAX: usize = 512;
/// Most participants a 2PC may have, whatever the configured limit.
pub const PARTICIPANTS_MAX: usize = 256;
/// Most registrations a TCC transaction may have, whatever the configured limit.
pub const TCC_BRANCHES_MAX: usize = 512;
/// Most deliveries a message may have, whatever the configured limit.
pub const DELIVERIES_MAX: usize = 1023;
/// Most steps a workflow may record, whatever the configured limit.
pub const WORKFLOW_STEPS_MAX: usize = 1023;
/// Longest workflow name, in bytes.
pub const WORKFLOW_NAME_BYTES_MAX: usize = 128;
/// Most `retry_limit` accepted.
pub const RETRY_LIMIT_MAX: u32 = 10_000;
/// Longest duration any option may name (30 days), in ms.
pub const DURATION_MS_MAX: u64 = 30 * 24 * 3600 * 1000;
/// Most `branch_headers`.
pub const HEADERS_MAX: usize = 32;
/// Most bytes of all `branch_headers` names and values together.
pub const HEADERS_BYTES_MAX: usize = 8 * 1024;
/// Longest `custom_data`, in bytes.
pub const CUSTOM_DATA_BYTES_MAX: usize = 64 * 1024;

/// What one server (or library) lets one transaction be. Each is capped by the absolute limits
/// above, so a configuration can only lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most branches as users count them: saga steps, 2PC participants, TCC registrations,
    /// message deliveries.
    pub branches_max: usize,
    /// Largest payload of one branch, in bytes.
    pub payload_bytes_max: usize,
    /// Largest sum of one transaction's payloads, in bytes.
    pub tx_payload_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            branches_max: 256,
            payload_bytes_max: 1 << 20,
            tx_payload_bytes_max: 32 << 20,
        }
    }
}

/// Why a transaction (or a registration) cannot be accepted: the client's mistake, always.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("invalid gid: {0}")]
    Gid(#[from] GidError),
    #[error("a saga needs one or more steps")]
    NoSteps,
    #[error("a 2PC needs one or more participants")]
    NoParticipants,
    #[error("a message needs one or more branches")]
    NoDeliveries,
    #[error("{count} {what}; the limit is {max} (branches_max)")]
    TooManyBranches {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("the payload of branch {branch} is {bytes} bytes; the limit is {max}")]
    PayloadTooLarge {
        branch: String,
        bytes: usize,
        max: usize,
    },
    #[error("the transaction's payloads would be {bytes} bytes; the limit is {max}")]
    TxTooLarge { bytes: usize, max: usize },
    #[error("custom_data is {bytes} bytes; the limit is {CUSTOM_DATA_BYTES_MAX}")]
    CustomDataTooLarge { bytes: usize },
    #[error(transparent)]
    BranchId(#[from] BranchIdError),
    #[error("{0}")]
    Options(#[from] OptionsError),
    #[error("orders: {0}")]
    Orders(String),
    #[error(
        "the workflow name must be 1..={WORKFLOW_NAME_BYTES_MAX} bytes without control characters"
    )]
    WorkflowName,
    #[error("a workflow step is recorded as succeed or failed, with a step's op (not {0})")]
    WorkflowStep(&'static str),
}

impl SpecError {
    /// A stable, machine-readable name for APIs (`{"error":{"code": …}}`).
    pub fn code(&self) -> &'static str {
        match self {
            SpecError::Gid(_) => "invalid_gid",
            SpecError::NoSteps => "no_steps",
            SpecError::NoParticipants => "no_participants",
            SpecError::NoDeliveries => "no_branches",
            SpecError::TooManyBranches { .. } => "too_many_branches",
            SpecError::PayloadTooLarge { .. }
            | SpecError::TxTooLarge { .. }
            | SpecError::CustomDataTooLarge { .. } => "too_large",
            SpecError::BranchId(_) => "invalid_branch_id",
            SpecError::Options(_) => "invalid_options",
            SpecError::Orders(_) => "invalid_orders",
            SpecError::WorkflowName => "invalid_name",
            SpecError::WorkflowStep(_) => "invalid_step",
        }
    }
}

/// Why options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    #[error("retry_interval_ms must be at least 1 and at most retry_max_ms")]
    RetryInterval,
    #[error("retry_limit must be 1..={RETRY_LIMIT_MAX}; got {0}")]
    RetryLimit(u32),
    #[error("{field} must be 1..={DURATION_MS_MAX} ms; got {value}")]
    Duration { field: &'static str, value: u64 },
    #[error("{0} branch_headers; the limit is {HEADERS_MAX}")]
    TooManyHeaders(usize),
    #[error("branch_headers are {0} bytes; the limit is {HEADERS_BYTES_MAX}")]
    HeadersTooLarge(usize),
    #[error("branch header {0:?} is not a valid HTTP header")]
    BadHeader(String),
}

impl Options {
    /// Checks every rule an option must follow (see [`OptionsError`]).
    pub fn check(&self) -> Result<(), OptionsError> {
        let dur = |field: &'static str, v: Option<u64>| match v {
            Some(value) if value == 0 || value > DURATION_MS_MAX => {
                Err(OptionsError::Duration { field, value })
            }
            _ => Ok(()),
        };
        dur("timeout_to_fail_ms", self.timeout_to_fail_ms)?;
        dur("request_timeout_ms", self.request_timeout_ms)?;
        dur("retry_max_ms", Some(self.retry_max_ms))?;
        dur(
            "query_prepared_after_ms",
            Some(self.query_prepared_after_ms.max(1)),
        )?;
        if self.retry_interval_ms == 0 || self.retry_interval_ms > self.retry_max_ms {
            return Err(OptionsError::RetryInterval);
        }
        if !(1..=RETRY_LIMIT_MAX).contains(&self.retry_limit) {
            return Err(OptionsError::RetryLimit(self.retry_limit));
        }
        let h = &self.branch_headers;
        if h.len() > HEADERS_MAX {
            return Err(OptionsError::TooManyHeaders(h.len()));
        }
        let bytes: usize = h.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > HEADERS_BYTES_MAX {
            return Err(OptionsError::HeadersTooLarge(bytes));
        }
        if let Some((k, _)) = h
            .iter()
            .find(|(k, v)| !header_name_ok(k) || !header_value_ok(v))
        {
            return Err(OptionsError::BadHeader(k.clone()));
        }
        Ok(())
    }
}

/// An HTTP token (RFC 9110 `tchar`s).
fn header_name_ok(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII, spaces and tabs (no CR/LF, no other control characters).
fn header_value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// One saga step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    pub action: String,
    pub compensate: String,
    pub payload: Vec<u8>,
}

/// One 2PC participant (library mode names one in-process resource three times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSpec {
    pub prepare: String,
    pub commit: String,
    pub rollback: String,
    pub payload: Vec<u8>,
}

/// One delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySpec {
    pub target: String,
    pub payload: Vec<u8>,
    /// Sent to a topic: its subscribers, each of which gets the payload (`target` is then
    /// not called). Empty: one delivery to `target`.
    pub fan_out: Vec<String>,
}

/// What resumes an unfinished workflow: its callback and what the callback is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSpec {
    pub target: String,
    pub payload: Vec<u8>,
}

/// What kind of transaction, with what branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Saga(Vec<StepSpec>),
    TwoPc {
        participants: Vec<ParticipantSpec>,
        /// A single participant commits in one round trip (`commit_one_phase`). Library mode
        /// only: an HTTP participant names its phases by URL and has no one-phase op.
        one_phase: bool,
    },
    /// Branches arrive by [`registration`].
    Tcc,
    Msg {
        deliveries: Vec<DeliverySpec>,
        /// The sender's check, asked when the message stays `prepared`.
        query_prepared: Option<String>,
        /// Submitted at once (DTM's submit without prepare): delivered now, never checked.
        submitted: bool,
    },
    /// Steps arrive by [`record`]; the callback (if any) resumes an unfinished workflow.
    Workflow {
        name: String,
        callback: Option<CallbackSpec>,
    },
}

/// A transaction as a client asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSpec {
    pub gid: String,
    pub shape: Shape,
    pub options: Options,
    /// Free-form data the client attaches (DTM's `custom_data`), kept and shown.
    pub custom_data: Option<String>,
}

/// Turns a spec into a new transaction created at `now`, or says precisely what is wrong.
pub fn build(spec: TxSpec, limits: &Limits, now: Timestamp) -> Result<Transaction, SpecError> {
    validate_gid(&spec.gid)?;
    let mut options = spec.options;
    options.check()?;
    if let Some(c) = &spec.custom_data {
        if c.len() > CUSTOM_DATA_BYTES_MAX {
            return Err(SpecError::CustomDataTooLarge { bytes: c.len() });
        }
    }
    let kind = match &spec.shape {
        Shape::Saga(_) => TxKind::Saga,
        Shape::TwoPc { .. } => TxKind::TwoPc,
        Shape::Tcc => TxKind::Tcc,
        Shape::Msg { .. } => TxKind::Msg,
        Shape::Workflow { .. } => TxKind::Workflow,
    };
    if kind != TxKind::Saga {
        // Orders only order saga steps; elsewhere they are noise that would break idempotent
        // resubmission if kept.
        options.orders.clear();
    }
    let mut branches = Vec::new();
    let mut payloads = Payloads::new(limits);
    let mut query_prepared = None;
    let mut submitted = false;
    match spec.shape {
        Shape::Saga(steps) => {
            count(
                limits,
                "steps",
                steps.len(),
                SAGA_STEPS_MAX,
                SpecError::NoSteps,
            )?;
            check_orders(&options, steps.len())?;
            for (k, s) in steps.into_iter().enumerate() {
                let id = branch_id(k);
                payloads.add(&id, &s.payload)?;
                let payload: Arc<[u8]> = s.payload.into();
                branches.push(Branch::new(
                    id.clone(),
                    Op::Action,
                    s.action,
                    payload.clone(),
                ));
                branches.push(Branch::new(id, Op::Compensate, s.compensate, payload));
            }
        }
        Shape::TwoPc {
            participants,
            one_phase,
        } => {
            let n = participants.len();
            count(
                limits,
                "participants",
                n,
                PARTICIPANTS_MAX,
                SpecError::NoParticipants,
            )?;
            for (k, p) in participants.into_iter().enumerate() {
                let id = branch_id(k);
                payloads.add(&id, &p.payload)?;
                let payload: Arc<[u8]> = p.payload.into();
                if one_phase && n == 1 {
                    branches.push(Branch::new(id, Op::CommitOnePhase, p.prepare, payload));
                    break;
                }
                for (op, target) in [
                    (Op::Prepare, p.prepare),
                    (Op::Commit, p.commit),
                    (Op::Rollback, p.rollback),
                ] {
                    branches.push(Branch::new(id.clone(), op, target, payload.clone()));
                }
            }
        }
        Shape::Tcc => {}
        Shape::Msg {
            deliveries,
            query_prepared: check,
            submitted: now_submitted,
        } => {
            let n = deliveries.iter().map(|d| d.fan_out.len().max(1)).sum();
            count(
                limits,
                "branches",
                n,
                DELIVERIES_MAX,
                SpecError::NoDeliveries,
            )?;
            for (k, d) in deliveries.into_iter().enumerate() {
                let id = branch_id(k);
                payloads.add(&id, &d.payload)?;
                if d.fan_out.is_empty() {
                    branches.push(Branch::new(id, Op::Msg, d.target, d.payload));
                    continue;
                }
                // One payload, shared by every subscriber's delivery (stored once).
                let payload: Arc<[u8]> = d.payload.into();
                let one = d.fan_out.len() == 1;
                for (j, target) in d.fan_out.into_iter().enumerate() {
                    let id = if one {
                        id.clone()
                    } else {
                        format!("{id}-{:02}", j + 1)
                    };
                    branches.push(Branch::new(id, Op::Msg, target, payload.clone()));
                }
            }
            submitted = now_submitted;
            query_prepared = check.filter(|_| !submitted);
        }
        Shape::Workflow { name, callback } => {
            if name.is_empty()
                || name.len() > WORKFLOW_NAME_BYTES_MAX
                || name.chars().any(char::is_control)
            {
                return Err(SpecError::WorkflowName);
            }
            if let Some(c) = callback {
                payloads.add("00", &c.payload)?;
                query_prepared = Some(c.target.clone());
                branches.push(crate::workflow::callback_branch(&name, c.target, c.payload));
            }
        }
    }
    let mut tx = Transaction::new(spec.gid, kind, options, now);
    tx.branches = branches;
    tx.custom_data = spec.custom_data.filter(|c| !c.is_empty());
    tx.query_prepared = query_prepared;
    if submitted {
        tx.status = TxStatus::Submitted;
    }
    Ok(tx)
}

/// Checks a workflow's recorded step and makes the event that records it. As with
/// [`registration`], the protocol machine repeats the checks when it applies the event.
pub fn record(
    tx: &Transaction,
    branch_id: &str,
    op: Op,
    status: crate::tx::BranchStatus,
    payload: Vec<u8>,
    limits: &Limits,
) -> Result<Event, SpecError> {
    validate_branch_id(branch_id)?;
    check_record(tx, op, status, &payload, limits)?;
    Ok(Event::Record {
        branch_id: branch_id.to_string(),
        op,
        status,
        payload,
        limits: *limits,
    })
}

/// The rules a recorded workflow step must follow on `tx`: a step's op, a final status, the
/// step count and payload limits.
pub(crate) fn check_record(
    tx: &Transaction,
    op: Op,
    status: crate::tx::BranchStatus,
    payload: &[u8],
    limits: &Limits,
) -> Result<(), SpecError> {
    use crate::tx::BranchStatus;
    if op == Op::Workflow || op == Op::QueryPrepared {
        return Err(SpecError::WorkflowStep(op.as_str()));
    }
    if !matches!(status, BranchStatus::Succeeded | BranchStatus::Failed) {
        return Err(SpecError::WorkflowStep(status.as_str()));
    }
    let steps = tx.branches.iter().filter(|b| b.op != Op::Workflow).count() + 1;
    let max = limits.branches_max.min(WORKFLOW_STEPS_MAX);
    if steps > max {
        return Err(SpecError::TooManyBranches {
            what: "workflow steps",
            count: steps,
            max,
        });
    }
    let mut payloads = Payloads::new(limits);
    payloads.total = tx.branches.iter().map(|b| b.payload.len()).sum();
    payloads.add("step", payload)
}

/// Checks a TCC (or server-XA) registration of `branch_id` on `tx` and makes the event that
/// records it. The count and size checks are repeated by the protocol machine when it applies
/// the event (it alone sees concurrent registrations in order); this call answers the common
/// mistakes before the transaction's driver is involved.
pub fn registration(
    tx: &Transaction,
    branch_id: &str,
    ops: Vec<(Op, String)>,
    payload: Vec<u8>,
    limits: &Limits,
) -> Result<Event, SpecError> {
    validate_branch_id(branch_id)?;
    check_registration(tx, branch_id, &ops, &payload, limits)?;
    Ok(Event::Register {
        branch_id: branch_id.to_string(),
        ops,
        payload,
        limits: *limits,
    })
}

/// The limits a registration of `branch_id` must respect on `tx` (a repeat of a registration
/// that exists is always fine: it is idempotent).
pub(crate) fn check_registration(
    tx: &Transaction,
    branch_id: &str,
    ops: &[(Op, String)],
    payload: &[u8],
    limits: &Limits,
) -> Result<(), SpecError> {
    if ops.iter().all(|(op, _)| tx.find(branch_id, *op).is_some()) {
        return Ok(());
    }
    let mut ids: Vec<&str> = tx.branches.iter().map(|b| b.branch_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let known = ids.binary_search(&branch_id).is_ok();
    let n = ids.len() + usize::from(!known);
    let max = limits.branches_max.min(TCC_BRANCHES_MAX);
    if n > max {
        return Err(SpecError::TooManyBranches {
            what: "branches",
            count: n,
            max,
        });
    }
    let mut payloads = Payloads::new(limits);
    let mut seen = std::collections::HashSet::new();
    for b in &tx.branches {
        if seen.insert(b.branch_id.as_str()) {
            payloads.total += b.payload.len();
        }
    }
    if !known {
        payloads.add(branch_id, payload)?;
    }
    Ok(())
}

/// Sums payload bytes against the limits; a payload shared by a branch's ops counts once.
struct Payloads<'a> {
    limits: &'a Limits,
    total: usize,
}

impl<'a> Payloads<'a> {
    fn new(limits: &'a Limits) -> Self {
        Payloads { limits, total: 0 }
    }

    fn add(&mut self, branch: &str, payload: &[u8]) -> Result<(), SpecError> {
        if payload.len() > self.limits.payload_bytes_max {
            return Err(SpecError::PayloadTooLarge {
                branch: branch.to_string(),
                bytes: payload.len(),
                max: self.limits.payload_bytes_max,
            });
        }
        self.total += payload.len();
        if self.total > self.limits.tx_payload_bytes_max {
            return Err(SpecError::TxTooLarge {
                bytes: self.total,
                max: self.limits.tx_payload_bytes_max,
            });
        }
        Ok(())
    }
}

fn count(
    limits: &Limits,
    what: &'static str,
    n: usize,
    absolute: usize,
    empty: SpecError,
) -> Result<(), SpecError> {
    if n == 0 {
        return Err(empty);
    }
    let max = limits.branches_max.min(absolute);
    if n > max {
        return Err(SpecError::TooManyBranches {
            what,
            count: n,
            max,
        });
    }
    Ok(())
}

/// The saga DAG: `orders[k]` names the (0-based) steps that must succeed before step `k`.
/// Every reference must name a step and the graph must have no cycle.
pub(crate) fn check_orders(o: &Options, steps: usize) -> Result<(), SpecError> {
    let orders = &o.orders;
    if orders.is_empty() {
        return Ok(());
    }
    if !o.concurrent {
        return Err(SpecError::Orders(
            "orders given but the saga is not concurrent".into(),
        ));
    }
    if orders.len() > steps {
        return Err(SpecError::Orders(format!(
            "orders names {} steps; the saga has {steps}",
            orders.len()
        )));
    }
    if let Some(bad) = orders.iter().flatten().find(|&&d| usize::from(d) >= steps) {
        return Err(SpecError::Orders(format!(
            "orders refers to step {bad}; the saga has {steps}"
        )));
    }
    // Kahn's algorithm: every step must be reachable in some topological order.
    let deps = |k: usize| -> &[u16] { orders.get(k).map(Vec::as_slice).unwrap_or(&[]) };
    let mut indegree: Vec<usize> = (0..steps)
        .map(|k| {
            let mut d = deps(k).to_vec();
            d.sort_unstable();
            d.dedup();
            d.len()
        })
        .collect();
    let mut ready: Vec<usize> = (0..steps).filter(|&k| indegree[k] == 0).collect();
    let mut seen = 0;
    while let Some(k) = ready.pop() {
        seen += 1;
        for (j, degree) in indegree.iter_mut().enumerate() {
            let mut d = deps(j).to_vec();
            d.sort_unstable();
            d.dedup();
            if d.contains(&(k as u16)) {
                *degree -= 1;
                if *degree == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if seen != steps {
        return Err(SpecError::Orders("orders contain a cycle".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saga(n: usize) -> TxSpec {
        TxSpec {
            gid: "g".into(),
            shape: Shape::Saga(
                (0..n)
                    .map(|k| StepSpec {
                        action: format!("a{k}"),
                        compensate: format!("c{k}"),
                        payload: vec![b'x'; 10],
                    })
                    .collect(),
            ),
            options: Options::default(),
            custom_data: None,
        }
    }

    #[test]
    fn saga_layout_and_limits() {
        let tx = build(saga(2), &Limits::default(), Timestamp(5)).unwrap();
        let shape: Vec<(&str, Op, &str)> = tx
            .branches
            .iter()
            .map(|b| (b.branch_id.as_str(), b.op, b.target.as_str()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("01", Op::Action, "a0"),
                ("01", Op::Compensate, "c0"),
                ("02", Op::Action, "a1"),
                ("02", Op::Compensate, "c1"),
            ]
        );
        assert_eq!(
            (tx.kind, tx.status, tx.created_at),
            (TxKind::Saga, TxStatus::Submitted, Timestamp(5))
        );
        let small = Limits {
            branches_max: 3,
            ..Limits::default()
        };
        assert_eq!(
            build(saga(3), &small, Timestamp(0)).map(|_| ()),
            Ok(()),
            "3 steps fit a limit of 3"
        );
        assert_eq!(
            build(saga(4), &small, Timestamp(0)).err(),
            Some(SpecError::TooManyBranches {
                what: "steps",
                count: 4,
                max: 3
            })
        );
        assert_eq!(
            build(saga(0), &small, Timestamp(0)).err(),
            Some(SpecError::NoSteps)
        );
        let tiny = Limits {
            payload_bytes_max: 9,
            ..Limits::default()
        };
        assert!(matches!(
            build(saga(1), &tiny, Timestamp(0)),
            Err(SpecError::PayloadTooLarge {
                bytes: 10,
                max: 9,
                ..
            })
        ));
        let total = Limits {
            tx_payload_bytes_max: 25,
            ..Limits::default()
        };
        assert_eq!(
            build(saga(3), &total, Timestamp(0)).err(),
            Some(SpecError::TxTooLarge { bytes: 30, max: 25 })
        );
    }

    #[test]
    fn orders_are_checked() {
        let mut s = saga(2);
        s.options.concurrent = true;
        s.options.orders = vec![vec![1], vec![0]];
        assert_eq!(
            build(s.clone(), &Limits::default(), Timestamp(0))
                .err()
                .map(|e| e.code()),
            Some("invalid_orders")
        );
        s.options.orders = vec![vec![], vec![0]];
        assert!(build(s.clone(), &Limits::default(), Timestamp(0)).is_ok());
        s.options.orders = vec![vec![], vec![2]];
        assert!(build(s.clone(), &Limits::default(), Timestamp(0)).is_err());
        s.options.concurrent = false;
        s.options.orders = vec![vec![], vec![0]];
        assert!(build(s, &Limits::default(), Timestamp(0)).is_err());
    }

    #[test]
    fn two_pc_one_phase_and_msg() {
        let p = |n: &str| ParticipantSpec {
            prepare: n.into(),
            commit: n.into(),
            rollback: n.into(),
            payload: Vec::new(),
        };
        let spec = |ps: Vec<ParticipantSpec>, one_phase| TxSpec {
            gid: "g".into(),
            shape: Shape::TwoPc {
                participants: ps,
                one_phase,
            },
            options: Options::default(),
            custom_data: None,
        };
        let one = build(spec(vec![p("r")], true), &Limits::default(), Timestamp(0)).unwrap();
        assert_eq!(one.branches.len(), 1);
        assert_eq!(one.branches[0].op, Op::CommitOnePhase);
        let three = build(spec(vec![p("r")], false), &Limits::default(), Timestamp(0)).unwrap();
        let ops: Vec<Op> = three.branches.iter().map(|b| b.op).collect();
        assert_eq!(ops, vec![Op::Prepare, Op::Commit, Op::Rollback]);
        assert_eq!(
            build(spec(vec![], false), &Limits::default(), Timestamp(0)).err(),
            Some(SpecError::NoParticipants)
        );
        let msg = TxSpec {
            gid: "m".into(),
            shape: Shape::Msg {
                deliveries: vec![DeliverySpec {
                    target: "d".into(),
                    payload: Vec::new(),
                    fan_out: Vec::new(),
                }],
                query_prepared: Some("q".into()),
                submitted: true,
            },
            options: Options::default(),
            custom_data: Some(String::new()),
        };
        let m = build(msg, &Limits::default(), Timestamp(0)).unwrap();
        assert_eq!(
            (m.status, m.query_prepared, m.custom_data),
            (TxStatus::Submitted, None, None)
        );
    }

    #[test]
    fn options_rules() {
        let ok = Options::default();
        assert_eq!(ok.check(), Ok(()));
        let with = |f: fn(&mut Options)| {
            let mut o = Options::default();
            f(&mut o);
            o.check()
        };
        assert_eq!(
            with(|o| o.retry_limit = 0),
            Err(OptionsError::RetryLimit(0))
        );
        assert_eq!(
            with(|o| o.retry_limit = 10_001),
            Err(OptionsError::RetryLimit(10_001))
        );
        assert_eq!(
            with(|o| o.retry_interval_ms = 0),
            Err(OptionsError::RetryInterval)
        );
        assert_eq!(
            with(|o| o.retry_interval_ms = 61_000),
            Err(OptionsError::RetryInterval)
        );
        assert!(matches!(
            with(|o| o.request_timeout_ms = Some(0)),
            Err(OptionsError::Duration { .. })
        ));
        assert!(matches!(
            with(|o| o.timeout_to_fail_ms = Some(DURATION_MS_MAX + 1)),
            Err(OptionsError::Duration { .. })
        ));
        assert!(matches!(
            with(|o| o.branch_headers = vec![("bad header".into(), "x".into())]),
            Err(OptionsError::BadHeader(_))
        ));
        assert!(matches!(
            with(|o| o.branch_headers = vec![("x".into(), "a\nb".into())]),
            Err(OptionsError::BadHeader(_))
        ));
    }

    #[test]
    fn registrations_count_branches_not_ops() {
        let mut tx = Transaction::new("t", TxKind::Tcc, Options::default(), Timestamp(0));
        let limits = Limits {
            branches_max: 2,
            ..Limits::default()
        };
        let reg = |tx: &Transaction, id: &str| {
            registration(
                tx,
                id,
                vec![(Op::Confirm, "c".into()), (Op::Cancel, "x".into())],
                b"p".to_vec(),
                &limits,
            )
        };
        for id in ["b1", "b2"] {
            let e = reg(&tx, id).unwrap();
            tx.apply(e, Timestamp(0)).unwrap();
        }
        assert_eq!(tx.branches.len(), 4);
        assert!(reg(&tx, "b1").is_ok(), "a repeat is idempotent");
        assert_eq!(
            reg(&tx, "b3").err(),
            Some(SpecError::TooManyBranches {
                what: "branches",
                count: 3,
                max: 2
            })
        );
        assert!(matches!(reg(&tx, "b:3"), Err(SpecError::BranchId(_))));
    }

    /// DTM's topic fan-out: one delivery per subscriber, ids `kk-jj` (`kk` for one), the
    /// payload stored once; deliveries are counted after the fan-out.
    #[test]
    fn topic_fan_out_and_workflows() {
        let d = |target: &str, fan_out: &[&str]| DeliverySpec {
            target: target.into(),
            payload: b"p".to_vec(),
            fan_out: fan_out.iter().map(|s| s.to_string()).collect(),
        };
        let msg = |deliveries| TxSpec {
            gid: "m".into(),
            shape: Shape::Msg {
                deliveries,
                query_prepared: None,
                submitted: false,
            },
            options: Options::default(),
            custom_data: None,
        };
        let tx = build(
            msg(vec![
                d("topic://a", &["s1", "s2"]),
                d("u", &[]),
                d("topic://b", &["s3"]),
            ]),
            &Limits::default(),
            Timestamp(0),
        )
        .unwrap();
        let ids: Vec<(&str, &str)> = tx
            .branches
            .iter()
            .map(|b| (b.branch_id.as_str(), b.target.as_str()))
            .collect();
        assert_eq!(
            ids,
            [("01-01", "s1"), ("01-02", "s2"), ("02", "u"), ("03", "s3")]
        );
        assert!(Arc::ptr_eq(
            &tx.branches[0].payload,
            &tx.branches[1].payload
        ));
        let two = Limits {
            branches_max: 2,
            ..Limits::default()
        };
        assert!(matches!(
            build(msg(vec![d("t", &["a", "b", "c"])]), &two, Timestamp(0)),
            Err(SpecError::TooManyBranches { count: 3, .. })
        ));
        let wf = |name: &str| TxSpec {
            gid: "w".into(),
            shape: Shape::Workflow {
                name: name.into(),
                callback: Some(CallbackSpec {
                    target: "http://c/wf".into(),
                    payload: b"data".to_vec(),
                }),
            },
            options: Options::default(),
            custom_data: None,
        };
        let w = build(wf("pay"), &Limits::default(), Timestamp(0)).unwrap();
        assert_eq!((w.kind, w.status), (TxKind::Workflow, TxStatus::Prepared));
        assert_eq!(w.query_prepared.as_deref(), Some("http://c/wf"));
        assert_eq!(crate::workflow::name(&w), Some("pay"));
        assert_eq!(
            build(wf(""), &Limits::default(), Timestamp(0)).err(),
            Some(SpecError::WorkflowName)
        );
    }
}
