//! The saga: steps run forward; if one fails for business reasons, every step whose action
//! started is compensated, in reverse dependency order.
//!
//! Layout: step `k` is `branches[2k]` (op `action`) and `branches[2k+1]` (op `compensate`),
//! both with branch id `k+1` written as two digits ("01", "02", … as DTM does).
//!
//! ```text
//!            all actions succeeded
//! submitted ─────────────────────────► succeeded
//!     │ an action answered FAILURE, or timeout_to_fail passed
//!     ▼
//! aborting ── every started step compensated (reverse DAG order) ──► failed
//! ```
//!
//! Order: sequential by default; with `options.concurrent`, `options.orders[k]` names the
//! steps that must succeed before step `k` starts (a DAG, checked at start). A compensation
//! runs only after the compensations of every started step that depends on it, and never
//! while its own action is still in flight. A step whose action was never called is never
//! compensated (its compensation is marked skipped). A compensation that answers FAILURE
//! cannot be completed automatically: the saga is parked for an operator (DTM would retry
//! it forever).
//!
//! Durability: the saga is persisted (sync) before the first call of each action (so a crash
//! never forgets a step that may have run), before the first compensation (the abort), and
//! at its end before anyone is told. Step results and retries are persisted without waiting:
//! if one is lost in a crash, the step is simply called again (at-least-once, made harmless
//! by the participant's barrier or idempotency key).

use crate::event::{ApplyError, Command, Event};
use crate::sched::{self, Class, Out};
use crate::tx::{BranchStatus, Op, Timestamp, Transaction, TxStatus};

use crate::spec::SAGA_STEPS_MAX as STEPS_MAX;

pub(crate) fn apply(
    tx: &mut Transaction,
    event: Event,
    now: Timestamp,
    cmds: &mut Vec<Command>,
) -> Result<(), ApplyError> {
    let mut out = Out::default();
    match event {
        Event::Start => {
            validate(tx)?;
            out.persist(true);
        }
        Event::Resume => sched::resume(tx),
        Event::Answer {
            branch,
            outcome,
            at,
            latency_us,
            code,
        } => {
            let class = sched::answer(tx, branch, outcome, at, latency_us, code, now, &mut out);
            let op = tx.branches[branch].op;
            match (class, op) {
                (Class::Success | Class::ReadOnly | Class::NotPrepared, _) => {
                    tx.branches[branch].status = BranchStatus::Succeeded
                }
                (Class::Failure(reason), Op::Action) => {
                    tx.branches[branch].status = BranchStatus::Failed;
                    if tx.status == TxStatus::Submitted {
                        let why =
                            format!("step {} failed: {reason}", tx.branches[branch].branch_id);
                        start_abort(tx, now, why, &mut out);
                    }
                }
                (Class::Failure(reason), _) => {
                    // A compensation must not fail; keep it unresolved and ask an operator.
                    tx.branches[branch].next_at = None;
                    let why = format!(
                        "compensation of step {} answered FAILURE: {reason}",
                        tx.branches[branch].branch_id
                    );
                    sched::park(tx, now, why, &mut out);
                }
                // An action is not retried once aborting (its compensation follows instead),
                // so its retry streak no longer matters.
                (Class::Exhausted(_), Op::Action) if tx.status == TxStatus::Aborting => {}
                (Class::Exhausted(reason), _) => sched::park(tx, now, reason, &mut out),
                (Class::Again, _) => {}
            }
            if op == Op::Action && tx.status == TxStatus::Aborting {
                // No more action retries once aborting: its compensation follows instead.
                tx.branches[branch].next_at = None;
            }
        }
        Event::Tick => {
            if tx.status == TxStatus::Submitted && sched::deadline(tx).is_some_and(|d| d <= now) {
                start_abort(tx, now, "timeout_to_fail passed".into(), &mut out);
            }
        }
        Event::Retry { reason } => sched::operator_retry(tx, now, reason, &mut out),
        Event::Park { reason } => sched::park(tx, now, reason, &mut out),
        Event::Stop { reason } => {
            tx.note(now, "stop", reason.clone());
            tx.fail_reason
                .get_or_insert(format!("stopped by operator: {reason}"));
            sched::end(tx, now, TxStatus::Failed, true, &mut out);
            out.finish(tx, now, None, cmds);
            return Ok(());
        }
        Event::Register { .. }
        | Event::Submit
        | Event::Abort
        | Event::Record { .. }
        | Event::Conclude { .. } => {
            return Err(ApplyError::WrongKind {
                kind: "saga",
                what: crate::event::event_name(&event),
            })
        }
    }
    drive(tx, now, &mut out);
    let deadline = if tx.status == TxStatus::Submitted {
        sched::deadline(tx)
    } else {
        None
    };
    out.finish(tx, now, deadline, cmds);
    Ok(())
}

