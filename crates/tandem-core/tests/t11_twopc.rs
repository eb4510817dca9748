//! Two-phase commit: the exact commands for the main paths.
//!
//! Guards against: a commit sent before the decision is durable; phase 2 sent to a
//! read-only participant or a rollback missing for a prepared one; a restart before the
//! decision that does anything but roll back (presumed abort); a commit error dropped instead
//! of retried; an operator stop that would undo a durable commit decision; and a retry wake-up
//! left on a prepare after the abort, which starved the rollbacks' retries; and a participant
//! list written unforced for participants that cannot be asked what they hold prepared.

mod common;

use common::*;
use tandem_core::{
    backoff, ApplyError, BranchStatus, CallOutcome, Command, Event, Options, TxStatus,
};

#[test]
fn all_yes_logs_the_decision_before_any_commit() {
    let mut tx = twopc(2, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(3)]
    );
    assert_eq!(tx.status, TxStatus::Prepared);
    assert_eq!(apply(&mut tx, ok(0, at(1)), at(1)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(3, at(2)), at(2)),
        vec![persist(true), call(1), call(4)]
    );
    assert_eq!(tx.status, TxStatus::Submitted);
    assert_eq!(apply(&mut tx, ok(1, at(3)), at(3)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(4, at(4)), at(4)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
    assert_eq!(tx.branches[2].attempts + tx.branches[5].attempts, 0);
}

#[test]
fn listable_participants_need_no_forced_list_but_a_forced_decision() {
    let mut tx = twopc(2, Options::default());
    tx.participants_listable = true;
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(false), call(0), call(3)]
    );
    assert_eq!(apply(&mut tx, ok(0, at(1)), at(1)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(3, at(2)), at(2)),
        vec![persist(true), call(1), call(4)]
    );
    // One phase stays forced: its outcome must never be reported as "no such transaction".
    let mut one = twopc_one_phase();
    one.participants_listable = true;
    assert_eq!(apply(&mut one, Event::Start, T0)[0], persist(true));
}

