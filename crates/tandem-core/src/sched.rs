//! Shared machinery of the protocol machines: issuing calls, classifying answers (retry with
//! backoff, park past the retry limit), and computing the next wake-up.
//!
//! Each machine collects its effects in an [`Out`]; [`Out::finish`] puts at most one
//! `Persist` first (every `Persist` of one `apply` would write the same snapshot, and it must
//! precede the calls it makes durable), bumps the version, and appends a `Wake` when the
//! earliest due time changed.

use crate::backoff;
use crate::event::{CallOutcome, Command};
use crate::tx::{Attempt, AttemptOutcome, BranchStatus, Timestamp, Transaction};

#[derive(Default)]
pub(crate) struct Out {
    persist: Option<bool>,
    cmds: Vec<Command>,
}

impl Out {
    pub(crate) fn persist(&mut self, sync: bool) {
        self.persist = Some(self.persist.unwrap_or(false) || sync);
    }
    pub(crate) fn push(&mut self, c: Command) {
        self.cmds.push(c);
    }

    /// Orders the commands (persist first), bumps the version and schedules the next tick.
    /// `deadline` is the protocol's current timeout, if one applies in this status.
    pub(crate) fn finish(
        mut self,
        tx: &mut Transaction,
        now: Timestamp,
        deadline: Option<Timestamp>,
        out: &mut Vec<Command>,
    ) {
        let wake = if tx.is_final() {
            None
        } else if tx.parked.is_some() {
            deadline
        } else {
            let retry = tx
                .branches
                .iter()
                .filter(|b| !b.in_flight && !b.status.is_done())
                .filter_map(|b| b.next_at)
                .min();
            match (retry, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if wake != tx.next_wake {
            tx.next_wake = wake;
            if let Some(at) = wake {
                self.cmds.push(Command::Wake { at });
            }
        }
        if let Some(sync) = self.persist {
            tx.version += 1;
            tx.updated_at = now;
            out.push(Command::Persist { sync });
        }
        out.append(&mut self.cmds);
    }
}

/// May this branch be called now? (Not in flight, not done, retry time reached.)
pub(crate) fn due(tx: &Transaction, i: usize, now: Timestamp) -> bool {
    let b = &tx.branches[i];
    tx.parked.is_none() && !b.in_flight && !b.status.is_done() && b.next_at.is_none_or(|t| t <= now)
}

/// Calls branch `i`.
pub(crate) fn issue(tx: &mut Transaction, i: usize, out: &mut Out) {
    let b = &mut tx.branches[i];
    b.status = BranchStatus::Running;
    b.in_flight = true;
    b.attempts += 1;
    b.next_at = None;
    out.push(Command::Call { branch: i });
}

/// What an answer means for the protocol, after retries and parking were handled here.
pub(crate) enum Class {
    Success,
    ReadOnly,
    /// An XA resource had nothing prepared under the branch's xid; 2PC decides what that
    /// means, every other protocol takes it as success (nothing left to do).
    NotPrepared,
    Failure(String),
    /// A retry is scheduled; nothing else to decide.
    Again,
    /// The branch reached the retry limit; the reason says so. The protocol decides whether
    /// that parks the transaction or aborts it.
    Exhausted(String),
}

/// Records the attempt on branch `i` and classifies the answer. `Ongoing` waits the fixed
/// interval; `Error` backs off exponentially; either is `Exhausted` once the branch's streak
/// of such answers reaches the retry limit.
#[allow(clippy::too_many_arguments)] // the fields of `Event::Answer`, plus where they go
pub(crate) fn answer(
    tx: &mut Transaction,
    i: usize,
    outcome: CallOutcome,
    at: Timestamp,
    latency_us: u64,
    code: Option<u16>,
    now: Timestamp,
    out: &mut Out,
) -> Class {
    let opts = &tx.options;
    let (limit, base, cap) = (
        opts.retry_limit.max(1),
        opts.retry_interval_ms,
        opts.retry_max_ms,
    );
    let gid = tx.gid.clone();
    let b = &mut tx.branches[i];
    b.in_flight = false;
    let (kind, error) = match &outcome {
        CallOutcome::Success => (AttemptOutcome::Success, None),
        CallOutcome::ReadOnly => (AttemptOutcome::ReadOnly, None),
        CallOutcome::Failure(r) => (AttemptOutcome::Failure, Some(r.clone())),
        CallOutcome::Ongoing => (AttemptOutcome::Ongoing, None),
        CallOutcome::Error(e) => (AttemptOutcome::Error, Some(e.clone())),
        CallOutcome::NotPrepared => (
            AttemptOutcome::NotPrepared,
            Some("no prepared transaction under this branch's xid".into()),
        ),
    };
    b.record_attempt(Attempt {
        at,
        latency_us,
        outcome: kind,
        code,
        error: error.clone(),
    });
    out.persist(false);
    match outcome {
        CallOutcome::Success => {
            b.streak = 0;
            Class::Success
        }
        CallOutcome::ReadOnly => {
            b.streak = 0;
            Class::ReadOnly
        }
        CallOutcome::NotPrepared => {
            b.streak = 0;
            Class::NotPrepared
        }
        CallOutcome::Failure(r) => Class::Failure(r),
        CallOutcome::Ongoing | CallOutcome::Error(_) => {
            b.streak += 1;
            let delay = if matches!(outcome, CallOutcome::Ongoing) {
                base.max(1)
            } else {
                backoff::delay_ms(base, cap, b.streak, backoff::seed(&gid, i, b.attempts))
            };
            b.next_at = Some(now.plus_ms(delay));
            if b.streak >= limit {
                let what = if matches!(outcome, CallOutcome::Ongoing) {
                    "ongoing"
                } else {
                    "failing"
                };
                return Class::Exhausted(format!(
                    "branch {}/{} still {what} after {} attempts: {}",
                    b.branch_id,
                    b.op.as_str(),
                    b.streak,
                    error.unwrap_or_else(|| "ONGOING".into())
                ));
            }
            Class::Again
        }
    }
}

/// Stops automatic progress until an operator retries; visible, counted, alerted.
pub(crate) fn park(tx: &mut Transaction, now: Timestamp, reason: String, out: &mut Out) {
    if tx.parked.is_some() {
        return;
    }
    tx.note(now, "parked", reason.clone());
    tx.parked = Some(reason.clone());
    out.persist(true);
    out.push(Command::Park { reason });
}

/// Operator retry: clear the parked flag and every retry wait, restart the streaks.
pub(crate) fn operator_retry(tx: &mut Transaction, now: Timestamp, reason: String, out: &mut Out) {
    tx.note(now, "retry", reason);
    tx.parked = None;
    // The stuck clock starts anew.
    tx.status_since = now;
    for b in tx.branches.iter_mut().filter(|b| !b.status.is_done()) {
        b.streak = 0;
        b.next_at = None;
    }
    out.persist(true);
}

/// After a restart nothing is in flight: whatever was unanswered is due now, and any branch
/// not done may have been called before the crash without the log knowing (`uncertain`).
pub(crate) fn resume(tx: &mut Transaction) {
    tx.next_wake = None;
    for b in tx.branches.iter_mut() {
        b.in_flight = false;
        b.uncertain = !b.status.is_done();
        if b.status == BranchStatus::Running {
            b.next_at = None;
        }
    }
}

/// Ends the transaction. `sync` when the end itself is what the caller will be told and no
/// earlier durable record implies it.
pub(crate) fn end(
    tx: &mut Transaction,
    now: Timestamp,
    status: crate::TxStatus,
    sync: bool,
    out: &mut Out,
) {
    tx.status = status;
    tx.finished_at = Some(now);
    tx.parked = None;
    for b in tx.branches.iter_mut() {
        b.next_at = None;
        b.in_flight = false;
        // No call follows an end: a call that never got its answer stays unknown for good.
        if b.status == BranchStatus::Running {
            b.status = BranchStatus::Unknown;
        }
    }
    out.persist(sync);
    out.push(Command::Done { status });
}

/// The transaction's timeout, if it has one.
pub(crate) fn deadline(tx: &Transaction) -> Option<Timestamp> {
    tx.options
        .timeout_to_fail_ms
        .map(|ms| tx.created_at.plus_ms(ms))
}
