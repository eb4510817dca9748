//! Property tests: every protocol machine driven by a small simulator through random
//! answers, clock jumps, crashes (losing what was not fsynced) and operator retries.
//!
//! Guards against: a participant committed/confirmed while another is rolled back/cancelled;
//! a saga step that ran but is never compensated, or a compensation of a step that never
//! ran; an outcome told (`Done`) that a crash could still change; a decision or a first call
//! that is not durable when it is acted on; snapshots whose version does not grow; ended
//! transactions that change; and transactions that never end although participants
//! recover and an operator retries what parked.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tandem_core::{
    codec, Branch, CallOutcome, Command, Event, Op, Options, Timestamp, Transaction, TxKind,
    TxStatus,
};

const T0: Timestamp = Timestamp(1_000_000);

/// What a participant answered to one call (`None`: never answered, e.g. lost in a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Success,
    ReadOnly,
    Failure,
    Ongoing,
    Error,
}

#[derive(Debug, Clone)]
struct CallRec {
    branch: usize,
    op: Op,
    answer: Option<Said>,
}

/// One random thing that happens next; interpreted against the current state.
#[derive(Debug, Clone)]
enum Step {
    /// Answer the in-flight call `pick % n` with an outcome chosen by `roll`.
    Answer {
        pick: u8,
        roll: u8,
    },
    /// Move the clock (`jump` false: by `ms`; true: to the requested wake-up) and tick.
    Tick {
        jump: bool,
        ms: u16,
    },
    /// Crash; `survive` picks how many unsynced snapshots reached the disk anyway.
    Crash {
        survive: u8,
    },
    /// Operator retry (of a parked transaction, or any).
    Retry,
    /// Client events (TCC, msg) and operator stop.
    Register {
        id: u8,
        variant: u8,
    },
    Submit,
    Abort,
    Stop,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<u8>(), any::<u8>()).prop_map(|(pick, roll)| Step::Answer { pick, roll }),
        3 => (any::<bool>(), 0u16..3_000).prop_map(|(jump, ms)| Step::Tick { jump, ms }),
        1 => any::<u8>().prop_map(|survive| Step::Crash { survive }),
        1 => Just(Step::Retry),
        2 => (0u8..4, 0u8..8).prop_map(|(id, variant)| Step::Register { id, variant }),
        1 => Just(Step::Submit),
        1 => Just(Step::Abort),
        1 => Just(Step::Stop),
    ]
}

struct Sim {
    tx: Transaction,
    /// The newest snapshot known to be on disk (a `Persist { sync: true }`, or anything
    /// before it in the log).
    durable: Transaction,
    /// Snapshots written without waiting since `durable`, oldest first: any prefix of them
    /// may survive a crash.
    unsynced: Vec<Transaction>,
    now: Timestamp,
    wake: Option<Timestamp>,
    in_flight: Vec<usize>,
    calls: Vec<CallRec>,
    told: Vec<TxStatus>,
    one_phase: bool,
    stopped: bool,
    persists: u64,
}

fn snapshot(tx: &Transaction) -> Transaction {
    let bytes = codec::encode(tx).unwrap_or_else(|e| panic!("snapshot does not encode: {e}"));
    codec::decode(&bytes).unwrap_or_else(|e| panic!("snapshot does not decode: {e}"))
}

impl Sim {
    fn new(tx: Transaction) -> Sim {
        let one_phase = tx.branches.len() == 1 && tx.branches[0].op == Op::CommitOnePhase;
        Sim {
            durable: tx.clone(),
            tx,
            unsynced: Vec::new(),
            now: T0,
            wake: None,
            in_flight: Vec::new(),
            calls: Vec::new(),
            told: Vec::new(),
            one_phase,
            stopped: false,
            persists: 0,
        }
    }

