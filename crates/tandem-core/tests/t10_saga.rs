//! Saga: the exact commands for the main paths.
//!
//! Guards against: calling an action before the saga (and the step) is durable; compensating
//! in the wrong order, compensating a step that never started, or forgetting one that did;
//! compensating before the abort is durable (a re-called action would then be skipped by the
//! participant's barrier and the saga could go on forward); retries without a wake-up,
//! retrying forever instead of parking, and losing unanswered calls across a restart.

mod common;

use common::*;
use tandem_core::{
    backoff, ApplyError, BranchStatus, CallOutcome, Command, Event, Options, Timestamp, TxStatus,
};

fn concurrent(orders: Vec<Vec<u16>>) -> Options {
    Options {
        concurrent: true,
        orders,
        ..Options::default()
    }
}

#[test]
fn sequential_success() {
    let mut tx = saga(3, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0)]
    );
    assert_eq!(tx.version, 1);
    // Each step's first call waits for a durable record that it may have run.
    assert_eq!(
        apply(&mut tx, ok(0, at(1)), at(1)),
        vec![persist(true), call(2)]
    );
    assert_eq!(
        apply(&mut tx, ok(2, at(2)), at(2)),
        vec![persist(true), call(4)]
    );
    assert_eq!(
        apply(&mut tx, ok(4, at(3)), at(3)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
    assert_eq!(tx.status, TxStatus::Succeeded);
    assert_eq!(tx.finished_at, Some(at(3)));
    assert_eq!(tx.version, 4);
    assert!(tx
        .branches
        .iter()
        .skip(1)
        .step_by(2)
        .all(|c| c.attempts == 0));
}

#[test]
fn failure_at_step_two_compensates_two_then_one() {
    let mut tx = saga(3, Options::default());
    apply(&mut tx, Event::Start, T0);
    assert_eq!(
        apply(&mut tx, ok(0, at(1)), at(1)),
        vec![persist(true), call(2)]
    );
    let no = answer(2, CallOutcome::Failure("insufficient funds".into()), at(2));
    // The abort is durable before the first compensation.
    assert_eq!(apply(&mut tx, no, at(2)), vec![persist(true), call(3)]);
    assert_eq!(tx.status, TxStatus::Aborting);
    assert_eq!(
        apply(&mut tx, ok(3, at(3)), at(3)),
        vec![persist(false), call(1)]
    );
    assert_eq!(
        apply(&mut tx, ok(1, at(4)), at(4)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert_eq!(tx.status, TxStatus::Failed);
    assert!(tx
        .fail_reason
        .as_deref()
        .is_some_and(|r| r.contains("step 02 failed")));
    // Step 3 never started: neither its action nor its compensation was called.
    assert_eq!(
        (tx.branches[4].status, tx.branches[4].attempts),
        (BranchStatus::Skipped, 0)
    );
    assert_eq!(
        (tx.branches[5].status, tx.branches[5].attempts),
        (BranchStatus::Skipped, 0)
    );
}

#[test]
fn dag_runs_independent_steps_together_and_compensates_in_reverse_dependency_order() {
    // 0 and 1 are independent; 2 needs 0 and 1; 3 needs 0.
    let mut tx = saga(4, concurrent(vec![vec![], vec![], vec![0, 1], vec![0]]));
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(2)]
    );
    assert_eq!(
        apply(&mut tx, ok(0, at(1)), at(1)),
        vec![persist(true), call(6)]
    );
    assert_eq!(apply(&mut tx, ok(6, at(2)), at(2)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(2, at(3)), at(3)),
        vec![persist(true), call(4)]
    );
    let no = answer(4, CallOutcome::Failure("no".into()), at(4));
    // Steps 3 and 2 have no dependants: compensated first, together.
    assert_eq!(
        apply(&mut tx, no, at(4)),
        vec![persist(true), call(7), call(5)]
    );
    // Step 1 waited only for step 2; step 0 waits for steps 2 and 3.
    assert_eq!(
        apply(&mut tx, ok(5, at(5)), at(5)),
        vec![persist(false), call(3)]
    );
    assert_eq!(
        apply(&mut tx, ok(7, at(6)), at(6)),
        vec![persist(false), call(1)]
    );
    assert_eq!(apply(&mut tx, ok(3, at(7)), at(7)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(1, at(8)), at(8)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
}

#[test]
fn dag_respects_concurrency_max() {
    let opts = Options {
        concurrency_max: 2,
        ..concurrent(vec![])
    };
    let mut tx = saga(3, opts);
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(2)]
    );
    assert_eq!(
        apply(&mut tx, ok(2, at(1)), at(1)),
        vec![persist(true), call(4)]
    );
}

#[test]
fn never_started_step_is_never_compensated() {
    // Step 1 needs step 0; step 2 is independent and fails while step 0 is in flight.
    let mut tx = saga(3, concurrent(vec![vec![], vec![0], vec![]]));
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(4)]
    );
    let no = answer(4, CallOutcome::Failure("no".into()), at(1));
    assert_eq!(apply(&mut tx, no, at(1)), vec![persist(true), call(5)]);
    // Step 0's action is in flight: its compensation waits for the answer.
    assert_eq!(apply(&mut tx, ok(5, at(2)), at(2)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(0, at(3)), at(3)),
        vec![persist(false), call(1)]
    );
    assert_eq!(
        apply(&mut tx, ok(1, at(4)), at(4)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert_eq!(
        (tx.branches[2].status, tx.branches[2].attempts),
        (BranchStatus::Skipped, 0)
    );
    assert_eq!(
        (tx.branches[3].status, tx.branches[3].attempts),
        (BranchStatus::Skipped, 0)
    );
}

#[test]
fn transient_error_is_retried_at_the_backoff_time() {
    let mut tx = saga(1, Options::default());
    apply(&mut tx, Event::Start, T0);
    let err = answer(0, CallOutcome::Error("connection refused".into()), at(5));
    let delay = backoff::delay_ms(1_000, 60_000, 1, backoff::seed("saga-1", 0, 1));
    assert!((500..=1_000).contains(&delay));
    let due = at(5).plus_ms(delay);
    assert_eq!(
        apply(&mut tx, err, at(5)),
        vec![persist(false), Command::Wake { at: due }]
    );
    assert_eq!(tx.next_wake, Some(due));
    assert_eq!(apply(&mut tx, Event::Tick, Timestamp(due.0 - 1)), vec![]);
    assert_eq!(apply(&mut tx, Event::Tick, due), vec![call(0)]);
    assert_eq!(tx.branches[0].attempts, 2);
    assert_eq!(
        apply(&mut tx, ok(0, due), due),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
}

#[test]
fn ongoing_waits_the_fixed_interval() {
    let mut tx = saga(
        1,
        Options {
            retry_interval_ms: 300,
            ..Options::default()
        },
    );
    apply(&mut tx, Event::Start, T0);
    let later = answer(0, CallOutcome::Ongoing, at(1));
    assert_eq!(
        apply(&mut tx, later, at(1)),
        vec![persist(false), Command::Wake { at: at(301) }]
    );
}

#[test]
fn retry_limit_parks_until_an_operator_retries() {
    let mut tx = saga(
        2,
        Options {
            retry_limit: 2,
            ..Options::default()
        },
    );
    apply(&mut tx, Event::Start, T0);
    let err = |t| answer(0, CallOutcome::Error("boom".into()), t);
    let cmds = apply(&mut tx, err(at(1)), at(1));
    let Some(Command::Wake { at: due }) = cmds.get(1).cloned() else {
        panic!("{cmds:?}")
    };
    assert_eq!(apply(&mut tx, Event::Tick, due), vec![call(0)]);
    let reason = "branch 01/action still failing after 2 attempts: boom".to_string();
    assert_eq!(
        apply(&mut tx, err(due), due),
        vec![
            persist(true),
            Command::Park {
                reason: reason.clone()
            }
        ]
    );
    assert_eq!(tx.parked, Some(reason));
    assert_eq!(tx.next_wake, None);
    // Parked: no call, however late, and a restart does not unpark.
    assert_eq!(apply(&mut tx, Event::Tick, at(10_000_000)), vec![]);
    let mut restarted = reload(&tx);
    assert_eq!(apply(&mut restarted, Event::Resume, at(10_000_001)), vec![]);
    let retry = Event::Retry {
        reason: "bank is back".into(),
    };
    assert_eq!(
        apply(&mut tx, retry, at(10_000_002)),
        vec![persist(true), call(0)]
    );
    assert_eq!(tx.parked, None);
    assert_eq!(tx.branches[0].streak, 0);
    assert_eq!(tx.history.last().map(|h| h.what.as_str()), Some("retry"));
}

#[test]
fn compensation_failure_parks() {
    let mut tx = saga(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(0, at(1)), at(1));
    let no = answer(2, CallOutcome::Failure("no".into()), at(2));
    assert_eq!(apply(&mut tx, no, at(2)), vec![persist(true), call(3)]);
    let refused = answer(3, CallOutcome::Failure("cannot undo".into()), at(3));
    let reason = "compensation of step 02 answered FAILURE: cannot undo".to_string();
    assert_eq!(
        apply(&mut tx, refused, at(3)),
        vec![persist(true), Command::Park { reason }]
    );
    assert_eq!(apply(&mut tx, Event::Tick, at(100_000)), vec![]);
    let retry = Event::Retry {
        reason: "fixed by hand".into(),
    };
    assert_eq!(
        apply(&mut tx, retry, at(100_001)),
        vec![persist(true), call(3)]
    );
    assert_eq!(
        apply(&mut tx, ok(3, at(100_002)), at(100_002)),
        vec![persist(false), call(1)]
    );
}

#[test]
fn action_error_while_aborting_does_not_park() {
    // The action's retry streak is irrelevant once aborting: it is compensated instead.
    let mut tx = saga(
        2,
        Options {
            retry_limit: 1,
            ..concurrent(vec![])
        },
    );
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(2)]
    );
    let no = answer(2, CallOutcome::Failure("no".into()), at(1));
    assert_eq!(apply(&mut tx, no, at(1)), vec![persist(true), call(3)]);
    let err = answer(0, CallOutcome::Error("timeout".into()), at(2));
    assert_eq!(apply(&mut tx, err, at(2)), vec![persist(false), call(1)]);
    assert_eq!(tx.parked, None);
}