fn validate(tx: &Transaction) -> Result<(), ApplyError> {
    let n = tx.branches.len();
    if n == 0 || !n.is_multiple_of(2) || n / 2 > STEPS_MAX {
        return Err(ApplyError::Invalid(format!(
            "a saga needs 1..={STEPS_MAX} steps, each an action and a compensation; got {n} branches"
        )));
    }
    for (k, pair) in tx.branches.chunks(2).enumerate() {
        if pair[0].op != Op::Action
            || pair[1].op != Op::Compensate
            || pair[0].branch_id != pair[1].branch_id
        {
            return Err(ApplyError::Invalid(format!(
                "step {k}: expected an action and its compensation"
            )));
        }
    }
    crate::spec::check_orders(&tx.options, n / 2).map_err(ApplyError::Spec)
}

/// The steps that must succeed before step `k` starts.
fn deps(tx: &Transaction, k: usize) -> Vec<u16> {
    if !tx.options.concurrent {
        return if k == 0 {
            Vec::new()
        } else {
            vec![(k - 1) as u16]
        };
    }
    let mut d = tx.options.orders.get(k).cloned().unwrap_or_default();
    d.sort_unstable();
    d.dedup();
    d
}

/// Moves to `aborting`. The abort is persisted (sync) before the first compensation: were it
/// lost, a restart would call an unanswered action again after its compensation, the
/// participant's barrier would answer that call with success, and the saga would go on forward
/// over a compensated step.
fn start_abort(tx: &mut Transaction, now: Timestamp, why: String, out: &mut Out) {
    out.persist(true);
    tx.status = TxStatus::Aborting;
    tx.note(now, "aborting", why.clone());
    tx.fail_reason.get_or_insert(why);
    tx.parked = None;
    for k in 0..tx.branches.len() / 2 {
        let action = &mut tx.branches[2 * k];
        // Actions are not retried once aborting: an unanswered one is compensated instead.
        action.next_at = None;
        if action.status == BranchStatus::Pending {
            action.status = BranchStatus::Skipped;
            tx.branches[2 * k + 1].status = BranchStatus::Skipped;
        }
    }
}

fn drive(tx: &mut Transaction, now: Timestamp, out: &mut Out) {
    let steps = tx.branches.len() / 2;
    match tx.status {
        TxStatus::Submitted => {
            if (0..steps).all(|k| tx.branches[2 * k].status == BranchStatus::Succeeded) {
                sched::end(tx, now, TxStatus::Succeeded, true, out);
                return;
            }
            let limit = match tx.options.concurrency_max {
                0 => usize::MAX,
                n => usize::from(n),
            };
            let mut in_flight = (0..steps).filter(|&k| tx.branches[2 * k].in_flight).count();
            for k in 0..steps {
                if in_flight >= limit {
                    break;
                }
                let ready = deps(tx, k)
                    .iter()
                    .all(|&d| tx.branches[2 * usize::from(d)].status == BranchStatus::Succeeded);
                if ready && sched::due(tx, 2 * k, now) {
                    if tx.branches[2 * k].status == BranchStatus::Pending {
                        // The step may run from now on: that must survive a crash, or an
                        // abort would skip (never compensate) a step that ran.
                        out.persist(true);
                    }
                    sched::issue(tx, 2 * k, out);
                    in_flight += 1;
                }
            }
        }
        TxStatus::Aborting => {
            let mut all_done = true;
            for k in (0..steps).rev() {
                let (action, comp) = (&tx.branches[2 * k], &tx.branches[2 * k + 1]);
                if comp.status.is_done() {
                    continue;
                }
                all_done = false;
                if action.in_flight || action.status == BranchStatus::Pending {
                    continue;
                }
                // Every step that depends on k and started must be compensated first.
                let blocked = (0..steps).any(|j| {
                    deps(tx, j).contains(&(k as u16)) && !tx.branches[2 * j + 1].status.is_done()
                });
                if !blocked && sched::due(tx, 2 * k + 1, now) {
                    sched::issue(tx, 2 * k + 1, out);
                }
            }
            if all_done && !(0..steps).any(|k| tx.branches[2 * k].in_flight) {
                sched::end(tx, now, TxStatus::Failed, true, out);
            }
        }
        _ => {}
    }
}
