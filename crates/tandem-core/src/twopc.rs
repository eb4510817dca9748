//! Two-phase commit driven by the coordinator, with presumed abort.
//!
//! Layout: participant `k` is `branches[3k..3k+3]` = `prepare`, `commit`, `rollback`, branch
//! id `k+1` as two digits. A transaction with a single participant is laid out as one
//! `commit_one_phase` branch instead and commits in one round trip.
//!
//! ```text
//!            all voted yes (or read-only)
//! prepared ─────── decision logged (sync) ──► submitted ── all committed ──► succeeded
//!     │ a no vote, a prepare error, timeout, or a restart before the decision
//!     ▼
//! aborting ── every maybe-prepared participant rolled back ──► failed
//! ```
//!
//! Durability: the participant list is persisted (sync) before the first prepare, so after a
//! crash every participant that may hold a prepared transaction is known and rolled back —
//! unless every participant can itself be asked for its prepared transactions
//! (`participants_listable`: XA databases under in-doubt recovery). Then the list is written
//! unforced: a crash that loses it leaves prepared xids no record explains, which in-doubt
//! recovery rolls back (presumed abort), at the price of holding their locks until they are
//! old enough to count as orphans.
//! Likewise a one-phase transaction is persisted (sync) before its only call, so that the
//! outcome the participant reaches is never reported as "no such transaction".
//! The commit decision is persisted (sync) before the first commit: it is the record that
//! makes the outcome commit. Nothing else is waited for — no decision record means abort
//! (presumed abort), so neither the abort nor the end needs a forced write.
//! **Heuristic outcomes.** A commit answered "no prepared transaction under this xid" (an XA
//! resource) is success only when an earlier commit of ours may have done it: this branch's
//! commit was sent before, or the transaction was resumed from the log with it unfinished. If
//! not, the branch voted yes, the decision is commit, and yet its prepared work is gone —
//! someone else resolved it. That is recorded as the transaction's `heuristic` outcome
//! (durably), phase 2 goes on for the other participants, and the transaction is then parked
//! instead of reported `succeeded`; only an operator's stop ends it (`failed`, the heuristic
//! kept on the record).
//! A read-only vote skips phase 2 for that participant. A prepare that errors aborts at once
//! (its locks would otherwise be held across retries); a commit or rollback is retried with
//! backoff and parks the transaction past the retry limit — never dropped.

use crate::event::{ApplyError, Command, Event};
use crate::sched::{self, Class, Out};
use crate::tx::{BranchStatus, Op, Timestamp, Transaction, TxStatus};

use crate::spec::PARTICIPANTS_MAX;