#[test]
fn timeout_to_fail_aborts() {
    let mut tx = saga(
        2,
        Options {
            timeout_to_fail_ms: Some(5_000),
            ..Options::default()
        },
    );
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), Command::Wake { at: at(5_000) }]
    );
    assert_eq!(
        apply(&mut tx, ok(0, at(100)), at(100)),
        vec![persist(true), call(2)]
    );
    assert_eq!(apply(&mut tx, Event::Tick, at(4_999)), vec![]);
    // Step 2's action is in flight: nothing to compensate yet, but the abort is durable.
    assert_eq!(apply(&mut tx, Event::Tick, at(5_000)), vec![persist(true)]);
    assert_eq!(tx.status, TxStatus::Aborting);
    assert_eq!(tx.fail_reason.as_deref(), Some("timeout_to_fail passed"));
    let late = answer(2, CallOutcome::Error("timeout".into()), at(5_001));
    assert_eq!(
        apply(&mut tx, late, at(5_001)),
        vec![persist(false), call(3)]
    );
    assert_eq!(
        apply(&mut tx, ok(3, at(5_002)), at(5_002)),
        vec![persist(false), call(1)]
    );
    assert_eq!(
        apply(&mut tx, ok(1, at(5_003)), at(5_003)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
}

#[test]
fn resume_reissues_unanswered_calls() {
    let mut tx = saga(3, concurrent(vec![]));
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), call(0), call(2), call(4)]
    );
    let persisted = tx.clone();
    // This answer's unsynced record is lost in the crash.
    assert_eq!(apply(&mut tx, ok(2, at(1)), at(1)), vec![persist(false)]);
    let mut tx = reload(&persisted);
    assert_eq!(
        apply(&mut tx, Event::Resume, at(2)),
        vec![call(0), call(2), call(4)]
    );
    assert!(tx
        .branches
        .iter()
        .step_by(2)
        .all(|b| b.in_flight && b.attempts == 2));
}