    /// Applies an event and executes its commands in order, checking each one.
    fn apply(&mut self, event: Event) {
        let before = self.tx.clone();
        let was_final = self.tx.is_final();
        let res = self.tx.apply(event.clone(), self.now);
        if let Err(e) = &res {
            assert_eq!(
                self.tx, before,
                "{event:?} was refused ({e}) but changed the transaction"
            );
            assert!(
                matches!(
                    event,
                    Event::Register { .. }
                        | Event::Submit
                        | Event::Abort
                        | Event::Stop { .. }
                        | Event::Start
                ) || (was_final && matches!(event, Event::Retry { .. })),
                "{event:?} refused: {e}"
            );
            return;
        }
        let cmds = res.unwrap_or_default();
        if was_final {
            assert!(
                cmds.is_empty(),
                "final transaction answered {event:?} with {cmds:?}"
            );
            assert_eq!(self.tx, before, "final transaction changed on {event:?}");
            return;
        }
        self.tx
            .check()
            .unwrap_or_else(|e| panic!("invariant broken after {event:?}: {e}"));
        let persists = cmds
            .iter()
            .filter(|c| matches!(c, Command::Persist { .. }))
            .count();
        assert!(persists <= 1, "{cmds:?}");
        if persists == 1 {
            assert!(
                matches!(cmds[0], Command::Persist { .. }),
                "persist not first: {cmds:?}"
            );
            assert_eq!(
                self.tx.version,
                before.version + 1,
                "version must grow by one"
            );
        } else {
            assert_eq!(
                self.tx.version, before.version,
                "version changed without a persist"
            );
        }
        if let Event::Stop { .. } = event {
            self.stopped = true;
        }
        for c in cmds {
            self.execute(c);
        }
    }

    fn execute(&mut self, c: Command) {
        match c {
            Command::Persist { sync } => {
                let last = self.unsynced.last().unwrap_or(&self.durable);
                assert!(
                    self.tx.version > last.version,
                    "version did not grow across persists"
                );
                self.persists += 1;
                let snap = snapshot(&self.tx);
                if sync {
                    self.durable = snap;
                    self.unsynced.clear();
                } else {
                    self.unsynced.push(snap);
                }
            }
            Command::Call { branch } => {
                assert!(
                    !self.in_flight.contains(&branch),
                    "two calls in flight on {branch}"
                );
                self.check_call_is_durable(branch);
                self.in_flight.push(branch);
                let op = self.tx.branches[branch].op;
                self.calls.push(CallRec {
                    branch,
                    op,
                    answer: None,
                });
            }
            Command::Wake { at } => self.wake = Some(at),
            Command::Park { reason } => {
                assert_eq!(self.tx.parked.as_deref(), Some(reason.as_str()));
                assert_eq!(
                    self.durable.parked.as_deref(),
                    Some(reason.as_str()),
                    "park not durable"
                );
            }
            Command::Done { status } => {
                assert_eq!(self.tx.status, status);
                assert!(status.is_final());
                self.check_done_is_durable(status);
                if let Some(first) = self.told.first() {
                    assert_eq!(*first, status, "two different outcomes told");
                }
                self.told.push(status);
            }
        }
    }

    /// The record a call relies on must be on disk when it is made.
    fn check_call_is_durable(&self, i: usize) {
        let (tx, d) = (&self.tx, &self.durable);
        let b = &tx.branches[i];
        assert!(
            d.version >= 1 && d.branches.len() > i,
            "call {i} before the tx is durable"
        );
        let status = d.status;
        match (tx.kind, b.op) {
            (TxKind::Saga, Op::Action) => {
                assert_eq!(
                    status,
                    TxStatus::Submitted,
                    "action {i} called but durable {status:?}"
                );
                assert_ne!(
                    d.branches[i].status,
                    tandem_core::BranchStatus::Pending,
                    "action {i} called before the record that it may have run is durable"
                );
            }
            (TxKind::Saga, Op::Compensate) => {
                assert_eq!(
                    status,
                    TxStatus::Aborting,
                    "compensation {i} before a durable abort"
                )
            }
            (TxKind::TwoPc, Op::Prepare) => assert_eq!(status, TxStatus::Prepared),
            (TxKind::TwoPc, Op::Commit) => {
                assert_eq!(
                    status,
                    TxStatus::Submitted,
                    "commit {i} before a durable decision"
                )
            }
            (TxKind::Tcc, Op::Confirm) => {
                assert_eq!(
                    status,
                    TxStatus::Submitted,
                    "confirm {i} before a durable submit"
                )
            }
            (TxKind::Tcc, Op::Cancel) => {
                assert_eq!(
                    status,
                    TxStatus::Aborting,
                    "cancel {i} before a durable abort"
                )
            }
            (TxKind::Msg, Op::Msg) => {
                assert_eq!(
                    status,
                    TxStatus::Submitted,
                    "delivery {i} before a durable submit"
                )
            }
            _ => {}
        }
    }

