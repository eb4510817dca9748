//! One task per active transaction: it owns the [`Transaction`], feeds it events and
//! executes the commands its protocol machine returns.
//!
//! ```text
//!  inbox (client / operator) ─┐
//!  call answers ──────────────┼─► tx.apply(event, now) ─► commands ─► store / transport / timer
//!  wake-up timer ─────────────┘
//! ```
//!
//! Commands run in order; a `Persist { sync: true }` is awaited before anything after it
//! (so no call goes out before the record that must precede it is on disk). Because one
//! task owns the transaction, events are applied one at a time without locks.
//!
//! If the store fails, the driver puts the whole coordinator in fail-stop ([`Phase::Failed`])
//! and stops without touching the transaction further; every other driver leaves too, and
//! no call that was not sent yet is sent. What is durable is the truth, and recovery resumes
//! from it on the next start.
//!
//! A wide transaction (many branches) is logged as deltas after its first snapshot
//! (`tandem_core::codec`): the driver keeps the [`Shadow`] of what it last logged.
//!
//! Time for the stuck check comes from tokio's clock, like every timer here, so a
//! simulation that pauses or advances tokio's time drives it deterministically.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tandem_core::codec::Shadow;
use tandem_core::{CallOutcome, Command, Event, Op, Transaction, TxKind, TxStatus, Xid};
use tandem_store::Record;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::EngineError;
use crate::outcome::Outcome;
use crate::registry::Control;
use crate::shared::{Phase, Shared};
use crate::transport::{CallRequest, CallResult};

/// `950 ms`, `42 s`, `3600 s`: short enough for a reason line.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

type CallFuture =
    Pin<Box<dyn Future<Output = (usize, CallResult, tandem_core::Timestamp, u64)> + Send>>;

pub(crate) struct Driver {
    tx: Transaction,
    gid: Arc<str>,
    shared: Arc<Shared>,
    inbox: mpsc::Receiver<Control>,
    calls: FuturesUnordered<CallFuture>,
    wake: Option<tandem_core::Timestamp>,
    waiters: Vec<oneshot::Sender<Outcome>>,
    headers: Arc<Vec<(String, String)>>,
    /// 2PC: the commit decision is known to be durable.
    decided: bool,
    /// This driver counts its transaction in the parked gauge.
    parked_counted: bool,
    /// The status the transaction is in, and since when (for `stuck_after`).
    phase: (TxStatus, Instant),
    /// What this driver last logged of a wide transaction (see the module doc).
    shadow: Option<Shadow>,
    /// The transaction's heuristic outcome has been counted and alerted.
    heuristic_reported: bool,
    /// What was logged about failed branch calls (rate-limited).
    call_log: crate::call_log::CallLog,
}

impl Driver {
    pub(crate) fn new(
        tx: Transaction,
        gid: Arc<str>,
        shared: Arc<Shared>,
        inbox: mpsc::Receiver<Control>,
    ) -> Self {
        let headers = Arc::new(tx.options.branch_headers.clone());
        let decided = tx.kind == TxKind::TwoPc && tx.status != TxStatus::Prepared;
        // A transaction loaded from the store (version > 0) is durable as it is: deltas may
        // start from it. A new one is logged whole first.
        let shadow = (tx.version > 0
            && tx.branches.len() >= tandem_core::codec::DELTA_BRANCHES_MIN)
            .then(|| Shadow::of(&tx));
        let heuristic_reported = tx.heuristic.is_some();
        Driver {
            tx,
            gid,
            shared,
            inbox,
            calls: FuturesUnordered::new(),
            wake: None,
            waiters: Vec::new(),
            headers,
            decided,
            parked_counted: false,
            phase: (TxStatus::Prepared, Instant::now()),
            shadow,
            heuristic_reported,
            call_log: Default::default(),
        }
    }

