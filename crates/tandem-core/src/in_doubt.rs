//! In-doubt recovery's verdict: what to do with one prepared XA branch that a resource lists,
//! given what the log says. Pure: the engine gathers the [`Facts`] and carries the verdict out.
//!
//! **Only proof decides.** A branch is rolled back only when the log proves the transaction
//! aborted, or when a healthy log that covers the branch's coordinator incarnation has no record
//! of that attempt at all (presumed abort: nothing was ever decided). It is committed only when
//! the log holds the commit decision. Anything else is left alone, or — when the log and the
//! database contradict each other — reported as a heuristic outcome for a human.
//!
//! ```text
//!  log failed / not healthy ............................. leave (nothing is proof now)
//!  xid of another coordinator or incarnation ............ leave (its own log decides it)
//!  transaction driven in this process right now ......... leave (its driver decides)
//!  no record of the gid, or a record of another attempt:
//!      prepared at least orphan_age ..................... roll back (presumed abort)
//!      younger .......................................... leave (its record may be on its way)
//!  record of this attempt:
//!      branch not in it, or not a 2PC ................... heuristic (log and database disagree)
//!      branch's target is another resource .............. leave (that resource's listing decides)
//!      decided commit (submitted / succeeded) ........... commit
//!      decided abort (aborting / failed) ................ roll back
//!      no decision yet (prepared) ....................... leave (a restart presumes abort)
//! ```

use crate::identity::Xid;
use crate::tx::{Op, Transaction, TxKind, TxStatus};

/// What the log says about the xid's gid.
#[derive(Debug, Clone, Copy)]
pub enum LogState<'a> {
    /// A driver in this process holds the transaction right now.
    Driving,
    /// The log has no record of the gid.
    Absent,
    /// The newest durable record of the gid.
    Record(&'a Transaction),
}

/// Everything the verdict depends on.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub xid: &'a Xid<'a>,
    /// The name of the resource whose listing holds the xid.
    pub listed_by: &'a str,
    /// How long the branch has been prepared (or known to be).
    pub age_ms: u64,
    /// A branch no record explains is rolled back only once it is at least this old.
    pub orphan_age_ms: u64,
    pub log: LogState<'a>,
    /// The log is healthy (no failed write or sync): its silence and its records are proof.
    pub log_healthy: bool,
    /// The log is the one that decides the xid's coordinator incarnation.
    pub log_covers: bool,
}

/// What to do with the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The log holds the commit decision.
    Commit,
    Rollback(RollbackWhy),
    Leave(LeaveWhy),
    /// The log and the database disagree; a human must look. Nothing is done to the branch.
    Heuristic(String),
}

/// Why a branch is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackWhy {
    /// The log shows the transaction aborting or failed.
    LogAborted,
    /// No record of the gid: nothing was ever decided (presumed abort).
    NoRecord,
    /// The gid's record is of another attempt (this one's record was lost before the crash).
    EarlierAttempt,
}

/// Why a branch is left alone for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveWhy {
    LogUnhealthy,
    NotOurs,
    Driving,
    Young,
    OtherResource,
    NoDecision,
}

impl RollbackWhy {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackWhy::LogAborted => "the log shows the transaction aborted",
            RollbackWhy::NoRecord => "no log record of the transaction (presumed abort)",
            RollbackWhy::EarlierAttempt => {
                "an earlier attempt of the gid whose record was lost (presumed abort)"
            }
        }
    }
}

impl LeaveWhy {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveWhy::LogUnhealthy => "the log is not healthy",
            LeaveWhy::NotOurs => "another coordinator's xid",
            LeaveWhy::Driving => "its transaction is being driven",
            LeaveWhy::Young => "younger than orphan_age",
            LeaveWhy::OtherResource => "the branch belongs to another resource",
            LeaveWhy::NoDecision => "no decision logged yet",
        }
    }
}

