//! DTM's workflow: the client runs the steps and records each one here; the coordinator
//! keeps that record durable and, if the client goes away before finishing, resumes the
//! workflow by calling the client's callback until the workflow concludes.
//!
//! Layout: at most one callback branch (op [`Op::Workflow`]), whose target is the callback
//! URL, whose payload is what the callback is sent, and whose branch id is the workflow's
//! *name* (DTM calls the callback as branch `00` with the name as the op; the transport says
//! so on the wire). Then one branch per recorded step, with the ids and ops the client gave,
//! `Succeeded` or `Failed`, its result as payload; recorded steps are never called.
//!
//! ```text
//!  prepared ──Record (a step ended; sync)──► prepared
//!     │  not concluded after query_prepared_after_ms: call the callback, then again with
//!     │  backoff until the client concludes (parked past the retry limit)
//!     └──Conclude (succeeded | failed, reason, result; sync)──► succeeded | failed
//! ```
//!
//! Durability: a recorded step and the conclusion are persisted (sync) before the client
//! hears of them, so a resumed workflow sees every step it was told was recorded. A step
//! recorded twice (same branch id and op) is refused: the first record is the truth. The
//! callback answering success, FAILURE or ONGOING without the client having concluded means
//! the workflow is still unfinished: it is asked again (and counts towards the retry limit).

use crate::backoff;
use crate::event::{ApplyError, CallOutcome, Command, Event};
use crate::sched::{self, Class, Out};
use crate::tx::{Branch, BranchStatus, Op, Timestamp, Transaction, TxStatus};

/// The callback branch's index, if the workflow has one.
fn callback(tx: &Transaction) -> Option<usize> {
    tx.branches.iter().position(|b| b.op == Op::Workflow)
}

/// The workflow's name (kept as its callback branch's id), if it has a callback.
pub fn name(tx: &Transaction) -> Option<&str> {
    callback(tx).map(|i| tx.branches[i].branch_id.as_str())
}

/// The callback branch of a new workflow called `name`.
pub fn callback_branch(name: &str, target: impl Into<String>, payload: Vec<u8>) -> Branch {
    Branch::new(name, Op::Workflow, target, payload)
}

pub(crate) fn apply(
    tx: &mut Transaction,
    event: Event,
    now: Timestamp,
    cmds: &mut Vec<Command>,
) -> Result<(), ApplyError> {
    let mut out = Out::default();
    match event {
        Event::Start => {
            let callbacks = tx.branches.iter().filter(|b| b.op == Op::Workflow).count();
            if callbacks > 1 || tx.branches.len() > callbacks {
                return Err(ApplyError::Invalid(
                    "a new workflow has at most its callback branch".into(),
                ));
            }
            if let Some(i) = callback(tx) {
                tx.branches[i].next_at =
                    Some(tx.created_at.plus_ms(tx.options.query_prepared_after_ms));
            }
            out.persist(true);
        }
        Event::Resume => sched::resume(tx),
        Event::Record {
            branch_id,
            op,
            status,
            payload,
            limits,
        } => {
            if tx.status != TxStatus::Prepared {
                return Err(ApplyError::wrong_status(tx, "registerBranch (workflow)"));
            }
            if tx.find(&branch_id, op).is_some() {
                return Err(ApplyError::BranchConflict {
                    branch_id,
                    op: op.as_str(),
                });
            }
            crate::spec::check_record(tx, op, status, &payload, &limits)?;
            let mut b = Branch::new(branch_id, op, "", payload);
            b.status = status;
            tx.branches.push(b);
            out.persist(true);
        }
        Event::Conclude {
            status,
            reason,
            result,
        } => {
            if tx.status != TxStatus::Prepared {
                return Err(ApplyError::wrong_status(tx, "submit (workflow)"));
            }
            if !status.is_final() {
                return Err(ApplyError::Invalid(format!(
                    "a workflow ends succeed or failed, not {}",
                    status.as_str()
                )));
            }
            if let Some(i) = callback(tx) {
                let b = &mut tx.branches[i];
                if !b.status.is_done() {
                    b.status = BranchStatus::Skipped;
                }
            }
            if !reason.is_empty() {
                tx.fail_reason = Some(reason);
            }
            tx.result = Some(result).filter(|r| !r.is_empty());
            tx.note(
                now,
                "concluded",
                format!("the client ended it {}", status.as_str()),
            );
            sched::end(tx, now, status, true, &mut out);
        }
        Event::Answer {
            branch,
            outcome,
            at,
            latency_us,
            code,
        } => {
            // The callback answered, but only the client's conclusion ends a workflow: any
            // answer while it is still prepared means "ask again".
            let unfinished = match &outcome {
                CallOutcome::Success | CallOutcome::ReadOnly => {
                    Some("the callback answered success but the workflow did not conclude")
                }
                CallOutcome::Failure(_) => Some("the callback answered FAILURE"),
                // (NotPrepared is an XA answer; a workflow's callback never gives it.)
                CallOutcome::Ongoing | CallOutcome::Error(_) | CallOutcome::NotPrepared => None,
            };
            let streak = tx.branches[branch].streak;
            let class = sched::answer(tx, branch, outcome, at, latency_us, code, now, &mut out);
            let class = match unfinished {
                Some(why) => {
                    // A success answer would restart the streak; here it is not progress.
                    tx.branches[branch].streak = streak;
                    again(tx, branch, now, why)
                }
                None => class,
            };
            if let Class::Exhausted(r) = class {
                sched::park(tx, now, r, &mut out);
            }
        }
        Event::Tick => {}
        Event::Retry { reason } => sched::operator_retry(tx, now, reason, &mut out),
        Event::Park { reason } => sched::park(tx, now, reason, &mut out),
        Event::Stop { reason } => {
            tx.note(now, "stop", reason.clone());
            tx.fail_reason
                .get_or_insert(format!("stopped by operator: {reason}"));
            sched::end(tx, now, TxStatus::Failed, true, &mut out);
        }
        Event::Register { .. } | Event::Submit | Event::Abort => {
            return Err(ApplyError::WrongKind {
                kind: "workflow",
                what: crate::event::event_name(&event),
            })
        }
    }
    if !tx.is_final() {
        if let Some(i) = callback(tx) {
            if sched::due(tx, i, now) {
                sched::issue(tx, i, &mut out);
            }
        }
    }
    out.finish(tx, now, None, cmds);
    Ok(())
}

/// The callback's answer left the workflow unfinished: call again after a backoff, and
/// count it towards the retry limit like an error.
fn again(tx: &mut Transaction, i: usize, now: Timestamp, why: &str) -> Class {
    let (limit, base, cap) = (
        tx.options.retry_limit.max(1),
        tx.options.retry_interval_ms,
        tx.options.retry_max_ms,
    );
    let seed = backoff::seed(&tx.gid, i, tx.branches[i].attempts);
    let b = &mut tx.branches[i];
    b.streak += 1;
    b.next_at = Some(now.plus_ms(backoff::delay_ms(base, cap, b.streak, seed)));
    if b.streak >= limit {
        return Class::Exhausted(format!(
            "workflow {} still unfinished after {} callbacks: {why}",
            b.branch_id, b.streak
        ));
    }
    Class::Again
}
