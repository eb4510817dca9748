//! DTM's workflow: the exact commands for the main paths.
//!
//! Guards against: a recorded step acknowledged before it is durable, a step recorded twice
//! (a resumed client must see the first result only), the callback called before the
//! client had its chance or never again after an unfinished answer, a callback that answers
//! success without concluding retried forever unseen (it must count towards the retry limit
//! and park), and a conclusion that loses its rollback reason or result.

mod common;

use common::*;
use tandem_core::workflow::callback_branch;
use tandem_core::{
    codec, ApplyError, BranchStatus, CallOutcome, Command, Event, Op, Options, Transaction, TxKind,
    TxStatus,
};

fn workflow(retry_limit: u32) -> Transaction {
    let mut tx = Transaction::new(
        "wf-1",
        TxKind::Workflow,
        Options {
            query_prepared_after_ms: 3_000,
            retry_interval_ms: 1_000,
            retry_limit,
            ..Options::default()
        },
        T0,
    );
    tx.branches.push(callback_branch(
        "transfer",
        "http://client/wf",
        b"data".to_vec(),
    ));
    tx
}

fn record(id: &str, op: Op, status: BranchStatus, payload: &[u8]) -> Event {
    Event::Record {
        branch_id: id.into(),
        op,
        status,
        payload: payload.to_vec(),
        limits: tandem_core::spec::Limits::default(),
    }
}

#[test]
fn steps_are_recorded_durably_and_the_client_concludes() {
    let mut tx = workflow(30);
    assert_eq!(
        apply(&mut tx, Event::Start, T0),
        vec![persist(true), Command::Wake { at: at(3_000) }]
    );
    assert_eq!(tandem_core::workflow::name(&tx), Some("transfer"));
    assert_eq!(
        apply(
            &mut tx,
            record("01", Op::Action, BranchStatus::Succeeded, b"r1"),
            at(1)
        ),
        vec![persist(true)]
    );
    assert_eq!(
        tx.apply(record("01", Op::Action, BranchStatus::Failed, b"x"), at(2)),
        Err(ApplyError::BranchConflict {
            branch_id: "01".into(),
            op: "action"
        }),
        "the first record is the truth"
    );
    assert_eq!(
        apply(
            &mut tx,
            record("01", Op::Rollback, BranchStatus::Succeeded, b""),
            at(3)
        ),
        vec![persist(true)]
    );
    let conclude = Event::Conclude {
        status: TxStatus::Failed,
        reason: "insufficient funds".into(),
        result: String::new(),
    };
    assert_eq!(
        apply(&mut tx, conclude.clone(), at(4)),
        vec![
            persist(true),
            Command::Done {
                status: TxStatus::Failed
            }
        ]
    );
    assert_eq!(tx.fail_reason.as_deref(), Some("insufficient funds"));
    assert_eq!(tx.branches[0].status, BranchStatus::Skipped, "never needed");
    assert_eq!(&tx.branches[1].payload[..], b"r1");
    assert_eq!(
        apply(&mut tx, conclude, at(5)),
        vec![],
        "a repeat is harmless"
    );
    assert!(tx
        .apply(
            record("02", Op::Action, BranchStatus::Succeeded, b""),
            at(6)
        )
        .is_err());
    assert!(tx
        .apply(
            Event::Conclude {
                status: TxStatus::Succeeded,
                reason: String::new(),
                result: String::new()
            },
            at(7)
        )
        .is_err());
}

#[test]
fn the_result_survives_the_log() {
    let mut tx = workflow(30);
    apply(&mut tx, Event::Start, T0);
    apply(
        &mut tx,
        Event::Conclude {
            status: TxStatus::Succeeded,
            reason: String::new(),
            result: "b2s=".into(),
        },
        at(1),
    );
    let back = codec::decode(&codec::encode(&tx).expect("encode")).expect("decode");
    assert_eq!(back.result.as_deref(), Some("b2s="));
    assert_eq!(back.status, TxStatus::Succeeded);
}