/// The verdict for one listed branch; see the module doc for the table.
pub fn verdict(f: &Facts<'_>) -> Verdict {
    if !f.log_healthy {
        return Verdict::Leave(LeaveWhy::LogUnhealthy);
    }
    if !f.log_covers {
        return Verdict::Leave(LeaveWhy::NotOurs);
    }
    let orphan = |why| {
        if f.age_ms >= f.orphan_age_ms {
            Verdict::Rollback(why)
        } else {
            Verdict::Leave(LeaveWhy::Young)
        }
    };
    let tx = match f.log {
        LogState::Driving => return Verdict::Leave(LeaveWhy::Driving),
        LogState::Absent => return orphan(RollbackWhy::NoRecord),
        LogState::Record(tx) => tx,
    };
    let same_attempt = tx.nonce == f.xid.nonce
        && tx
            .origin
            .as_ref()
            .is_some_and(|o| o.node == f.xid.node && o.incarnation == f.xid.incarnation);
    if !same_attempt {
        return orphan(RollbackWhy::EarlierAttempt);
    }
    let branch = (tx.kind == TxKind::TwoPc)
        .then(|| {
            tx.branches
                .iter()
                .find(|b| b.op == Op::Prepare && b.branch_id == f.xid.branch_id)
        })
        .flatten();
    let Some(branch) = branch else {
        return Verdict::Heuristic(format!(
            "xid names branch {} of {} transaction {}, which the log does not have",
            f.xid.branch_id,
            tx.kind.as_str(),
            tx.gid
        ));
    };
    if branch.target != f.listed_by {
        return Verdict::Leave(LeaveWhy::OtherResource);
    }
    match tx.status {
        TxStatus::Submitted | TxStatus::Succeeded => Verdict::Commit,
        TxStatus::Aborting | TxStatus::Failed => Verdict::Rollback(RollbackWhy::LogAborted),
        TxStatus::Prepared => Verdict::Leave(LeaveWhy::NoDecision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Branch, Options, Timestamp};
    use crate::Identity;

    fn two_pc(status: TxStatus, nonce: u32) -> Transaction {
        let mut tx = Transaction::new("g:1", TxKind::TwoPc, Options::default(), Timestamp(0));
        tx.origin = Some(Identity::new("n1", 7).unwrap());
        tx.nonce = nonce;
        tx.status = status;
        for (id, target) in [("01", "pg"), ("02", "mysql")] {
            for op in [Op::Prepare, Op::Commit, Op::Rollback] {
                tx.branches.push(Branch::new(id, op, target, Vec::new()));
            }
        }
        tx
    }

    struct Case<'a> {
        log: LogState<'a>,
        listed_by: &'a str,
        xid: &'a str,
        age_ms: u64,
        healthy: bool,
        covers: bool,
    }

    fn run(c: Case<'_>) -> Verdict {
        let xid = Xid::parse(c.xid).expect("test xid");
        verdict(&Facts {
            xid: &xid,
            listed_by: c.listed_by,
            age_ms: c.age_ms,
            orphan_age_ms: 60_000,
            log: c.log,
            log_healthy: c.healthy,
            log_covers: c.covers,
        })
    }

    const X1: &str = "n1:00000007:g:1:01:00000005";

    fn case(log: LogState<'_>) -> Case<'_> {
        Case {
            log,
            listed_by: "pg",
            xid: X1,
            age_ms: 0,
            healthy: true,
            covers: true,
        }
    }

    #[test]
    fn only_a_decision_or_no_record_decides() {
        for (status, want) in [
            (TxStatus::Submitted, Verdict::Commit),
            (TxStatus::Succeeded, Verdict::Commit),
            (
                TxStatus::Aborting,
                Verdict::Rollback(RollbackWhy::LogAborted),
            ),
            (TxStatus::Failed, Verdict::Rollback(RollbackWhy::LogAborted)),
            (TxStatus::Prepared, Verdict::Leave(LeaveWhy::NoDecision)),
        ] {
            let tx = two_pc(status, 5);
            assert_eq!(run(case(LogState::Record(&tx))), want, "{status:?}");
        }
        assert_eq!(run(case(LogState::Absent)), Verdict::Leave(LeaveWhy::Young));
        let old = Case {
            age_ms: 60_000,
            ..case(LogState::Absent)
        };
        assert_eq!(run(old), Verdict::Rollback(RollbackWhy::NoRecord));
        assert_eq!(
            run(case(LogState::Driving)),
            Verdict::Leave(LeaveWhy::Driving)
        );
    }

    /// Guards against bug 1: after a failed sync the published state is stale (it may lack
    /// a decision that is on disk); nothing may be rolled back on it.
    #[test]
    fn an_unhealthy_log_proves_nothing() {
        for log in [LogState::Absent, LogState::Driving] {
            let c = Case {
                healthy: false,
                age_ms: u64::MAX,
                ..case(log)
            };
            assert_eq!(run(c), Verdict::Leave(LeaveWhy::LogUnhealthy));
        }
        let tx = two_pc(TxStatus::Aborting, 5);
        let c = Case {
            healthy: false,
            ..case(LogState::Record(&tx))
        };
        assert_eq!(run(c), Verdict::Leave(LeaveWhy::LogUnhealthy));
    }

    /// Guards against bug 2: another coordinator (or incarnation) with the same node name.
    #[test]
    fn another_incarnations_xid_is_left() {
        let c = Case {
            covers: false,
            age_ms: u64::MAX,
            ..case(LogState::Absent)
        };
        assert_eq!(run(c), Verdict::Leave(LeaveWhy::NotOurs));
    }

    /// Guards against bug 4: the record of a retried gid does not decide the orphans of the
    /// lost attempt — they are rolled back, never committed.
    #[test]
    fn an_earlier_attempt_is_rolled_back_not_committed() {
        let retry = two_pc(TxStatus::Succeeded, 6);
        assert_eq!(
            run(case(LogState::Record(&retry))),
            Verdict::Leave(LeaveWhy::Young)
        );
        let old = Case {
            age_ms: 60_000,
            ..case(LogState::Record(&retry))
        };
        assert_eq!(run(old), Verdict::Rollback(RollbackWhy::EarlierAttempt));
    }

    #[test]
    fn the_listing_resource_must_be_the_target() {
        let tx = two_pc(TxStatus::Submitted, 5);
        let c = Case {
            listed_by: "mysql",
            ..case(LogState::Record(&tx))
        };
        assert_eq!(run(c), Verdict::Leave(LeaveWhy::OtherResource));
    }

    #[test]
    fn disagreement_is_heuristic() {
        let tx = two_pc(TxStatus::Submitted, 5);
        let c = Case {
            xid: "n1:00000007:g:1:09:00000005",
            ..case(LogState::Record(&tx))
        };
        assert!(matches!(run(c), Verdict::Heuristic(_)));
        let mut saga = two_pc(TxStatus::Submitted, 5);
        saga.kind = TxKind::Saga;
        assert!(matches!(
            run(case(LogState::Record(&saga))),
            Verdict::Heuristic(_)
        ));
    }
}