    /// An outcome told must be one no crash can change.
    fn check_done_is_durable(&self, told: TxStatus) {
        let d = self.durable.status;
        use TxStatus::*;
        let ok = match (self.tx.kind, told) {
            (TxKind::Saga, _) => d == told,
            (TxKind::TwoPc, _) if self.one_phase => true,
            (TxKind::TwoPc, Succeeded) => matches!(d, Submitted | Succeeded),
            (TxKind::TwoPc, _) => matches!(d, Prepared | Aborting | Failed),
            (TxKind::Tcc, Succeeded) | (TxKind::Msg, Succeeded) => {
                matches!(d, Submitted | Succeeded)
            }
            (TxKind::Tcc, _) => matches!(d, Aborting | Failed),
            (TxKind::Msg, _) => d == Failed,
            // Not generated here (a workflow's steps are the client's): see t14_workflow.
            (TxKind::Workflow, _) => d == told,
        };
        assert!(ok, "told {told:?} while the durable status is {d:?}");
    }

    fn answer(&mut self, pick: usize, said: Said) {
        let branch = self.in_flight.remove(pick % self.in_flight.len());
        let op = self.tx.branches[branch].op;
        let said = match (said, op) {
            (Said::ReadOnly, Op::Prepare) => Said::ReadOnly,
            (Said::ReadOnly, _) => Said::Success,
            (s, _) => s,
        };
        // A one-phase commit is the participant's own local commit: once it has answered
        // success or failure, it answers the same to every later call (its barrier).
        let decided = self.calls.iter().find_map(|c| match (c.branch, c.answer) {
            (b, Some(a @ (Said::Success | Said::Failure))) if b == branch => Some(a),
            _ => None,
        });
        let said = match decided {
            Some(first) if op == Op::CommitOnePhase => first,
            _ => said,
        };
        let rec = self
            .calls
            .iter_mut()
            .rev()
            .find(|c| c.branch == branch && c.answer.is_none());
        if let Some(rec) = rec {
            rec.answer = Some(said);
        }
        let outcome = match said {
            Said::Success => CallOutcome::Success,
            Said::ReadOnly => CallOutcome::ReadOnly,
            Said::Failure => CallOutcome::Failure("no".into()),
            Said::Ongoing => CallOutcome::Ongoing,
            Said::Error => CallOutcome::Error("timeout".into()),
        };
        self.apply(Event::Answer {
            branch,
            outcome,
            at: self.now,
            latency_us: 1,
            code: None,
        });
    }

    fn crash(&mut self, survive: usize) {
        let kept = survive % (self.unsynced.len() + 1);
        let image = if kept == 0 {
            self.durable.clone()
        } else {
            self.unsynced[kept - 1].clone()
        };
        // Calls in flight are lost (their effect on participants is already recorded).
        for c in self.calls.iter_mut().filter(|c| c.answer.is_none()) {
            c.answer = None;
        }
        self.in_flight.clear();
        self.wake = None;
        self.tx = image.clone();
        self.durable = image;
        self.unsynced.clear();
        assert!(self.tx.branches.iter().all(|b| !b.in_flight));
        self.apply(Event::Resume);
    }

    fn tick(&mut self, to: Timestamp) {
        self.now = self.now.max(to);
        self.apply(Event::Tick);
    }

