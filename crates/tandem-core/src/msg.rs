//! The transactional message: the sender prepares it inside its local transaction, then
//! submits; if it never does, the coordinator asks the sender's query-prepared check.
//!
//! Layout: the delivery branches (op `msg`), then, when the sender gave a check target, one
//! `query_prepared` branch with branch id "00", due `query_prepared_after_ms` after creation.
//!
//! ```text
//!  prepared ──submit, or the check answers success──► submitted ── all delivered ──► succeeded
//!     │ the check answers FAILURE (the sender rolled back)
//!     ▼
//!   failed
//! ```
//!
//! Durability: prepare and submit are persisted (sync) before they are acknowledged. A
//! delivery is retried until it succeeds; a FAILURE answer or an exhausted retry parks the
//! message (a submitted message must be delivered, so no automatic undo exists). The check
//! answering `ONGOING` means "the sender's transaction is still open": ask again later.
//!
//! A message prepared **without** a check has nobody to ask: if it is still `prepared`
//! `timeout_to_fail_ms` after creation (or, when that is not set, `query_prepared_after_ms`,
//! when a check would have been asked), it ends `failed` — a sender that died never holds a
//! slot forever.

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
        Event::Start => {
            if tx.branches.is_empty() || tx.branches.iter().any(|b| b.op != Op::Msg) {
                return Err(ApplyError::Invalid(
                    "a message needs one or more msg branches".into(),
                ));
            }
            if let Some(target) = tx.query_prepared.clone() {
                let mut check = Branch::new("00", Op::QueryPrepared, target, Vec::new());
                check.next_at = Some(tx.created_at.plus_ms(tx.options.query_prepared_after_ms));
                tx.branches.push(check);
            }
            out.persist(true);
        }
        Event::Resume => sched::resume(tx),
        Event::Submit => match tx.status {
            TxStatus::Prepared => {
                submit(tx, now, "submitted by the sender");
                out.persist(true);
            }
            TxStatus::Submitted => {}
            _ => return Err(ApplyError::wrong_status(tx, "submit")),
        },
        Event::Answer {
            branch,
            outcome,
            at,
            latency_us,
            code,
        } => {
            let class = sched::answer(tx, branch, outcome, at, latency_us, code, now, &mut out);
            let op = tx.branches[branch].op;
            let id = tx.branches[branch].branch_id.clone();
            match (op, class) {
                (Op::QueryPrepared, _) if tx.status != TxStatus::Prepared => {
                    tx.branches[branch].status = BranchStatus::Skipped;
                    tx.branches[branch].next_at = None;
                }
                (Op::QueryPrepared, Class::NotPrepared) => {
                    // Not an answer a check can give (only XA resources say it): ask again.
                    let at = now.plus_ms(tx.options.retry_interval_ms.max(1));
                    tx.branches[branch].next_at = Some(at);
                }
                (Op::QueryPrepared, Class::Success | Class::ReadOnly) => {
                    tx.branches[branch].status = BranchStatus::Succeeded;
                    submit(tx, now, "query-prepared answered success");
                    out.persist(true);
                }
                (Op::QueryPrepared, Class::Failure(r)) => {
                    tx.branches[branch].status = BranchStatus::Failed;
                    tx.fail_reason
                        .get_or_insert(format!("the sender rolled back: {r}"));
                    for b in tx.branches.iter_mut().filter(|b| b.op == Op::Msg) {
                        b.status = BranchStatus::Skipped;
                    }
                    sched::end(tx, now, TxStatus::Failed, true, &mut out);
                }
                (_, Class::Success | Class::ReadOnly | Class::NotPrepared) => {
                    tx.branches[branch].status = BranchStatus::Succeeded
                }
                (_, Class::Failure(r)) => {
                    tx.branches[branch].next_at = None;
                    sched::park(
                        tx,
                        now,
                        format!("delivery {id} answered FAILURE: {r}"),
                        &mut out,
                    );
                }
                (_, Class::Exhausted(r)) => sched::park(tx, now, r, &mut out),
                (_, Class::Again) => {}
            }
        }
        Event::Tick => {
            if no_check_deadline(tx).is_some_and(|d| d <= now) {
                tx.fail_reason.get_or_insert(
                    "not submitted in time, and there is no query_prepared check to ask".into(),
                );
                for b in tx.branches.iter_mut() {
                    b.status = BranchStatus::Skipped;
                }
                sched::end(tx, now, TxStatus::Failed, true, &mut out);
            }
        }
        Event::Retry { reason } => sched::operator_retry(tx, now, reason, &mut out),
        Event::Park { reason } => sched::park(tx, now, reason, &mut out),
        Event::Stop { reason } => {
            if tx.status != TxStatus::Prepared {
                return Err(ApplyError::wrong_status(
                    tx,
                    "stop (after submit; retry instead)",
                ));
            }
            tx.note(now, "stop", reason.clone());
            tx.fail_reason
                .get_or_insert(format!("stopped by operator: {reason}"));
            sched::end(tx, now, TxStatus::Failed, true, &mut out);
        }
        Event::Register { .. } | Event::Abort | Event::Record { .. } | Event::Conclude { .. } => {
            return Err(ApplyError::WrongKind {
                kind: "msg",
                what: crate::event::event_name(&event),
            })
        }
    }
    if !tx.is_final() {
        drive(tx, now, &mut out);
    }
    let deadline = no_check_deadline(tx);
    out.finish(tx, now, deadline, cmds);
    Ok(())
}

/// When a prepared message without a query-prepared check is given up (see the module doc).
fn no_check_deadline(tx: &Transaction) -> Option<Timestamp> {
    let waiting =
        tx.status == TxStatus::Prepared && !tx.branches.iter().any(|b| b.op == Op::QueryPrepared);
    waiting.then(|| {
        let ms = tx
            .options
            .timeout_to_fail_ms
            .unwrap_or(tx.options.query_prepared_after_ms);
        tx.created_at.plus_ms(ms)
    })
}

fn submit(tx: &mut Transaction, now: Timestamp, why: &str) {
    tx.status = TxStatus::Submitted;
    tx.note(now, "submitted", why);
    for b in tx
        .branches
        .iter_mut()
        .filter(|b| b.op == Op::QueryPrepared && !b.in_flight)
    {
        if !b.status.is_done() {
            b.status = BranchStatus::Skipped;
        }
        b.next_at = None;
    }
}

fn drive(tx: &mut Transaction, now: Timestamp, out: &mut Out) {
    match tx.status {
        TxStatus::Prepared => {
            if let Some(i) = tx.branches.iter().position(|b| b.op == Op::QueryPrepared) {
                if sched::due(tx, i, now) {
                    sched::issue(tx, i, out);
                }
            }
        }
        TxStatus::Submitted => {
            let mut done = true;
            for i in 0..tx.branches.len() {
                if tx.branches[i].op != Op::Msg || tx.branches[i].status.is_done() {
                    continue;
                }
                done = false;
                if sched::due(tx, i, now) {
                    sched::issue(tx, i, out);
                }
            }
            if done {
                sched::end(tx, now, TxStatus::Succeeded, false, out);
            }
        }
        _ => {}
    }
}
