//! TCC (try/confirm/cancel), and DTM's XA mode, which has the same shape.
//!
//! The application drives the first phase itself: it registers each branch (naming the
//! ops the coordinator will call later — `confirm`/`cancel`, or `commit`/`rollback` in XA
//! mode) and then calls its try (or prepares its local XA branch). It then submits or
//! aborts; the coordinator finishes the second phase on every registered branch.
//!
//! ```text
//!  prepared ──submit──► submitted ── all confirmed ──► succeeded
//!     │ abort, or timeout_to_fail
//!     ▼
//!  aborting ── all cancelled ──► failed
//! ```
//!
//! Durability: the transaction and every registration are persisted (sync) before they are
//! acknowledged, since the application calls a try only after its registration is
//! acknowledged, and a try nobody knows about could never be cancelled. The submit decision
//! is persisted (sync) before the first confirm, and the abort decision (by the application,
//! the operator or the timeout) before the first cancel. Confirm and cancel must not fail: a
//! FAILURE answer or an exhausted retry parks the transaction for an operator.

use crate::event::{ApplyError, Command, Event};
use crate::sched::{self, Class, Out};
use crate::tx::{Branch, BranchStatus, Op, Timestamp, Transaction, TxStatus};

pub(crate) fn apply(
    tx: &mut Transaction,
    event: Event,
    now: Timestamp,
    cmds: &mut Vec<Command>,
) -> Result<(), ApplyError> {
    let mut out = Out::default();
    match event {
        Event::Start => out.persist(true),
        Event::Resume => sched::resume(tx),
        Event::Register {
            branch_id,
            ops,
            payload,
            limits,
        } => {
            if tx.status != TxStatus::Prepared {
                return Err(ApplyError::wrong_status(tx, "registerBranch"));
            }
            crate::spec::check_registration(tx, &branch_id, &ops, &payload, &limits)?;
            if ops.is_empty() || ops.iter().any(|(op, _)| !is_second_phase(*op)) {
                return Err(ApplyError::Invalid(
                    "a branch registers one or more of confirm, cancel, commit, rollback".into(),
                ));
            }
            let mut fresh = Vec::new();
            let payload: std::sync::Arc<[u8]> = payload.into();
            for (op, target) in ops {
                match tx.find(&branch_id, op) {
                    Some(i)
                        if tx.branches[i].target == target && tx.branches[i].payload == payload => {
                    }
                    Some(_) => {
                        return Err(ApplyError::BranchConflict {
                            branch_id,
                            op: op.as_str(),
                        })
                    }
                    None => fresh.push(Branch::new(branch_id.clone(), op, target, payload.clone())),
                }
            }
            if !fresh.is_empty() {
                tx.branches.extend(fresh);
                out.persist(true);
            }
        }
        Event::Submit => match tx.status {
            TxStatus::Prepared => {
                tx.status = TxStatus::Submitted;
                skip_all(tx, &[Op::Cancel, Op::Rollback]);
                out.persist(true);
            }
            TxStatus::Submitted => {}
            _ => return Err(ApplyError::wrong_status(tx, "submit")),
        },
        Event::Abort => match tx.status {
            TxStatus::Prepared => {
                abort(tx, now, "aborted by the application".into());
                out.persist(true);
            }
            TxStatus::Aborting => {}
            _ => return Err(ApplyError::wrong_status(tx, "abort")),
        },
        Event::Answer {
            branch,
            outcome,
            at,
            latency_us,
            code,
        } => {
            let class = sched::answer(tx, branch, outcome, at, latency_us, code, now, &mut out);
            let b = &tx.branches[branch];
            let what = format!("branch {}/{}", b.branch_id, b.op.as_str());
            match class {
                Class::Success | Class::ReadOnly | Class::NotPrepared => {
                    tx.branches[branch].status = BranchStatus::Succeeded
                }
                Class::Failure(r) => {
                    tx.branches[branch].next_at = None;
                    sched::park(tx, now, format!("{what} answered FAILURE: {r}"), &mut out);
                }
                Class::Exhausted(r) => sched::park(tx, now, r, &mut out),
                Class::Again => {}
            }
        }
        Event::Tick => {
            if tx.status == TxStatus::Prepared && sched::deadline(tx).is_some_and(|d| d <= now) {
                abort(tx, now, "timeout_to_fail passed before submit".into());
                // Durable before the first cancel: a restart in `prepared` would accept a
                // submit and confirm branches that were already cancelled.
                out.persist(true);
            }
        }
        Event::Record { .. } | Event::Conclude { .. } => {
            return Err(ApplyError::WrongKind {
                kind: "tcc",
                what: crate::event::event_name(&event),
            })
        }
        Event::Retry { reason } => sched::operator_retry(tx, now, reason, &mut out),
        Event::Park { reason } => sched::park(tx, now, reason, &mut out),
        Event::Stop { reason } => {
            if tx.status != TxStatus::Prepared {
                return Err(ApplyError::wrong_status(
                    tx,
                    "stop (after the decision; retry instead)",
                ));
            }
            tx.note(now, "stop", reason.clone());
            abort(tx, now, format!("stopped by operator: {reason}"));
            out.persist(true);
        }
    }
    drive(tx, now, &mut out);
    let deadline = if tx.status == TxStatus::Prepared {
        sched::deadline(tx)
    } else {
        None
    };
    out.finish(tx, now, deadline, cmds);
    Ok(())
}

fn is_second_phase(op: Op) -> bool {
    matches!(op, Op::Confirm | Op::Cancel | Op::Commit | Op::Rollback)
}

fn skip_all(tx: &mut Transaction, ops: &[Op]) {
    for b in tx.branches.iter_mut().filter(|b| ops.contains(&b.op)) {
        b.status = BranchStatus::Skipped;
    }
}

fn abort(tx: &mut Transaction, now: Timestamp, why: String) {
    tx.status = TxStatus::Aborting;
    tx.note(now, "aborting", why.clone());
    tx.fail_reason.get_or_insert(why);
    skip_all(tx, &[Op::Confirm, Op::Commit]);
}

fn drive(tx: &mut Transaction, now: Timestamp, out: &mut Out) {
    let ops: &[Op] = match tx.status {
        TxStatus::Submitted => &[Op::Confirm, Op::Commit],
        TxStatus::Aborting => &[Op::Cancel, Op::Rollback],
        _ => return,
    };
    let mut done = true;
    for i in 0..tx.branches.len() {
        if !ops.contains(&tx.branches[i].op) || tx.branches[i].status.is_done() {
            continue;
        }
        done = false;
        if sched::due(tx, i, now) {
            sched::issue(tx, i, out);
        }
    }
    if done {
        let status = if tx.status == TxStatus::Submitted {
            TxStatus::Succeeded
        } else {
            TxStatus::Failed
        };
        sched::end(tx, now, status, false, out);
    }
}