    fn run(&mut self, script: &[Step]) {
        for s in script {
            match s.clone() {
                Step::Answer { pick, roll } => {
                    if self.in_flight.is_empty() {
                        continue;
                    }
                    let said = match roll % 20 {
                        0..=9 => Said::Success,
                        10 | 11 => Said::Failure,
                        12..=14 => Said::Ongoing,
                        15..=18 => Said::Error,
                        _ => Said::ReadOnly,
                    };
                    self.answer(usize::from(pick), said);
                }
                Step::Tick { jump, ms } => {
                    let to = match (jump, self.wake) {
                        (true, Some(w)) => w,
                        _ => self.now.plus_ms(u64::from(ms)),
                    };
                    self.tick(to);
                }
                Step::Crash { survive } => self.crash(usize::from(survive)),
                Step::Retry => self.apply(Event::Retry {
                    reason: "operator".into(),
                }),
                Step::Register { id, variant } => {
                    if self.tx.kind == TxKind::Tcc {
                        self.apply(tcc_register(id, variant));
                    }
                }
                Step::Submit => self.apply(Event::Submit),
                Step::Abort => self.apply(Event::Abort),
                Step::Stop => {
                    if self.tx.kind != TxKind::Saga {
                        self.apply(Event::Stop {
                            reason: "operator".into(),
                        });
                    }
                }
            }
        }
    }

    /// Participants recover and an operator retries whatever parks: it must end.
    fn calm(&mut self) {
        for _ in 0..500 {
            if self.tx.is_final() {
                return;
            }
            if self.tx.parked.is_some() {
                self.apply(Event::Retry {
                    reason: "operator".into(),
                });
            } else if !self.in_flight.is_empty() {
                self.answer(0, Said::Success);
            } else if self.tx.status == TxStatus::Prepared
                && matches!(self.tx.kind, TxKind::Tcc | TxKind::Msg)
            {
                self.apply(Event::Submit);
            } else if let Some(w) = self.wake {
                self.tick(w);
            } else {
                panic!(
                    "stuck: nothing in flight, no wake-up, not final: {:#?}",
                    self.tx
                );
            }
        }
        panic!("did not end: {:#?}", self.tx);
    }

    fn called(&self, branch: usize) -> bool {
        self.calls.iter().any(|c| c.branch == branch)
    }
    fn succeeded(&self, branch: usize) -> bool {
        self.calls
            .iter()
            .any(|c| c.branch == branch && c.answer == Some(Said::Success))
    }

