//! What each branch call does to an account, free of I/O: the balance and frozen deltas of
//! every (protocol, step) the services serve, so the two databases apply exactly the same
//! rules and the checker can reason about them.
//!
//! ```text
//!  saga  debit:  balance -= a            undo-debit:  balance += a
//!        credit: balance += a            undo-credit: balance -= a   (the last step is only
//!                                          undone when it failed itself: a null compensation)
//!  tcc   try-debit:  balance -= a, frozen += a   confirm-debit: frozen -= a
//!                                                 cancel-debit:  balance += a, frozen -= a
//!        try-credit: (nothing)    confirm-credit: balance += a   cancel-credit: (nothing)
//!  xa    debit: balance -= a       credit: balance += a   (inside a prepared transaction)
//!  2pc   prepare-, commit-, rollback-{debit,credit}: as TCC's try-, confirm-, cancel-
//!  msg   credit: balance += a          (a message delivery)
//! ```
//!
//! A step asked to fail (`fail` in its payload) does its work, then answers FAILURE, so its
//! local transaction, barrier row included, rolls back.
//!
//! Every update is refused when it would make `balance` or `frozen` negative ("insufficient
//! funds", a business FAILURE), so no account can ever go below zero whatever the order.

/// One account change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    pub balance_delta: i64,
    pub frozen_delta: i64,
    /// May this step answer FAILURE on the client's request (`fail` in the payload)? Only
    /// first-phase steps: saga debit and credit, TCC try-debit and try-credit, XA debit and
    /// credit (a failing credit makes the coordinator really undo the debit before it).
    pub may_inject_failure: bool,
}

/// The effect of `step` (the path after the protocol, e.g. `debit`, `try-debit`) for
/// `amount`, or `None` for an unknown step.
pub fn effect(protocol: &str, step: &str, amount: i64) -> Option<Effect> {
    let e = |balance_delta, frozen_delta, may_inject_failure| {
        Some(Effect {
            balance_delta,
            frozen_delta,
            may_inject_failure,
        })
    };
    match (protocol, step) {
        ("saga", "debit") | ("xa", "debit") => e(-amount, 0, true),
        ("saga", "undo-debit") => e(amount, 0, false),
        ("saga", "credit") | ("xa", "credit") => e(amount, 0, true),
        ("saga", "undo-credit") => e(-amount, 0, false),
        ("tcc", "try-debit") | ("2pc", "prepare-debit") => e(-amount, amount, true),
        ("tcc", "confirm-debit") | ("2pc", "commit-debit") => e(0, -amount, false),
        ("tcc", "cancel-debit") | ("2pc", "rollback-debit") => e(amount, -amount, false),
        ("tcc", "try-credit") | ("2pc", "prepare-credit") => e(0, 0, true),
        ("tcc", "cancel-credit") | ("2pc", "rollback-credit") => e(0, 0, false),
        ("tcc", "confirm-credit") | ("2pc", "commit-credit") => e(amount, 0, false),
        ("msg", "credit") => e(amount, 0, false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_undo_restores_what_its_step_took() {
        for (p, step, undo) in [
            ("saga", "debit", "undo-debit"),
            ("saga", "credit", "undo-credit"),
            ("tcc", "try-debit", "cancel-debit"),
            ("tcc", "try-credit", "cancel-credit"),
        ] {
            let (s, u) = (effect(p, step, 7).unwrap(), effect(p, undo, 7).unwrap());
            assert_eq!(s.balance_delta + u.balance_delta, 0, "{p} {step}");
            assert_eq!(s.frozen_delta + u.frozen_delta, 0, "{p} {step}");
        }
        // try then confirm moves exactly the amount, nothing stays frozen.
        let (t, c) = (
            effect("tcc", "try-debit", 7).unwrap(),
            effect("tcc", "confirm-debit", 7).unwrap(),
        );
        assert_eq!(
            (
                t.balance_delta + c.balance_delta,
                t.frozen_delta + c.frozen_delta
            ),
            (-7, 0)
        );
        assert!(effect("saga", "steal", 1).is_none());
    }
}