#[test]
fn resume_while_aborting_compensates() {
    let mut tx = saga(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, ok(0, at(1)), at(1));
    let no = answer(2, CallOutcome::Failure("no".into()), at(2));
    assert_eq!(apply(&mut tx, no, at(2)), vec![persist(true), call(3)]);
    let mut tx = reload(&tx);
    assert_eq!(apply(&mut tx, Event::Resume, at(3)), vec![call(3)]);
}

#[test]
fn stop_ends_failed_and_final_transactions_never_change() {
    let mut tx = saga(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    let stop = Event::Stop {
        reason: "operator".into(),
    };
    assert_eq!(
        apply(&mut tx, stop, at(1)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    let before = tx.clone();
    for e in [Event::Tick, Event::Resume, ok(0, at(2))] {
        assert_eq!(apply(&mut tx, e, at(2)), vec![]);
    }
    assert!(tx.apply(Event::Submit, at(2)).is_err());
    // An operator action on an ended transaction is refused, naming why (the API answers
    // 409), rather than accepted as a silent no-op.
    for e in [
        Event::Retry { reason: "x".into() },
        Event::Stop { reason: "y".into() },
    ] {
        let err = tx.apply(e, at(2)).unwrap_err();
        assert!(matches!(err, ApplyError::Ended { .. }), "{err}");
        assert!(err.to_string().contains("already ended (failed)"), "{err}");
    }
    assert_eq!(tx, before);
}

/// Guards against: a force-stopped saga whose called-but-unanswered step still shows
/// `running` forever (the record must stay true: nothing will call it again).
#[test]
fn stop_leaves_no_branch_running() {
    let mut tx = saga(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    assert_eq!(tx.branches[0].status, BranchStatus::Running);
    apply(
        &mut tx,
        Event::Stop {
            reason: "operator".into(),
        },
        at(1),
    );
    assert_eq!(tx.status, TxStatus::Failed);
    assert!(tx
        .branches
        .iter()
        .all(|b| b.status != BranchStatus::Running));
    assert_eq!(tx.branches[0].status, BranchStatus::Unknown);
    assert_eq!(tx.branches[0].status.as_str(), "unknown");
    assert!(!tx.branches[0].in_flight);
}

#[test]
fn invalid_sagas_are_refused() {
    let mut empty = saga(0, Options::default());
    assert!(empty.apply(Event::Start, T0).is_err());
    let mut cycle = saga(2, concurrent(vec![vec![1], vec![0]]));
    assert!(cycle.apply(Event::Start, T0).is_err());
    let mut out_of_range = saga(2, concurrent(vec![vec![5]]));
    assert!(out_of_range.apply(Event::Start, T0).is_err());
    let mut not_concurrent = saga(
        2,
        Options {
            orders: vec![vec![], vec![0]],
            ..Options::default()
        },
    );
    assert!(not_concurrent.apply(Event::Start, T0).is_err());
}

#[test]
fn the_engine_parks_a_stalled_saga_and_an_ended_one_never() {
    let mut tx = saga(2, Options::default());
    apply(&mut tx, Event::Start, T0);
    let reason = "stuck in status submitted for 3600 s".to_string();
    assert_eq!(
        apply(
            &mut tx,
            Event::Park {
                reason: reason.clone()
            },
            at(5)
        ),
        vec![
            persist(true),
            Command::Park {
                reason: reason.clone()
            }
        ]
    );
    assert_eq!(tx.parked.as_deref(), Some(reason.as_str()));
    // Parking twice changes nothing; a retry resumes.
    assert_eq!(apply(&mut tx, Event::Park { reason }, at(6)), vec![]);
    apply(
        &mut tx,
        Event::Retry {
            reason: "ok".into(),
        },
        at(7),
    );
    assert_eq!(tx.parked, None);
    apply(
        &mut tx,
        Event::Stop {
            reason: "done".into(),
        },
        at(8),
    );
    assert!(tx.is_final());
    assert_eq!(
        apply(&mut tx, Event::Park { reason: "x".into() }, at(9)),
        vec![]
    );
    assert_eq!(tx.parked, None);
}
