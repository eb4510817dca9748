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
//! **A driver lives only while its transaction has work.** Each record it writes says where
//! the transaction stands (`tandem_store::Due`): `Active` while calls are in flight (a restart
//! resumes it at once), `Idle(at)` when it only waits — for a timer, a retry, a confirm, a
//! query-prepared check. A driver idle for `evict_after` leaves memory (its last record made
//! durable first); the scheduler ([`crate::scheduler`]) or the next event loads it again
//! from the store. So open transactions cost disk, not memory, and `active_max` bounds what
//! is running, not what is waiting.
//!
//! On a shared store every write carries the driver's fence; a refused one
//! (`StoreError::Fenced`: another node took the transaction over) ends the driver at once,
//! without a further call.
//!
//! Time for the stuck check comes from tokio's clock, like every timer here, so a
//! simulation that pauses or advances tokio's time drives it deterministically.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tandem_core::codec::Shadow;
use tandem_core::{CallOutcome, Command, Event, Op, Timestamp, Transaction, TxKind, TxStatus, Xid};
use tandem_store::{Due, Record, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::EngineError;
use crate::outcome::Outcome;
use crate::registry::{Claim, Control, INBOX_MAX};
use crate::shared::{Phase, Shared};
use crate::transport::{CallRequest, CallResult};

/// The `tracing` span a transaction's driver runs in (debug level: free when disabled).
pub(crate) fn span_of(tx: &Transaction) -> tracing::Span {
    tracing::debug_span!("tx", gid = %tx.gid, kind = tx.kind.as_str())
}

/// Most ready answers applied before the owed record is written.
const SETTLE_MAX: usize = 1024;

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
    /// The fence every write carries (shared stores; see the module doc).
    fence: u64,
    /// What the newest write said of the transaction's standing, if known.
    persisted_due: Option<Due>,
    /// The newest write was not forced (flush before leaving memory).
    unsynced: bool,
    /// An unforced record is owed: written once the answers that are ready have all been
    /// applied (a burst of answers costs one write), or by the next forced one.
    dirty: bool,
    /// The standing the current step's writes record.
    step_due: Due,
    /// Since when the driver has had nothing to do (see the module doc).
    idle_since: Option<Instant>,
    /// The store's lease epoch when this driver took the transaction: once it changes,
    /// another node may own it, so this driver leaves.
    epoch: u64,
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
        fence: u64,
        epoch: u64,
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
            wake: tx.next_wake,
            tx,
            gid,
            shared,
            inbox,
            calls: FuturesUnordered::new(),
            waiters: Vec::new(),
            headers,
            decided,
            fence,
            persisted_due: None,
            unsynced: false,
            dirty: false,
            step_due: Due::Active,
            idle_since: None,
            epoch,
            shadow,
            heuristic_reported,
            call_log: Default::default(),
        }
    }

    /// Claims `gid` in the registry and runs a driver for `tx` from `first` (`Start` for a new
    /// transaction, `Resume` after a crash or a takeover, `Tick` for one loaded when due).
    /// `force` ignores `active_max` (recovery of what was running). `Err` with the claim when
    /// the gid is driven already or the registry is full.
    pub(crate) fn spawn(
        shared: &Arc<Shared>,
        tx: Transaction,
        fence: u64,
        epoch: u64,
        first: Event,
        force: bool,
    ) -> Result<(), Claim> {
        let gid: Arc<str> = Arc::from(tx.gid.as_str());
        let (inbox_tx, inbox) = mpsc::channel(INBOX_MAX);
        match shared.registry.claim(&gid, &inbox_tx, force) {
            Claim::Claimed => {}
            other => return Err(other),
        }
        let span = span_of(&tx);
        let driver = Driver::new(tx, gid, shared.clone(), inbox, fence, epoch);
        tokio::spawn(tracing::Instrument::instrument(
            driver.run(first, None, None),
            span,
        ));
        Ok(())
    }

    /// Whether this driver may still act for its transaction: the lease is valid and has not
    /// lapsed since the driver took the transaction.
    fn may_act(&self) -> bool {
        self.shared.store.lease_valid() && self.shared.store.epoch() == self.epoch
    }

    /// When the transaction counts as stuck, if it is not parked already.
    fn stuck_at(&self) -> Option<Timestamp> {
        let after = self.shared.config.stuck_after?;
        if self.tx.parked.is_some() || self.tx.is_final() {
            return None;
        }
        Some(self.tx.status_since.plus_ms(after.as_millis() as u64))
    }

    /// When the transaction next needs a driver while it waits in the store: its own wake-up
    /// or the stuck check, whichever comes first.
    fn idle_due(&self) -> Due {
        let at = match (self.tx.next_wake, self.stuck_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Due::Idle(at)
    }

    /// Nothing to do before `evict_after` has passed: no call in flight, nobody waiting, no
    /// wake-up soon.
    fn idle(&self, now: Timestamp) -> bool {
        let soon = now.plus_ms(self.shared.config.evict_after.as_millis() as u64);
        self.calls.is_empty()
            && self.waiters.is_empty()
            && !self.tx.is_final()
            && self.tx.next_wake.is_none_or(|w| w > soon)
    }

    /// Leaves memory: makes the newest record durable with the transaction's idle standing.
    async fn evict(&mut self) -> Result<(), EngineError> {
        let due = self.idle_due();
        if self.dirty {
            self.step_due = due;
            self.persist(true).await?;
        } else if self.persisted_due != Some(due) {
            // Only the standing changed (e.g. a timer moved): a record of its own. The engine
            // bumps the version here, outside the core, since the core has nothing to log.
            self.tx.version += 1;
            self.tx.updated_at = self.shared.clock.now();
            self.step_due = due;
            self.persist(true).await?;
        } else if self.unsynced {
            self.shared.store.flush().await?;
        }
        self.shared.scheduler_hint(due);
        Ok(())
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
        if self.dirty && self.may_act() && self.shared.healthy() {
            // The owed unforced record (e.g. a 2PC's end, implied by its decision).
            if let Err(e) = self.persist(false).await {
                tracing::warn!(gid = %self.gid, error = %e, "the last unforced record was not written; the log resumes from the one before");
            }
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
            // A shared store whose lease may have lapsed: another node may take anything over
            // now, so nothing more is called or written here (the coordinator reloads what it
            // still owns once the lease is back).
            if !self.may_act() {
                return;
            }
            let now = self.shared.clock.now();
            // Stuck: checked on every turn (the clock is the transaction's own, so it counts
            // while the transaction waits in the store too).
            let stuck_at = self.stuck_at();
            if !draining && stuck_at.is_some_and(|at| at <= now) {
                let after = self.shared.config.stuck_after.unwrap_or_default();
                let since = Duration::from_millis(now.0.saturating_sub(self.tx.status_since.0));
                let reason = format!(
                    "stuck in status {} for {} (stuck_after {})",
                    self.tx.status.as_str(),
                    human(since),
                    human(after)
                );
                if let Err(e) = self.step(Event::Park { reason }).await {
                    tracing::error!(gid = %self.gid, error = %e, "driver stopped; the transaction resumes from the log on restart");
                    return;
                }
                continue;
            }
            // Idle long enough: leave memory (the store keeps it, due when it next needs us).
            let evict_in = if !draining && self.idle(now) {
                let since = *self.idle_since.get_or_insert_with(Instant::now);
                let after = self.shared.config.evict_after;
                if since.elapsed() >= after && self.inbox.is_empty() {
                    if let Err(e) = self.evict().await {
                        tracing::error!(gid = %self.gid, error = %e, "driver stopped; the transaction resumes from the log on restart");
                    }
                    return;
                }
                Some(after.saturating_sub(since.elapsed()))
            } else {
                self.idle_since = None;
                None
            };
            let wake_in = self
                .wake
                .map(|at| Duration::from_millis(at.0.saturating_sub(now.0)));
            let stuck_in = stuck_at
                .filter(|_| self.calls.is_empty())
                .map(|at| Duration::from_millis(at.0.saturating_sub(now.0)));
            // Whether the timer below is the transaction's own wake-up (else a check above).
            let ticks = match (wake_in, stuck_in.into_iter().chain(evict_in).min()) {
                (Some(a), Some(b)) => a <= b,
                (a, _) => a.is_some(),
            };
            let sleep = wake_in
                .into_iter()
                .chain(stuck_in)
                .chain(evict_in)
                .min()
                .map(tokio::time::sleep);
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
                        Ok(()) // the stuck and idle checks at the top of the loop decide
                    }
                }
                changed = shutdown.changed(), if watched => {
                    watched = changed.is_ok();
                    Ok(())
                }
            };
            // Apply every answer that is ready now, then write what is owed once.
            let result = match result {
                Ok(()) => self.settle().await,
                e => e,
            };
            if let Err(e) = result {
                match e {
                    EngineError::Store(StoreError::Fenced { .. }) => {
                        tracing::warn!(gid = %self.gid, "another node took the transaction over; this driver stops");
                    }
                    e => {
                        tracing::error!(gid = %self.gid, error = %e, "driver stopped; the transaction resumes from the log on restart");
                    }
                }
                return;
            }
        }
    }

    /// Applies the answers that are ready without waiting (bounded), then writes the owed
    /// unforced record, if any.
    async fn settle(&mut self) -> Result<(), EngineError> {
        for _ in 0..SETTLE_MAX {
            match futures::FutureExt::now_or_never(self.calls.next()) {
                Some(Some((branch, res, at, latency_us))) => {
                    self.answer(branch, res, at, latency_us).await?
                }
                _ => break,
            }
        }
        if self.dirty {
            self.persist(false).await?;
        }
        Ok(())
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
        if let Err(e) = &result {
            match e {
                EngineError::Refused(_) => {}
                // Another node owns it now: this driver stops; nothing else is wrong.
                EngineError::Store(StoreError::Fenced { .. }) => {}
                // A shared store out of reach: its outcome is unknown, so this driver stops
                // (the coordinator reloads what it still owns once the store is back).
                EngineError::Store(StoreError::Unavailable(_)) => {}
                // The log could not take a write: nothing we believe is certain any more.
                _ => self.shared.fail(format!("writing {}: {e}", self.gid)),
            }
        }
        result
    }

    async fn execute(&mut self, cmds: Vec<Command>) -> Result<(), EngineError> {
        // Whether this step leaves the transaction waiting (no call from it, none in flight):
        // then its record says so, and a restart need not resume it.
        let now = self.shared.clock.now();
        let calls = cmds.iter().any(|c| matches!(c, Command::Call { .. }));
        self.step_due = if !calls && self.idle(now) {
            self.idle_due()
        } else {
            Due::Active
        };
        for cmd in cmds {
            match cmd {
                Command::Persist { sync: true } => self.persist(true).await?,
                Command::Persist { sync: false } => self.dirty = true,
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
        let mut rec = Record::logged(&self.tx, &mut self.shadow)?;
        rec.due = self.step_due;
        rec.fence = self.fence;
        self.shared.store.write(rec, sync).await?;
        self.persisted_due = Some(self.step_due);
        self.unsynced = !sync;
        self.dirty = false;
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
        let epoch = self.epoch;
        let span =
            tracing::debug_span!("branch_call", branch_id = %b.branch_id, op = b.op.as_str());
        self.calls.push(Box::pin(tracing::Instrument::instrument(
            async move {
                // Bounded fan-out across every transaction; a closed semaphore means shutdown,
                // and the call then goes ahead so the answer is not lost.
                let _permit = shared.call_permits.clone().acquire_owned().await;
                let at = shared.clock.now();
                let may = shared.store.lease_valid() && shared.store.epoch() == epoch;
                if !shared.healthy() || !may {
                    // Fail-stop, or a lapsed lease: nothing is sent (the driver is leaving).
                    let why = "not sent: the coordinator may not act now".to_string();
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