    /// Checks the effects participants saw against the outcome.
    fn check_effects(&self) {
        let tx = &self.tx;
        let status = tx.status;
        assert!(
            self.told.iter().all(|t| *t == status),
            "told {:?}, ended {status:?}",
            self.told
        );
        let ops: Vec<Op> = self.calls.iter().map(|c| c.op).collect();
        match tx.kind {
            // Not generated here (a workflow's steps are the client's): see t14_workflow.
            TxKind::Workflow => {}
            TxKind::Saga => {
                for k in 0..tx.branches.len() / 2 {
                    let (action, comp) = (2 * k, 2 * k + 1);
                    if let Some(first) = self.calls.iter().position(|c| c.branch == comp) {
                        let acted = self.calls[..first].iter().any(|c| c.branch == action);
                        assert!(
                            acted,
                            "step {k} compensated but its action was never called"
                        );
                    }
                    if status == TxStatus::Succeeded {
                        assert!(self.succeeded(action), "saga succeeded, step {k} never did");
                        assert!(
                            !self.called(comp),
                            "saga succeeded, step {k} was compensated"
                        );
                    } else if self.called(action) {
                        assert!(
                            self.succeeded(comp),
                            "saga failed, step {k} ran, not undone"
                        );
                    }
                }
            }
            TxKind::TwoPc if self.one_phase => {
                if status == TxStatus::Succeeded {
                    assert!(self.succeeded(0));
                }
            }
            TxKind::TwoPc => {
                assert!(
                    !(ops.contains(&Op::Commit) && ops.contains(&Op::Rollback)),
                    "both commit and rollback were sent: {:?}",
                    self.calls
                );
                for k in 0..tx.branches.len() / 3 {
                    let prepares: Vec<_> =
                        self.calls.iter().filter(|c| c.branch == 3 * k).collect();
                    let maybe_prepared = prepares.iter().any(|c| c.answer == Some(Said::Success))
                        || prepares.last().is_some_and(|c| {
                            matches!(c.answer, None | Some(Said::Error | Said::Ongoing))
                        });
                    let ended = if status == TxStatus::Succeeded {
                        3 * k + 1
                    } else {
                        3 * k + 2
                    };
                    if maybe_prepared {
                        assert!(self.succeeded(ended), "participant {k} left prepared");
                    }
                    if status == TxStatus::Succeeded {
                        assert!(
                            prepares
                                .iter()
                                .any(|c| matches!(c.answer, Some(Said::Success | Said::ReadOnly))),
                            "committed without participant {k}'s yes"
                        );
                    }
                }
            }
            TxKind::Tcc => {
                let confirmed = ops.iter().any(|o| matches!(o, Op::Confirm | Op::Commit));
                let cancelled = ops.iter().any(|o| matches!(o, Op::Cancel | Op::Rollback));
                assert!(
                    !(confirmed && cancelled),
                    "both confirm and cancel sent: {:?}",
                    self.calls
                );
                let want = if status == TxStatus::Succeeded {
                    Op::Confirm
                } else {
                    Op::Cancel
                };
                for (i, b) in tx.branches.iter().enumerate().filter(|(_, b)| b.op == want) {
                    assert!(
                        self.succeeded(i),
                        "branch {}/{:?} not finished",
                        b.branch_id,
                        b.op
                    );
                }
            }
            TxKind::Msg => {
                for (i, b) in tx
                    .branches
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.op == Op::Msg)
                {
                    if status == TxStatus::Succeeded {
                        assert!(self.succeeded(i), "delivery {} not made", b.branch_id);
                    } else {
                        assert!(
                            !self.called(i),
                            "failed message delivered to {}",
                            b.branch_id
                        );
                    }
                }
            }
        }
        let _ = &self.stopped;
    }
}

fn tcc_register(id: u8, variant: u8) -> Event {
    let id = format!("{:02}", id + 1);
    // Mostly the same content (idempotent re-registration); sometimes a conflicting one.
    let payload = if variant == 7 {
        b"other".to_vec()
    } else {
        b"{}".to_vec()
    };
    Event::Register {
        branch_id: id.clone(),
        ops: vec![
            (Op::Confirm, format!("{id}/confirm")),
            (Op::Cancel, format!("{id}/cancel")),
        ],
        payload,
        limits: tandem_core::Limits::default(),
    }
}

fn options(retry_limit: u32, timeout: Option<u64>) -> Options {
    Options {
        retry_interval_ms: 100,
        retry_max_ms: 1_000,
        retry_limit,
        timeout_to_fail_ms: timeout,
        query_prepared_after_ms: 1_000,
        ..Options::default()
    }
}

fn common_options() -> impl Strategy<Value = Options> {
    (1u32..5, prop::option::of(200u64..6_000)).prop_map(|(l, t)| options(l, t))
}

fn check(tx: Transaction, script: &[Step]) {
    let mut sim = Sim::new(tx);
    sim.apply(Event::Start);
    assert!(sim.durable.version >= 1, "not durable after start");
    sim.run(script);
    sim.calm();
    sim.check_effects();
    // An ended transaction never changes, whatever comes (`Sim::apply` checks each event).
    let end = sim.tx.clone();
    let n = end.branches.len();
    for s in script {
        match s.clone() {
            Step::Answer { .. } if n == 0 => {}
            Step::Answer { pick, .. } => {
                let branch = usize::from(pick) % n;
                let outcome = CallOutcome::Error("late".into());
                sim.apply(Event::Answer {
                    branch,
                    outcome,
                    at: sim.now,
                    latency_us: 1,
                    code: None,
                });
            }
            Step::Crash { .. } => sim.apply(Event::Resume),
            other => sim.run(&[other]),
        }
    }
    assert_eq!(sim.tx, end);
}