pub(crate) fn apply(
    tx: &mut Transaction,
    event: Event,
    now: Timestamp,
    cmds: &mut Vec<Command>,
) -> Result<(), ApplyError> {
    let mut out = Out::default();
    let one_phase = is_one_phase(tx);
    match event {
        Event::Start => {
            validate(tx)?;
            if one_phase {
                tx.status = TxStatus::Submitted;
            }
            out.persist(one_phase || !tx.participants_listable);
        }
        Event::Resume => {
            sched::resume(tx);
            if tx.status == TxStatus::Prepared {
                abort(
                    tx,
                    now,
                    "coordinator restarted before the decision (presumed abort)".into(),
                );
                out.persist(false);
            }
        }
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
                (Op::Prepare, Class::Success) => {
                    tx.branches[branch].status = BranchStatus::Succeeded
                }
                (Op::Prepare, Class::ReadOnly) => {
                    tx.branches[branch].status = BranchStatus::Succeeded;
                    tx.branches[branch + 1].status = BranchStatus::Skipped;
                    tx.branches[branch + 2].status = BranchStatus::Skipped;
                }
                (Op::Prepare, Class::Failure(r)) => {
                    tx.branches[branch].status = BranchStatus::Failed;
                    if tx.status == TxStatus::Prepared {
                        abort(tx, now, format!("participant {id} voted no: {r}"));
                    }
                }
                (Op::Prepare, Class::Again)
                    if tx.branches[branch]
                        .recent
                        .last()
                        .is_some_and(|a| a.outcome == crate::AttemptOutcome::Error) =>
                {
                    if tx.status == TxStatus::Prepared {
                        let err = tx.branches[branch]
                            .recent
                            .last()
                            .and_then(|a| a.error.clone())
                            .unwrap_or_default();
                        abort(
                            tx,
                            now,
                            format!("prepare of participant {id} failed: {err}"),
                        );
                    }
                    tx.branches[branch].next_at = None;
                }
                (Op::Prepare, Class::Exhausted(r)) => {
                    if tx.status == TxStatus::Prepared {
                        abort(tx, now, r);
                    }
                    tx.branches[branch].next_at = None;
                }
                (Op::Prepare, Class::Again) => {
                    if tx.status != TxStatus::Prepared {
                        tx.branches[branch].next_at = None;
                    }
                }
                (Op::Commit, Class::NotPrepared) => {
                    let b = &tx.branches[branch];
                    if b.uncertain || b.attempts > 1 {
                        // An earlier commit of ours may have done it; its answer was lost.
                        tx.branches[branch].status = BranchStatus::Succeeded;
                    } else {
                        tx.branches[branch].status = BranchStatus::Failed;
                        tx.heuristic.get_or_insert(format!(
                            "participant {id} voted yes and the commit decision is logged, but at the first commit it had no prepared transaction: something else resolved it (a rollback by hand?)"
                        ));
                        out.persist(true);
                    }
                }
                (Op::Rollback, Class::NotPrepared) => {
                    tx.branches[branch].status = BranchStatus::Succeeded
                }
                (Op::Prepare, Class::NotPrepared) => {
                    tx.branches[branch].status = BranchStatus::Failed;
                    if tx.status == TxStatus::Prepared {
                        abort(
                            tx,
                            now,
                            format!("participant {id} answered prepare with \"not prepared\""),
                        );
                    }
                }
                (Op::CommitOnePhase, Class::Success | Class::ReadOnly) => {
                    tx.branches[branch].status = BranchStatus::Succeeded;
                }
                (Op::CommitOnePhase, Class::NotPrepared) => {
                    tx.branches[branch].status = BranchStatus::Failed;
                    tx.fail_reason.get_or_insert(format!(
                        "participant {id} answered its one-phase commit with \"not prepared\""
                    ));
                    sched::end(tx, now, TxStatus::Failed, false, &mut out);
                }
                (Op::CommitOnePhase, Class::Failure(r)) => {
                    tx.branches[branch].status = BranchStatus::Failed;
                    tx.fail_reason
                        .get_or_insert(format!("participant {id} refused to commit: {r}"));
                    sched::end(tx, now, TxStatus::Failed, false, &mut out);
                }
                (_, Class::Success | Class::ReadOnly | Class::NotPrepared) => {
                    tx.branches[branch].status = BranchStatus::Succeeded
                }
                (_, Class::Failure(r)) => {
                    // After a yes vote a participant must not refuse phase 2; an operator must look.
                    tx.branches[branch].next_at = None;
                    let why = format!("participant {id} refused {}: {r}", op.as_str());
                    sched::park(tx, now, why, &mut out);
                }
                (_, Class::Exhausted(r)) => sched::park(tx, now, r, &mut out),
                (_, Class::Again) => {}
            }
        }
        Event::Tick => {
            if tx.status == TxStatus::Prepared && sched::deadline(tx).is_some_and(|d| d <= now) {
                abort(tx, now, "timeout_to_fail passed before the decision".into());
                out.persist(false);
            }
        }
        Event::Retry { reason } => sched::operator_retry(tx, now, reason, &mut out),
        Event::Park { reason } => sched::park(tx, now, reason, &mut out),
        Event::Stop { reason } if tx.heuristic.is_some() => {
            // The operator has looked at the heuristic outcome and ends the transaction.
            tx.note(now, "stop", reason.clone());
            let why = tx.heuristic.clone().unwrap_or_default();
            tx.fail_reason.get_or_insert(format!(
                "heuristic outcome, stopped by operator ({reason}): {why}"
            ));
            sched::end(tx, now, TxStatus::Failed, true, &mut out);
            out.finish(tx, now, None, cmds);
            return Ok(());
        }
        Event::Stop { reason } => {
            if tx.status != TxStatus::Prepared || one_phase {
                return Err(ApplyError::wrong_status(
                    tx,
                    "stop (after the decision; retry instead)",
                ));
            }
            tx.note(now, "stop", reason.clone());
            abort(tx, now, format!("stopped by operator: {reason}"));
            out.persist(false);
        }
        Event::Register { .. }
        | Event::Submit
        | Event::Abort
        | Event::Record { .. }
        | Event::Conclude { .. } => {
            return Err(ApplyError::WrongKind {
                kind: "2pc",
                what: crate::event::event_name(&event),
            })
        }
    }
    if !tx.is_final() {
        drive(tx, now, one_phase, &mut out);
    }
    let deadline = if tx.status == TxStatus::Prepared {
        sched::deadline(tx)
    } else {
        None
    };
    out.finish(tx, now, deadline, cmds);
    Ok(())
}

