//! Builders shared by the command-list tests: transactions in their usual layouts, answers,
//! and a crash that keeps only what was persisted.
#![allow(dead_code)]

use tandem_core::{
    codec, Branch, CallOutcome, Command, Event, Op, Options, Timestamp, Transaction, TxKind,
};

pub const T0: Timestamp = Timestamp(1_000_000);

/// `ms` after [`T0`].
pub fn at(ms: u64) -> Timestamp {
    T0.plus_ms(ms)
}

pub fn answer(branch: usize, outcome: CallOutcome, now: Timestamp) -> Event {
    Event::Answer {
        branch,
        outcome,
        at: now,
        latency_us: 10,
        code: None,
    }
}

pub fn ok(branch: usize, now: Timestamp) -> Event {
    answer(branch, CallOutcome::Success, now)
}

pub fn persist(sync: bool) -> Command {
    Command::Persist { sync }
}

pub fn call(branch: usize) -> Command {
    Command::Call { branch }
}

/// Applies an event that must be accepted.
pub fn apply(tx: &mut Transaction, event: Event, now: Timestamp) -> Vec<Command> {
    tx.apply(event.clone(), now)
        .unwrap_or_else(|e| panic!("{event:?} refused: {e}"))
}

/// A saga of `steps` steps: action and compensation per step, branch ids "01", "02", ...
pub fn saga(steps: usize, options: Options) -> Transaction {
    let mut tx = Transaction::new("saga-1", TxKind::Saga, options, T0);
    for k in 0..steps {
        let id = format!("{:02}", k + 1);
        tx.branches.push(Branch::new(
            id.clone(),
            Op::Action,
            format!("svc{k}/action"),
            vec![],
        ));
        tx.branches.push(Branch::new(
            id,
            Op::Compensate,
            format!("svc{k}/compensate"),
            vec![],
        ));
    }
    tx
}

/// A 2PC transaction with `n` participants (prepare, commit, rollback each).
pub fn twopc(n: usize, options: Options) -> Transaction {
    let mut tx = Transaction::new("2pc-1", TxKind::TwoPc, options, T0);
    for k in 0..n {
        let id = format!("{:02}", k + 1);
        for op in [Op::Prepare, Op::Commit, Op::Rollback] {
            tx.branches
                .push(Branch::new(id.clone(), op, format!("db{k}"), vec![]));
        }
    }
    tx
}

pub fn twopc_one_phase() -> Transaction {
    let mut tx = Transaction::new("2pc-1p", TxKind::TwoPc, Options::default(), T0);
    tx.branches
        .push(Branch::new("01", Op::CommitOnePhase, "db0", vec![]));
    tx
}

pub fn tcc(options: Options) -> Transaction {
    Transaction::new("tcc-1", TxKind::Tcc, options, T0)
}

/// TCC registration of confirm + cancel for branch `id`.
pub fn register(id: &str) -> Event {
    Event::Register {
        branch_id: id.into(),
        ops: vec![
            (Op::Confirm, format!("{id}/confirm")),
            (Op::Cancel, format!("{id}/cancel")),
        ],
        payload: b"{}".to_vec(),
        limits: tandem_core::Limits::default(),
    }
}

/// A message with `n` deliveries and, if given, a query-prepared target.
pub fn msg(n: usize, query: Option<&str>, options: Options) -> Transaction {
    let mut tx = Transaction::new("msg-1", TxKind::Msg, options, T0);
    for k in 0..n {
        tx.branches.push(Branch::new(
            format!("{:02}", k + 1),
            Op::Msg,
            format!("svc{k}"),
            vec![],
        ));
    }
    tx.query_prepared = query.map(String::from);
    tx
}

/// What a restarted process holds: the snapshot as stored (through the codec, which drops
/// `in_flight`), ready for `Event::Resume`.
pub fn reload(persisted: &Transaction) -> Transaction {
    let bytes = codec::encode(persisted).expect("encode");
    let tx = codec::decode(&bytes).expect("decode");
    assert!(tx.branches.iter().all(|b| !b.in_flight));
    tx
}