/// Saga shapes: sequential, concurrent, or a random DAG (each step depends on a random
/// subset of earlier steps, so it is acyclic by construction).
fn saga_tx() -> impl Strategy<Value = Transaction> {
    (
        1usize..=6,
        0u8..3,
        prop::collection::vec(any::<u8>(), 6),
        0u16..3,
        common_options(),
    )
        .prop_map(|(steps, mode, bits, concurrency_max, mut opts)| {
            opts.concurrent = mode > 0;
            opts.concurrency_max = concurrency_max;
            if mode == 2 {
                opts.orders = (0..steps)
                    .map(|k| (0..k as u16).filter(|&d| bits[k] & (1 << d) != 0).collect())
                    .collect();
            }
            let mut tx = Transaction::new("saga-p", TxKind::Saga, opts, T0);
            for k in 0..steps {
                let id = format!("{:02}", k + 1);
                tx.branches
                    .push(Branch::new(id.clone(), Op::Action, "a", vec![]));
                tx.branches
                    .push(Branch::new(id, Op::Compensate, "c", vec![]));
            }
            tx
        })
}

fn twopc_tx() -> impl Strategy<Value = Transaction> {
    (1usize..=4, any::<bool>(), common_options()).prop_map(|(n, one_phase, opts)| {
        let mut tx = Transaction::new("2pc-p", TxKind::TwoPc, opts, T0);
        if n == 1 && one_phase {
            tx.branches
                .push(Branch::new("01", Op::CommitOnePhase, "db", vec![]));
            return tx;
        }
        for k in 0..n {
            let id = format!("{:02}", k + 1);
            for op in [Op::Prepare, Op::Commit, Op::Rollback] {
                tx.branches.push(Branch::new(id.clone(), op, "db", vec![]));
            }
        }
        tx
    })
}

fn msg_tx() -> impl Strategy<Value = Transaction> {
    (1usize..=3, any::<bool>(), common_options()).prop_map(|(n, query, opts)| {
        let mut tx = Transaction::new("msg-p", TxKind::Msg, opts, T0);
        for k in 0..n {
            tx.branches
                .push(Branch::new(format!("{:02}", k + 1), Op::Msg, "svc", vec![]));
        }
        tx.query_prepared = query.then(|| "sender/query".to_string());
        tx
    })
}

fn cases() -> u32 {
    std::env::var("TANDEM_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn script() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 0..80)
}

proptest! {
    // 400 cases each keep the crate's tests at a few seconds in debug; set
    // TANDEM_PROPTEST_CASES for a longer search.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn saga_holds_under_random_answers_and_crashes(tx in saga_tx(), s in script()) {
        check(tx, &s);
    }

    #[test]
    fn twopc_holds_under_random_answers_and_crashes(tx in twopc_tx(), s in script()) {
        check(tx, &s);
    }

    #[test]
    fn tcc_holds_under_random_answers_and_crashes(opts in common_options(), s in script()) {
        check(Transaction::new("tcc-p", TxKind::Tcc, opts, T0), &s);
    }

    #[test]
    fn msg_holds_under_random_answers_and_crashes(tx in msg_tx(), s in script()) {
        check(tx, &s);
    }
}

#[test]
fn simulator_sees_a_lost_unsynced_answer() {
    // Sanity check of the crash model itself: an answer persisted without waiting may be
    // lost, and the call is then made again.
    let mut tx = Transaction::new("saga-s", TxKind::Saga, options(3, None), T0);
    tx.branches.push(Branch::new("01", Op::Action, "a", vec![]));
    tx.branches
        .push(Branch::new("01", Op::Compensate, "c", vec![]));
    tx.options.concurrent = true;
    tx.branches.push(Branch::new("02", Op::Action, "a", vec![]));
    tx.branches
        .push(Branch::new("02", Op::Compensate, "c", vec![]));
    let mut sim = Sim::new(tx);
    sim.apply(Event::Start);
    sim.answer(0, Said::Success);
    assert_eq!(sim.unsynced.len(), 1);
    sim.crash(0);
    let counts: BTreeMap<usize, usize> = sim.calls.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.branch).or_default() += 1;
        m
    });
    assert_eq!(counts, BTreeMap::from([(0, 2), (2, 2)]));
}