    /// Keeps the parked gauge and the current phase in step with the transaction.
    fn track(&mut self) {
        let parked = self.tx.parked.is_some() && !self.tx.is_final();
        if parked != self.parked_counted {
            self.shared.metrics.parked_gauge(parked);
            self.parked_counted = parked;
            if !parked {
                // An operator's retry starts the stuck clock anew.
                self.phase.1 = Instant::now();
            }
        }
        if self.tx.status != self.phase.0 {
            self.phase = (self.tx.status, Instant::now());
        }
    }

    /// When the transaction counts as stuck, if it is not parked already.
    fn stuck_at(&self) -> Option<Instant> {
        let after = self.shared.config.stuck_after?;
        if self.tx.parked.is_some() || self.tx.is_final() {
            return None;
        }
        Some(self.phase.1 + after)
    }

    /// Runs the transaction from `first` (Start or Resume) until it ends, then deregisters.
    /// `started` hears whether `first` was accepted and made durable.
    pub(crate) async fn run(
        mut self,
        first: Event,
        started: Option<oneshot::Sender<Result<(), EngineError>>>,
        waiter: Option<oneshot::Sender<Outcome>>,
    ) {
        self.waiters.extend(waiter);
        let first_result = self.step(first).await;
        let ok = first_result.is_ok();
        if let Some(s) = started {
            let _ = s.send(first_result);
        }
        if ok {
            self.event_loop().await;
        }
        if self.parked_counted {
            self.shared.metrics.parked_gauge(false);
        }
        self.shared.registry.remove(&self.gid);
        // Answer whatever reached the inbox before it closed, so nobody waits on a driver
        // that is gone (they would otherwise fall back to the log).
        self.inbox.close();
        while let Ok(ctl) = self.inbox.try_recv() {
            match ctl {
                Control::Wait(w) if self.tx.is_final() => {
                    let _ = w.send(Outcome::of(&self.tx));
                }
                Control::Event { event, reply } if self.tx.is_final() => {
                    let now = self.shared.clock.now();
                    let _ = reply.send(self.tx.clone().apply(event, now).map(|_| ()));
                }
                _ => {}
            }
        }
    }