#[test]
fn an_unfinished_workflow_is_resumed_through_its_callback() {
    let mut tx = workflow(30);
    apply(&mut tx, Event::Start, T0);
    assert_eq!(apply(&mut tx, Event::Tick, at(2_999)), vec![]);
    assert_eq!(apply(&mut tx, Event::Tick, at(3_000)), vec![call(0)]);
    // The client crashed again (unknown): backoff, then call again.
    let cmds = apply(
        &mut tx,
        answer(0, CallOutcome::Error("refused".into()), at(3_010)),
        at(3_010),
    );
    assert_eq!(cmds[0], persist(false));
    let Some(Command::Wake { at: next }) = cmds.get(1).cloned() else {
        panic!("{cmds:?}")
    };
    assert!(next > at(3_010));
    assert_eq!(apply(&mut tx, Event::Tick, next), vec![call(0)]);
    // This time the client ran the workflow to its end: its conclusion arrives while the
    // callback is still in flight, and the callback's answer changes nothing after it.
    apply(
        &mut tx,
        Event::Conclude {
            status: TxStatus::Succeeded,
            reason: String::new(),
            result: String::new(),
        },
        next.plus_ms(5),
    );
    assert_eq!(tx.status, TxStatus::Succeeded);
    assert_eq!(
        apply(&mut tx, ok(0, next.plus_ms(6)), next.plus_ms(6)),
        vec![]
    );
    assert!(tx.check().is_ok());
}

#[test]
fn a_callback_that_never_concludes_parks_at_the_retry_limit() {
    let mut tx = workflow(3);
    apply(&mut tx, Event::Start, T0);
    let mut now = at(3_000);
    assert_eq!(apply(&mut tx, Event::Tick, now), vec![call(0)]);
    for n in 1..=3 {
        now = now.plus_ms(10);
        let cmds = apply(&mut tx, ok(0, now), now);
        if n < 3 {
            assert_eq!(tx.parked, None);
            let Some(Command::Wake { at: next }) = cmds.last().cloned() else {
                panic!("{cmds:?}")
            };
            now = next;
            assert_eq!(apply(&mut tx, Event::Tick, now), vec![call(0)]);
        } else {
            assert!(
                cmds.iter().any(|c| matches!(c, Command::Park { .. })),
                "{cmds:?}"
            );
            assert!(tx
                .parked
                .as_deref()
                .unwrap_or("")
                .contains("did not conclude"));
        }
    }
    // An operator's retry calls it again at once.
    assert_eq!(
        apply(
            &mut tx,
            Event::Retry {
                reason: "client fixed".into()
            },
            now.plus_ms(1)
        ),
        vec![persist(true), call(0)]
    );
}

#[test]
fn workflows_refuse_other_protocols_events() {
    let mut tx = workflow(30);
    apply(&mut tx, Event::Start, T0);
    for e in [Event::Submit, Event::Abort] {
        assert!(matches!(
            tx.apply(e, at(1)),
            Err(ApplyError::WrongKind { .. })
        ));
    }
    assert!(tx
        .apply(record("01", Op::Action, BranchStatus::Running, b""), at(1))
        .is_err());
    // The step limit (steps as users count them, not the callback).
    let small = tandem_core::spec::Limits {
        branches_max: 1,
        ..Default::default()
    };
    let mut event = record("01", Op::Action, BranchStatus::Succeeded, b"");
    if let Event::Record { limits, .. } = &mut event {
        *limits = small;
    }
    assert!(tx.apply(event.clone(), at(2)).is_ok());
    if let Event::Record { branch_id, .. } = &mut event {
        *branch_id = "02".into();
    }
    assert!(matches!(tx.apply(event, at(3)), Err(ApplyError::Spec(_))));
    // And other protocols refuse workflow events.
    let mut saga = saga(1, Options::default());
    apply(&mut saga, Event::Start, T0);
    assert!(matches!(
        saga.apply(
            record("01", Op::Action, BranchStatus::Succeeded, b""),
            at(1)
        ),
        Err(ApplyError::WrongKind { .. })
    ));
}
