//! The barrier's decision, free of I/O: which row a compensating op inserts on behalf of its
//! origin, and what the two inserts (and, on a conflict, the existing row's reason) mean for
//! the caller. Every backend runs the same inserts and feeds the results here, so the three
//! databases cannot drift apart in semantics.

use super::ops;

/// The op that `op` undoes, whose row a null compensation inserts first so the late op is
/// refused: cancel→try (TCC), compensate→action (saga), rollback→action (XA and workflow,
/// as DTM maps it). `None` for ops that undo nothing.
pub fn origin_op(op: &str) -> Option<&'static str> {
    match op {
        ops::CANCEL => Some(ops::TRY),
        ops::COMPENSATE | ops::ROLLBACK => Some(ops::ACTION),
        _ => None,
    }
}

/// The op a call's own row is recorded under: a coordinator-driven 2PC's `prepare` (the
/// native `/v1/2pc` protocol) is the work `rollback` undoes, so it is recorded as `action` —
/// the row a rollback that arrives first writes on its behalf — and the late prepare is then
/// refused (no hanging) instead of running and holding its locks forever. Every other op is
/// recorded under its own name. The row's reason stays the op itself, so a repeated prepare
/// is still a duplicate.
pub fn row_op(op: &str) -> &str {
    match op {
        ops::PREPARE => ops::ACTION,
        other => other,
    }
}

/// The other outcome of the same second phase: confirm↔cancel (TCC), commit↔rollback (XA,
/// 2PC). The coordinator decides a second phase once, so whichever of the two passes the
/// barrier first also writes the other's row (reason = itself), and the other, should it
/// ever arrive, finds that row and is [`Skip::Refused`]: a confirm after its cancel (or a
/// cancel after its confirm) takes no effect. DTM's barrier does not do this; the rows it
/// adds use DTM's layout, so a shared table stays readable by DTM's code.
pub fn opposite_op(op: &str) -> Option<&'static str> {
    match op {
        ops::CONFIRM => Some(ops::CANCEL),
        ops::CANCEL => Some(ops::CONFIRM),
        ops::COMMIT => Some(ops::ROLLBACK),
        ops::ROLLBACK => Some(ops::COMMIT),
        _ => None,
    }
}

/// Why the business code must not run for this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// This op already committed (a retry or a concurrent duplicate): answer SUCCESS.
    /// For a message's local transaction (op `msg`) it means the transaction already ran.
    Duplicate,
    /// A cancel/compensate/rollback whose try/action never ran: nothing to undo, answer
    /// SUCCESS. The late try/action, if it ever arrives, is refused.
    NullCompensation,
    /// A try/action (or message local transaction) whose compensation (or rollback check)
    /// came first: it must never run; answer FAILURE (HTTP 409).
    Refused,
}

impl Skip {
    /// True when the handler should answer FAILURE (only [`Skip::Refused`]).
    pub fn is_failure(self) -> bool {
        self == Skip::Refused
    }
}

/// What [`enter`](super::postgres::enter) decided for this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the business code may run only on Admission::Run"]
pub enum Admission {
    /// First delivery: run the business code in the same transaction, then commit.
    Run,
    /// Do not run the business code; commit the transaction (it may hold a null-compensation
    /// row) and answer as [`Skip::is_failure`] says.
    Skip(Skip),
}

/// What a `call` helper did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The business code ran and its transaction committed with the barrier rows.
    Ran(T),
    /// The business code did not run; see [`Skip`].
    Skipped(Skip),
}

impl<T> Outcome<T> {
    /// True when the handler should answer FAILURE (a refused try/action).
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Skipped(s) if s.is_failure())
    }
}

/// The decision from the inserts: `origin_inserted` (always false for ops with no origin),
/// `current_inserted`, and, when the current insert conflicted, the reason of the row it
/// conflicted with.
pub(crate) fn decide(
    op: &str,
    origin_inserted: bool,
    current_inserted: bool,
    existing_reason: Option<&str>,
) -> Admission {
    if current_inserted {
        if origin_inserted {
            Admission::Skip(Skip::NullCompensation)
        } else {
            Admission::Run
        }
    } else if existing_reason == Some(op) {
        Admission::Skip(Skip::Duplicate)
    } else {
        // The row for this op was written by its compensation (or by the message check's
        // rollback): the op came too late.
        Admission::Skip(Skip::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_follow_dtm() {
        assert_eq!(origin_op("cancel"), Some("try"));
        assert_eq!(origin_op("compensate"), Some("action"));
        assert_eq!(origin_op("rollback"), Some("action"));
        for op in ["try", "confirm", "action", "commit", "msg"] {
            assert_eq!(origin_op(op), None, "{op}");
        }
    }

    #[test]
    fn a_prepare_is_recorded_as_what_rollback_undoes() {
        assert_eq!(row_op("prepare"), origin_op("rollback").unwrap());
        for op in [
            "try",
            "cancel",
            "action",
            "compensate",
            "commit",
            "rollback",
            "msg",
        ] {
            assert_eq!(row_op(op), op);
        }
    }

    #[test]
    fn second_phases_exclude_each_other() {
        for (a, b) in [("confirm", "cancel"), ("commit", "rollback")] {
            assert_eq!(opposite_op(a), Some(b));
            assert_eq!(opposite_op(b), Some(a));
        }
        for op in ["try", "action", "compensate", "prepare", "msg"] {
            assert_eq!(opposite_op(op), None, "{op}");
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide("action", false, true, None), Admission::Run);
        assert_eq!(decide("compensate", false, true, None), Admission::Run);
        assert_eq!(
            decide("compensate", true, true, None),
            Admission::Skip(Skip::NullCompensation)
        );
        assert_eq!(
            decide("try", false, false, Some("try")),
            Admission::Skip(Skip::Duplicate)
        );
        assert_eq!(
            decide("try", false, false, Some("cancel")),
            Admission::Skip(Skip::Refused)
        );
        assert_eq!(
            decide("msg", false, false, Some("rollback")),
            Admission::Skip(Skip::Refused)
        );
        assert!(Skip::Refused.is_failure() && !Skip::Duplicate.is_failure());
        assert!(Outcome::<()>::Skipped(Skip::Refused).is_failure());
        assert!(!Outcome::Ran(()).is_failure());
    }
}
