//! Transactional messages: the exact commands for the main paths.
//!
//! Guards against: deliveries before a durable submit, a query-prepared check asked too
//! early or never (no wake-up), a message delivered although the sender rolled back, and an
//! `ONGOING` check treated as an answer.

mod common;

use common::*;
use tandem_core::{BranchStatus, CallOutcome, Command, Event, Op, Options, TxStatus};

fn with_check() -> tandem_core::Transaction {
    msg(
        2,
        Some("sender/query"),
        Options {
            retry_interval_ms: 500,
            ..Options::default()
        },
    )
}

#[test]
fn prepare_then_submit_delivers() {
    let mut tx = msg(2, None, Options::default());
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), Command::Wake { at: at(10_000) }],
        "no check to ask: the message is given up at query_prepared_after_ms"
    );
    assert_eq!(tx.status, TxStatus::Prepared);
    assert_eq!(
        apply(&mut tx, Event::Submit, at(1)),
        vec![persist(true), call(0), call(1)]
    );
    assert_eq!(apply(&mut tx, Event::Submit, at(2)), vec![]);
    assert_eq!(apply(&mut tx, ok(1, at(3)), at(3)), vec![persist(false)]);
    assert_eq!(
        apply(&mut tx, ok(0, at(4)), at(4)),
        vec![
            persist(false),
            Command::Done {
                status: TxStatus::Succeeded
            }
        ]
    );
}

/// Guards against bug 8: a message prepared without `query_prepared` whose sender died held
/// its slot forever; now it fails at `timeout_to_fail_ms`, durably, and a late submit is
/// refused.
#[test]
fn a_message_without_a_check_fails_at_its_timeout() {
    let mut tx = msg(
        1,
        None,
        Options {
            timeout_to_fail_ms: Some(5_000),
            ..Options::default()
        },
    );
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), Command::Wake { at: at(5_000) }]
    );
    assert_eq!(apply(&mut tx, Event::Tick, at(4_999)), vec![]);
    assert_eq!(
        apply(&mut tx, Event::Tick, at(5_000)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert_eq!(tx.branches[0].status, BranchStatus::Skipped);
    assert!(tx.apply(Event::Submit, at(5_001)).is_err());
}

#[test]
fn the_check_is_due_after_query_prepared_after_ms() {
    let mut tx = with_check();
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), Command::Wake { at: at(10_000) }]
    );
    assert_eq!(tx.branches.len(), 3);
    assert_eq!(
        (tx.branches[2].branch_id.as_str(), tx.branches[2].op),
        ("00", Op::QueryPrepared)
    );
    assert_eq!(apply(&mut tx, Event::Tick, at(9_999)), vec![]);
    assert_eq!(apply(&mut tx, Event::Tick, at(10_000)), vec![call(2)]);
}

#[test]
fn check_success_submits() {
    let mut tx = with_check();
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, Event::Tick, at(10_000));
    assert_eq!(
        apply(&mut tx, ok(2, at(10_001)), at(10_001)),
        vec![persist(true), call(0), call(1)]
    );
    assert_eq!(tx.status, TxStatus::Submitted);
}

#[test]
fn check_failure_fails_without_delivering() {
    let mut tx = with_check();
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, Event::Tick, at(10_000));
    let no = answer(2, CallOutcome::Failure("rolled back".into()), at(10_001));
    assert_eq!(
        apply(&mut tx, no, at(10_001)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert!(tx.branches[..2]
        .iter()
        .all(|b| b.status == BranchStatus::Skipped && b.attempts == 0));
    assert!(tx.apply(Event::Submit, at(10_002)).is_err());
}

#[test]
fn check_ongoing_asks_again() {
    let mut tx = with_check();
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, Event::Tick, at(10_000));
    let later = answer(2, CallOutcome::Ongoing, at(10_001));
    assert_eq!(
        apply(&mut tx, later, at(10_001)),
        vec![persist(false), Command::Wake { at: at(10_501) }]
    );
    assert_eq!(tx.status, TxStatus::Prepared);
    assert_eq!(apply(&mut tx, Event::Tick, at(10_501)), vec![call(2)]);
}

#[test]
fn submit_while_the_check_is_in_flight() {
    let mut tx = with_check();
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, Event::Tick, at(10_000));
    assert_eq!(
        apply(&mut tx, Event::Submit, at(10_001)),
        vec![persist(true), call(0), call(1)]
    );
    // The check's late answer changes nothing, even a FAILURE.
    let no = answer(2, CallOutcome::Failure("late".into()), at(10_002));
    assert_eq!(apply(&mut tx, no, at(10_002)), vec![persist(false)]);
    assert_eq!(tx.status, TxStatus::Submitted);
}

#[test]
fn delivery_failure_parks() {
    let mut tx = msg(1, None, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, Event::Submit, at(1));
    let no = answer(0, CallOutcome::Failure("bad payload".into()), at(2));
    let reason = "delivery 01 answered FAILURE: bad payload".to_string();
    assert_eq!(
        apply(&mut tx, no, at(2)),
        vec![persist(true), Command::Park { reason }]
    );
}

#[test]
fn resume_redelivers() {
    let mut tx = msg(2, None, Options::default());
    apply(&mut tx, Event::Start, T0);
    apply(&mut tx, Event::Submit, at(1));
    let mut tx = reload(&tx);
    assert_eq!(apply(&mut tx, Event::Resume, at(2)), vec![call(0), call(1)]);
}

#[test]
fn stop_before_submit_fails() {
    let mut tx = with_check();
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
}