#[test]
fn read_only_vote_skips_phase_two() {
    let mut tx = twopc(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    let ro = answer(0, CallOutcome::ReadOnly, at(1));
    assert_eq!(apply(&mut tx, ro, at(1)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(3, at(2)), at(2)),
        vec![persist(true), call(4)]
    );
    assert_eq!(
        apply(&mut tx, ok(4, at(3)), at(3)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
    assert_eq!(tx.branches[1].status, BranchStatus::Skipped);
    assert_eq!(tx.branches[2].status, BranchStatus::Skipped);
}

#[test]
fn all_read_only_ends_at_the_decision() {
    let mut tx = twopc(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    let ro = answer(0, CallOutcome::ReadOnly, at(1));
    assert_eq!(
        apply(&mut tx, ro, at(1)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
}

#[test]
fn a_no_vote_rolls_back_the_others() {
    let mut tx = twopc(3, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(3), call(6)]
    );
    assert_eq!(apply(&mut tx, ok(0, at(1)), at(1)), vec![persist(false)]);
    let no = answer(3, CallOutcome::Failure("constraint".into()), at(2));
    // Participant 1 is rolled back now; participant 3's prepare is in flight: wait for it.
    assert_eq!(apply(&mut tx, no, at(2)), vec![persist(false), call(2)]);
    assert_eq!(tx.status, TxStatus::Aborting);
    assert_eq!(
        apply(&mut tx, ok(6, at(3)), at(3)),
        vec![persist(false), call(8)]
    );
    assert_eq!(apply(&mut tx, ok(2, at(4)), at(4)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(8, at(5)), at(5)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    // The participant that voted no holds nothing: no rollback for it, no commit for anyone.
    assert_eq!(tx.branches[5].status, BranchStatus::Skipped);
    assert!([1, 4, 5, 7].iter().all(|&i| tx.branches[i].attempts == 0));
}

#[test]
fn prepare_error_aborts_and_rolls_back_that_participant_too() {
    let mut tx = twopc(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    assert_eq!(apply(&mut tx, ok(3, at(1)), at(1)), vec![persist(false)]);
    let err = answer(0, CallOutcome::Error("timeout".into()), at(2));
    assert_eq!(
        apply(&mut tx, err, at(2)),
        vec![persist(false), call(2), call(5)]
    );
}

#[test]
fn one_phase_commit() {
    let mut tx = twopc_one_phase();
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0)]
    );
    assert_eq!(
        apply(&mut tx, ok(0, at(1)), at(1)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
    let mut refused = twopc_one_phase();
    apply(&mut refused, Event::Start, T0);
    let no = answer(0, CallOutcome::Failure("no".into()), at(1));
    assert_eq!(
        apply(&mut refused, no, at(1)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
}

#[test]
fn resume_before_the_decision_rolls_back() {
    let mut tx = twopc(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    let persisted = tx.clone();
    apply(&mut tx, ok(0, at(1)), at(1)); // unsynced, lost in the crash
    let mut tx = reload(&persisted);
    assert_eq!(
        apply(&mut tx, Event::Resume, at(2)),
        vec![persist(false), call(2), call(5)]
    );
    assert_eq!(tx.status, TxStatus::Aborting);
    assert!(tx
        .fail_reason
        .as_deref()
        .is_some_and(|r| r.contains("presumed abort")));
}

#[test]
fn resume_after_the_decision_commits() {
    let mut tx = twopc(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(0, at(1)), at(1));
    assert_eq!(
        apply(&mut tx, ok(3, at(2)), at(2)),
        vec![persist(true), call(1), call(4)]
    );
    let mut tx = reload(&tx);
    assert_eq!(apply(&mut tx, Event::Resume, at(3)), vec![call(1), call(4)]);
}

#[test]
fn commit_error_is_retried() {
    let mut tx = twopc(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    assert_eq!(
        apply(&mut tx, ok(0, at(1)), at(1)),
        vec![persist(true), call(1)]
    );
    let err = answer(1, CallOutcome::Error("503".into()), at(2));
    let due = at(2).plus_ms(backoff::delay_ms(
        1_000,
        60_000,
        1,
        backoff::seed("2pc-1", 1, 1),
    ));
    assert_eq!(
        apply(&mut tx, err, at(2)),
        vec![persist(false), Command::Wake { at: due }]
    );
    assert_eq!(apply(&mut tx, Event::Tick, due), vec![call(1)]);
    assert_eq!(
        apply(&mut tx, ok(1, due), due),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
}

#[test]
fn stop_is_refused_after_the_decision() {
    let mut tx = twopc(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(0, at(1)), at(1));
    let before = tx.clone();
    let res = tx.apply(
        Event::Stop {
            reason: "operator".into(),
        },
        at(2),
    );
    assert!(
        matches!(res, Err(ApplyError::WrongStatus { .. })),
        "{res:?}"
    );
    assert_eq!(tx, before);
}

#[test]
fn stop_before_the_decision_rolls_back() {
    let mut tx = twopc(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    let stop = Event::Stop {
        reason: "operator".into(),
    };
    // The prepare is in flight: its rollback waits for the answer.
    assert_eq!(apply(&mut tx, stop, at(1)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(0, at(2)), at(2)),
        vec![persist(false), call(2)]
    );
}

#[test]
fn timeout_before_the_decision_rolls_back() {
    let mut tx = twopc(
        2,
        Options {
            timeout_to_fail_ms: Some(3_000),
            ..Options::default()
        },
    );
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![
            persist(true),
            call(0),
            call(3),
            Command::Wake { at: at(3_000) }
        ]
    );
    assert_eq!(apply(&mut tx, ok(0, at(1)), at(1)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, Event::Tick, at(3_000)),
        vec![persist(false), call(2)]
    );
    assert_eq!(tx.status, TxStatus::Aborting);
}

#[test]
fn ongoing_prepare_then_abort_leaves_no_stale_wake_up() {
    let opts = Options {
        retry_interval_ms: 100,
        ..Options::default()
    };
    let mut tx = twopc(2, opts);
    apply(&mut tx, Event::Start, T0);
    let later = answer(0, CallOutcome::Ongoing, at(1));
    assert_eq!(
        apply(&mut tx, later, at(1)),
        vec![persist(false), Command::Wake { at: at(101) }]
    );
    let no = answer(3, CallOutcome::Failure("no".into()), at(2));
    assert_eq!(apply(&mut tx, no, at(2)), vec![persist(false), call(2)]);
    assert_eq!(tx.branches[0].next_at, None);
    let err = answer(2, CallOutcome::Ongoing, at(3));
    // The rollback's own retry is what the next wake-up is for.
    assert_eq!(
        apply(&mut tx, err, at(3)),
        vec![persist(false), Command::Wake { at: at(103) }]
    );
    assert_eq!(apply(&mut tx, Event::Tick, at(103)), vec![call(2)]);
}

#[test]
fn rollback_refusal_parks() {
    let mut tx = twopc(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    let err = answer(0, CallOutcome::Error("timeout".into()), at(1));
    assert_eq!(apply(&mut tx, err, at(1)), vec![persist(false), call(2)]);
    let no = answer(2, CallOutcome::Failure("???".into()), at(2));
    let reason = "participant 01 refused rollback: ???".to_string();
    assert_eq!(
        apply(&mut tx, no, at(2)),
        vec![persist(true), Command::Park { reason }]
    );
}

/// Guards against bugs 1 and 3: a commit answered "not prepared" was counted as success
/// although nothing of ours had committed it (the branch was rolled back behind our back, or
/// the commit went to another name). On the first commit of a branch that voted yes, that is a
/// heuristic outcome: logged durably, phase 2 finishes for the others, then the transaction is
/// parked — never reported succeeded — until an operator stops it.
#[test]
fn a_first_commit_that_finds_nothing_prepared_is_a_heuristic_outcome() {
    let mut tx = twopc(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(0, at(1)), at(1));
    assert_eq!(
        apply(&mut tx, ok(3, at(2)), at(2)),
        vec![persist(true), call(1), call(4)]
    );
    let gone = answer(1, CallOutcome::NotPrepared, at(3));
    assert_eq!(apply(&mut tx, gone, at(3)), vec![persist(true)]);
    assert!(tx.heuristic.as_deref().is_some_and(|h| h.contains("01")));
    assert_eq!(tx.branches[1].status, BranchStatus::Failed);
    let cmds = apply(&mut tx, ok(4, at(4)), at(4));
    assert!(
        matches!(cmds.as_slice(), [Command::Persist { sync: true }, Command::Park { reason }] if reason.starts_with("heuristic outcome")),
        "{cmds:?}"
    );
    assert_eq!(tx.status, TxStatus::Submitted, "never succeeded");
    // Retry finds nothing to do and parks again; an operator's stop ends it, failed, with the
    // heuristic kept on the record.
    let cmds = apply(
        &mut tx,
        Event::Retry {
            reason: "looked".into(),
        },
        at(5),
    );
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Park { .. })),
        "{cmds:?}"
    );
    let cmds = apply(
        &mut tx,
        Event::Stop {
            reason: "fixed by hand".into(),
        },
        at(6),
    );
    assert_eq!(
        cmds,
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert!(tx.heuristic.is_some());
    assert!(tx
        .fail_reason
        .as_deref()
        .is_some_and(|r| r.contains("heuristic")));
}

/// "Not prepared" after an earlier commit of ours (a retry after a lost answer, or after a
/// restart, when the log cannot say whether a commit went out) means that commit did it.
#[test]
fn not_prepared_after_an_earlier_commit_is_success() {
    let mut tx = twopc(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(0, at(1)), at(1));
    let mut resumed = reload(&tx);
    apply(&mut resumed, Event::Resume, at(2));
    let cmds = apply(
        &mut resumed,
        answer(1, CallOutcome::NotPrepared, at(3)),
        at(3),
    );
    assert_eq!(
        cmds,
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
    assert_eq!(resumed.heuristic, None);

    let err = answer(1, CallOutcome::Error("timeout".into()), at(2));
    apply(&mut tx, err, at(2));
    let due = tx.next_wake.expect("retry");
    apply(&mut tx, Event::Tick, due);
    let cmds = apply(&mut tx, answer(1, CallOutcome::NotPrepared, due), due);
    assert!(cmds.contains(&Command::Done {
        status: TxStatus::Succeeded
    }));
}

/// A rollback of something not prepared is what rollback wants.
#[test]
fn not_prepared_on_rollback_is_success() {
    let mut tx = twopc(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(3, at(1)), at(1));
    apply(
        &mut tx,
        answer(0, CallOutcome::Failure("no".into()), at(1)),
        at(1),
    );
    assert_eq!(tx.status, TxStatus::Aborting);
    let cmds = apply(&mut tx, answer(5, CallOutcome::NotPrepared, at(2)), at(2));
    assert!(cmds.contains(&Command::Done {
        status: TxStatus::Failed
    }));
    assert_eq!(tx.heuristic, None);
}