fn is_one_phase(tx: &Transaction) -> bool {
    tx.branches.len() == 1 && tx.branches[0].op == Op::CommitOnePhase
}

fn validate(tx: &Transaction) -> Result<(), ApplyError> {
    if is_one_phase(tx) {
        return Ok(());
    }
    let n = tx.branches.len();
    if n == 0 || !n.is_multiple_of(3) || n / 3 > PARTICIPANTS_MAX {
        return Err(ApplyError::Invalid(format!(
            "2pc needs 1..={PARTICIPANTS_MAX} participants, each prepare+commit+rollback; got {n} branches"
        )));
    }
    for (k, p) in tx.branches.chunks(3).enumerate() {
        let ops = [p[0].op, p[1].op, p[2].op];
        if ops != [Op::Prepare, Op::Commit, Op::Rollback]
            || p.iter().any(|b| b.branch_id != p[0].branch_id)
        {
            return Err(ApplyError::Invalid(format!(
                "participant {k}: expected prepare, commit, rollback"
            )));
        }
    }
    Ok(())
}

/// Moves to `aborting`: every participant that may hold a prepared transaction is rolled
/// back; the rest skip phase 2.
fn abort(tx: &mut Transaction, now: Timestamp, why: String) {
    tx.status = TxStatus::Aborting;
    tx.note(now, "aborting", why.clone());
    tx.fail_reason.get_or_insert(why);
    tx.parked = None;
    for k in 0..tx.branches.len() / 3 {
        // A prepare is never called again once aborting; a retry time left on it would keep
        // the wake-up pointing at the past and starve the rollbacks' retries.
        tx.branches[3 * k].next_at = None;
        let prepare = tx.branches[3 * k].status;
        let read_only = tx.branches[3 * k + 1].status == BranchStatus::Skipped;
        tx.branches[3 * k + 1].status = BranchStatus::Skipped;
        if prepare == BranchStatus::Failed || read_only {
            tx.branches[3 * k + 2].status = BranchStatus::Skipped;
        }
    }
}

fn drive(tx: &mut Transaction, now: Timestamp, one_phase: bool, out: &mut Out) {
    if one_phase {
        if sched::due(tx, 0, now) {
            sched::issue(tx, 0, out);
        }
        if tx.branches[0].status == BranchStatus::Succeeded {
            sched::end(tx, now, TxStatus::Succeeded, false, out);
        }
        return;
    }
    let n = tx.branches.len() / 3;
    match tx.status {
        TxStatus::Prepared => {
            if (0..n).all(|k| tx.branches[3 * k].status == BranchStatus::Succeeded) {
                tx.status = TxStatus::Submitted;
                out.persist(true); // the commit decision: durable before any commit is sent
            } else {
                for k in 0..n {
                    if sched::due(tx, 3 * k, now) {
                        sched::issue(tx, 3 * k, out);
                    }
                }
                return;
            }
            phase_two(tx, now, Op::Commit, out);
        }
        TxStatus::Submitted => phase_two(tx, now, Op::Commit, out),
        TxStatus::Aborting => phase_two(tx, now, Op::Rollback, out),
        _ => {}
    }
}

fn phase_two(tx: &mut Transaction, now: Timestamp, op: Op, out: &mut Out) {
    let n = tx.branches.len() / 3;
    let offset = if op == Op::Commit { 1 } else { 2 };
    let mut done = true;
    for k in 0..n {
        let i = 3 * k + offset;
        if tx.branches[i].status.is_done() {
            continue;
        }
        done = false;
        // Never roll back under a prepare that is still in flight: wait for its answer.
        if tx.branches[3 * k].in_flight {
            continue;
        }
        if sched::due(tx, i, now) {
            sched::issue(tx, i, out);
        }
    }
    if done && !(0..n).any(|k| tx.branches[3 * k].in_flight) {
        if let Some(why) = tx.heuristic.clone().filter(|_| op == Op::Commit) {
            // Never reported as success: an operator must look, then stop it.
            sched::park(tx, now, format!("heuristic outcome: {why}"), out);
            return;
        }
        let status = if op == Op::Commit {
            TxStatus::Succeeded
        } else {
            TxStatus::Failed
        };
        sched::end(tx, now, status, false, out);
    }
}