    async fn event_loop(&mut self) {
        let mut shutdown = self.shared.watch_phase();
        // False once every coordinator handle is gone (nobody can signal shutdown any more).
        let mut watched = true;
        loop {
            // Draining (shutdown began): finish the calls in flight, start nothing new on our
            // own timer; stopped (the grace period ran out) or failed: leave now, the log has
            // the rest.
            let phase = *shutdown.borrow();
            if self.tx.is_final()
                || matches!(phase, Phase::Stop | Phase::Failed)
                || (phase == Phase::Drain && self.calls.is_empty())
            {
                return;
            }
            let draining = phase == Phase::Drain;
            // Stuck: checked on every turn; a timer for it only while nothing else would wake
            // the loop (a call in flight ends within its timeout and brings us back here).
            let stuck_at = self.stuck_at();
            if !draining && stuck_at.is_some_and(|at| at <= Instant::now()) {
                let reason = format!(
                    "stuck in status {} for {} (stuck_after {})",
                    self.tx.status.as_str(),
                    human(self.phase.1.elapsed()),
                    human(self.shared.config.stuck_after.unwrap_or_default())
                );
                if let Err(e) = self.step(Event::Park { reason }).await {
                    tracing::error!(gid = %self.gid, error = %e, "driver stopped; the transaction resumes from the log on restart");
                    return;
                }
                continue;
            }
            let wake_in = self.wake.map(|at| {
                let now = self.shared.clock.now();
                Duration::from_millis(at.0.saturating_sub(now.0))
            });
            let stuck_in = stuck_at
                .filter(|_| self.calls.is_empty())
                .map(|at| at.saturating_duration_since(Instant::now()));
            // Whether the timer below is the transaction's own wake-up (else the stuck check).
            let ticks = match (wake_in, stuck_in) {
                (Some(a), Some(b)) => a <= b,
                (a, _) => a.is_some(),
            };
            let sleep = match (wake_in, stuck_in) {
                (Some(a), Some(b)) => Some(tokio::time::sleep(a.min(b))),
                (a, b) => a.or(b).map(tokio::time::sleep),
            };
            let has_sleep = sleep.is_some();
            let sleep = async move {
                match sleep {
                    Some(s) => s.await,
                    None => std::future::pending().await,
                }
            };
            // `biased`: polled in this order, not at random, so a seeded simulation replays.
            let result = tokio::select! {
                biased;
                Some((branch, res, at, latency_us)) = self.calls.next(), if !self.calls.is_empty() => {
                    self.answer(branch, res, at, latency_us).await
                }
                ctl = self.inbox.recv() => match ctl {
                    Some(Control::Event { event, reply }) => {
                        match self.step(event).await {
                            Ok(()) => { let _ = reply.send(Ok(())); Ok(()) }
                            Err(EngineError::Refused(e)) => { let _ = reply.send(Err(e)); Ok(()) }
                            Err(e) => Err(e),
                        }
                    }
                    Some(Control::Wait(w)) => {
                        if self.tx.parked.is_some() {
                            let _ = w.send(Outcome::of(&self.tx));
                        } else {
                            self.waiters.push(w);
                        }
                        Ok(())
                    }
                    None => Ok(()),
                },
                _ = sleep, if has_sleep && !draining => {
                    if ticks {
                        self.wake = None;
                        self.step(Event::Tick).await
                    } else {
                        Ok(()) // the stuck check at the top of the loop decides
                    }
                }
                changed = shutdown.changed(), if watched => {
                    watched = changed.is_ok();
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(gid = %self.gid, error = %e, "driver stopped; the transaction resumes from the log on restart");
                return;
            }
        }
    }

    async fn answer(
        &mut self,
        branch: usize,
        res: CallResult,
        at: tandem_core::Timestamp,
        latency_us: u64,
    ) -> Result<(), EngineError> {
        let op = self.tx.branches[branch].op;
        self.shared.metrics.call(op, &res.outcome, latency_us);
        if let CallOutcome::Error(e) = &res.outcome {
            let b = &self.tx.branches[branch];
            self.call_log.failed(
                &self.gid,
                &b.branch_id,
                op.as_str(),
                &b.target,
                e,
                b.attempts,
            );
        }
        let event = Event::Answer {
            branch,
            outcome: res.outcome,
            at,
            latency_us,
            code: res.code,
        };
        let last_vote = op == Op::Prepare
            && self
                .tx
                .branches
                .iter()
                .enumerate()
                .all(|(i, b)| i == branch || b.op != Op::Prepare || !b.in_flight);
        if last_vote {
            // Every vote is in; nothing about them is logged yet.
            fail::fail_point!("2pc-after-votes");
        }
        self.step(event).await?;
        match op {
            Op::Commit | Op::Rollback => fail::fail_point!("2pc-between-phase2"),
            Op::Action => fail::fail_point!("saga-between-steps"),
            Op::Compensate => fail::fail_point!("saga-mid-compensation"),
            _ => {}
        }
        Ok(())
    }

    /// Applies one event and executes the resulting commands.
    async fn step(&mut self, event: Event) -> Result<(), EngineError> {
        let now = self.shared.clock.now();
        let cmds = self.tx.apply(event, now)?;
        let result = self.execute(cmds).await;
        self.track();
        if let Err(e) = &result {
            if !matches!(e, EngineError::Refused(_)) {
                // The log could not take a write: nothing we believe is certain any more.
                self.shared.fail(format!("writing {}: {e}", self.gid));
            }
        }
        result
    }

    async fn execute(&mut self, cmds: Vec<Command>) -> Result<(), EngineError> {
        for cmd in cmds {
            match cmd {
                Command::Persist { sync } => self.persist(sync).await?,
                Command::Call { branch } => self.call(branch),
                Command::Wake { at } => self.wake = Some(at),
                Command::Park { reason } => {
                    self.shared.metrics.parked(self.tx.kind);
                    let heuristic = self.tx.heuristic.is_some();
                    if heuristic && !self.heuristic_reported {
                        self.heuristic_reported = true;
                        self.shared.metrics.heuristic();
                        tracing::error!(gid = %self.gid, %reason, "HEURISTIC OUTCOME: a participant disagrees with the log; parked until an operator looks and stops it");
                    } else {
                        tracing::warn!(gid = %self.gid, %reason, "transaction parked; an operator must retry or stop it");
                    }
                    let _ = self.shared.alerts.send(crate::alert::ParkedAlert {
                        gid: self.tx.gid.clone(),
                        kind: self.tx.kind,
                        status: self.tx.status,
                        reason,
                        heuristic,
                        at: self.shared.clock.now(),
                    });
                    let outcome = Outcome::of(&self.tx);
                    for w in self.waiters.drain(..) {
                        let _ = w.send(outcome.clone());
                    }
                }
                Command::Done { status } => {
                    self.shared.metrics.finished(self.tx.kind, status);
                    if let Some(hook) = &self.shared.on_end {
                        hook(&self.tx);
                    }
                    let outcome = Outcome::of(&self.tx);
                    for w in self.waiters.drain(..) {
                        let _ = w.send(outcome.clone());
                    }
                }
            }
        }
        Ok(())
    }

    async fn persist(&mut self, sync: bool) -> Result<(), EngineError> {
        let deciding =
            self.tx.kind == TxKind::TwoPc && self.tx.status == TxStatus::Submitted && !self.decided;
        if deciding {
            fail::fail_point!("2pc-before-decision");
        }
        if self.tx.is_final() {
            fail::fail_point!("before-end");
        }
        let rec = Record::logged(&self.tx, &mut self.shadow)?;
        self.shared.store.write(rec, sync).await?;
        if deciding {
            self.decided = true;
            fail::fail_point!("2pc-after-decision");
        }
        if self.tx.is_final() {
            fail::fail_point!("after-end");
        }
        if !self.tx.is_final() && self.tx.version == 1 {
            fail::fail_point!("after-start");
        }
        Ok(())
    }

    fn call(&mut self, branch: usize) {
        let b = &self.tx.branches[branch];
        let timeout = self
            .tx
            .options
            .request_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.shared.config.request_timeout);
        let xid = (self.tx.kind == TxKind::TwoPc).then(|| {
            let xid = match &self.tx.origin {
                Some(origin) => Xid::format(origin, &self.gid, &b.branch_id, self.tx.nonce),
                None => tandem_core::identity::legacy_xid(
                    &self.shared.identity.node,
                    &self.gid,
                    &b.branch_id,
                ),
            };
            Arc::from(xid)
        });
        let req = CallRequest {
            gid: self.gid.clone(),
            kind: self.tx.kind,
            branch_id: b.branch_id.clone(),
            op: b.op,
            target: b.target.clone(),
            payload: b.payload.to_vec(),
            headers: self.headers.clone(),
            timeout,
            xid,
        };
        let shared = self.shared.clone();
        let span =
            tracing::debug_span!("branch_call", branch_id = %b.branch_id, op = b.op.as_str());
        self.calls.push(Box::pin(tracing::Instrument::instrument(
            async move {
                // Bounded fan-out across every transaction; a closed semaphore means shutdown,
                // and the call then goes ahead so the answer is not lost.
                let _permit = shared.call_permits.clone().acquire_owned().await;
                let at = shared.clock.now();
                if !shared.healthy() {
                    // Fail-stop: nothing is sent once the log failed (the driver is leaving).
                    let why = "not sent: the coordinator's log failed".to_string();
                    return (branch, CallOutcome::Error(why).into(), at, 0);
                }
                let t0 = Instant::now();
                let res = match tokio::time::timeout(timeout, shared.transport.call(req)).await {
                    Ok(r) => r,
                    Err(_) => {
                        CallOutcome::Error(format!("no answer within {} ms", timeout.as_millis()))
                            .into()
                    }
                };
                (branch, res, at, t0.elapsed().as_micros() as u64)
            },
            span,
        )));
    }
}
