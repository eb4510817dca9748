//! TCC (and XA mode): the exact commands for the main paths.
//!
//! Guards against: a registration acknowledged before it is durable, a re-registration that
//! silently changes a branch, confirms before a durable submit, cancels before a durable
//! abort (a timeout abort lost in a crash let a later submit confirm cancelled branches),
//! and a confirm refusal that is dropped instead of parked.

mod common;

use common::*;
use tandem_core::{ApplyError, BranchStatus, CallOutcome, Command, Event, Op, Options, TxStatus};

fn registered(n: usize, options: Options) -> tandem_core::Transaction {
    let mut tx = tcc(options);
    apply(&mut tx, Event::Start, T0);
    for k in 0..n {
        assert_eq!(
            apply(&mut tx, register(&format!("{:02}", k + 1)), at(1)),
            vec![persist(true)]
        );
    }
    tx
}

#[test]
fn start_and_register() {
    let mut tx = tcc(Options::default());
    assert_eq!(apply(&mut tx, Event::Start, T0), vec![persist(true)]);
    assert_eq!(apply(&mut tx, register("01"), at(1)), vec![persist(true)]);
    assert_eq!(tx.branches.len(), 2);
    assert_eq!(
        (tx.branches[0].op, tx.branches[1].op),
        (Op::Confirm, Op::Cancel)
    );
    // The same registration again is acknowledged and changes nothing.
    let before = tx.clone();
    assert_eq!(apply(&mut tx, register("01"), at(2)), vec![]);
    assert_eq!(tx, before);
    // A different content under the same branch id and op is refused.
    let conflict = Event::Register {
        branch_id: "01".into(),
        ops: vec![(Op::Confirm, "elsewhere/confirm".into())],
        payload: b"{}".to_vec(),
        limits: tandem_core::Limits::default(),
    };
    let res = tx.apply(conflict, at(3));
    assert!(
        matches!(res, Err(ApplyError::BranchConflict { .. })),
        "{res:?}"
    );
    assert_eq!(tx, before);
    // Ops other than the second phase's are refused.
    let bad = Event::Register {
        branch_id: "02".into(),
        ops: vec![(Op::Try, "x".into())],
        payload: vec![],
        limits: tandem_core::Limits::default(),
    };
    assert!(matches!(tx.apply(bad, at(4)), Err(ApplyError::Invalid(_))));
    assert_eq!(tx, before);
}

#[test]
fn submit_confirms() {
    let mut tx = registered(2, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Submit, at(2)),
        vec![persist(true), call(0), call(2)]
    );
    assert_eq!(tx.status, TxStatus::Submitted);
    assert_eq!(
        apply(&mut tx, Event::Submit, at(3)),
        vec![],
        "submit is idempotent"
    );
    assert!(tx.apply(Event::Abort, at(3)).is_err());
    assert!(tx.apply(register("03"), at(3)).is_err());
    assert_eq!(apply(&mut tx, ok(0, at(4)), at(4)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(2, at(5)), at(5)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
    assert_eq!(tx.branches[1].status, BranchStatus::Skipped);
    assert_eq!(tx.branches[3].status, BranchStatus::Skipped);
    assert_eq!(apply(&mut tx, Event::Submit, at(6)), vec![]);
}

#[test]
fn submit_without_branches_succeeds() {
    let mut tx = registered(0, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Submit, at(2)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
}

#[test]
fn abort_cancels() {
    let mut tx = registered(2, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Abort, at(2)),
        vec![persist(true), call(1), call(3)]
    );
    assert_eq!(tx.status, TxStatus::Aborting);
    assert_eq!(apply(&mut tx, Event::Abort, at(3)), vec![]);
    assert!(tx.apply(Event::Submit, at(3)).is_err());
    assert_eq!(apply(&mut tx, ok(1, at(4)), at(4)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(3, at(5)), at(5)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert_eq!(
        tx.fail_reason.as_deref(),
        Some("aborted by the application")
    );
}

#[test]
fn timeout_cancels_after_a_durable_abort() {
    let mut tx = tcc(Options {
        timeout_to_fail_ms: Some(5_000),
        ..Options::default()
    });
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), Command::Wake { at: at(5_000) }]
    );
    assert_eq!(apply(&mut tx, register("01"), at(1)), vec![persist(true)]);
    assert_eq!(apply(&mut tx, Event::Tick, at(4_999)), vec![]);
    assert_eq!(
        apply(&mut tx, Event::Tick, at(5_000)),
        vec![persist(true), call(1)]
    );
    assert_eq!(tx.status, TxStatus::Aborting);
    // Restarted from that record, it keeps cancelling; a late submit is refused.
    let mut restarted = reload(&tx);
    assert_eq!(
        apply(&mut restarted, Event::Resume, at(5_001)),
        vec![call(1)]
    );
    assert!(restarted.apply(Event::Submit, at(5_002)).is_err());
}

#[test]
fn resume_while_prepared_waits_for_the_application() {
    let tx = registered(
        1,
        Options {
            timeout_to_fail_ms: Some(5_000),
            ..Options::default()
        },
    );
    let mut tx = reload(&tx);
    assert_eq!(
        apply(&mut tx, Event::Resume, at(2)),
        vec![Command::Wake { at: at(5_000) }]
    );
    assert_eq!(
        apply(&mut tx, Event::Submit, at(3)),
        vec![persist(true), call(0)]
    );
}

#[test]
fn confirm_failure_parks_until_retried() {
    let mut tx = registered(2, Options::default());
    apply(&mut tx, Event::Submit, at(2));
    let no = answer(0, CallOutcome::Failure("gone".into()), at(3));
    let reason = "branch 01/confirm answered FAILURE: gone".to_string();
    assert_eq!(
        apply(&mut tx, no, at(3)),
        vec![persist(true), Command::Park { reason }]
    );
    // The other confirm still completes, but the transaction does not end.
    assert_eq!(apply(&mut tx, ok(2, at(4)), at(4)), vec![persist(false)]);
    assert_eq!(apply(&mut tx, Event::Tick, at(1_000_000)), vec![]);
    let retry = Event::Retry {
        reason: "fixed".into(),
    };
    assert_eq!(
        apply(&mut tx, retry, at(1_000_001)),
        vec![persist(true), call(0)]
    );
    assert_eq!(
        apply(&mut tx, ok(0, at(1_000_002)), at(1_000_002)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
}

#[test]
fn stop_cancels_before_submit_and_is_refused_after() {
    let mut tx = registered(1, Options::default());
    let stop = || Event::Stop {
        reason: "operator".into(),
    };
    let mut stopped = tx.clone();
    assert_eq!(
        apply(&mut stopped, stop(), at(2)),
        vec![persist(true), call(1)]
    );
    apply(&mut tx, Event::Submit, at(2));
    assert!(tx.apply(stop(), at(3)).is_err());
}

#[test]
fn xa_mode_commits_and_rolls_back() {
    let mut tx = tcc(Options::default());
    apply(&mut tx, Event::Start, T0);
    let reg = Event::Register {
        branch_id: "01".into(),
        ops: vec![
            (Op::Commit, "db/commit".into()),
            (Op::Rollback, "db/rollback".into()),
        ],
        payload: vec![],
        limits: tandem_core::Limits::default(),
    };
    assert_eq!(apply(&mut tx, reg, at(1)), vec![persist(true)]);
    let mut aborted = tx.clone();
    assert_eq!(
        apply(&mut tx, Event::Submit, at(2)),
        vec![persist(true), call(0)]
    );
    assert_eq!(
        apply(&mut aborted, Event::Abort, at(2)),
        vec![persist(true), call(1)]
    );
}
