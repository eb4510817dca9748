//! What the engine counts, for `/metrics` and the dashboard: transactions started and
//! finished by type and outcome, parked ones, branch-call latency by op and outcome, retries
//! and recovery actions.
//!
//! Everything is a fixed array of atomics indexed by enum (bounded label sets, no maps, no
//! locks), so counting costs a few relaxed increments on the hot path. Readers take
//! [`MetricsSnapshot`]s; the server renders them in Prometheus' text format.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tandem_core::{CallOutcome, Op, TxKind, TxStatus};
use tandem_store::hist::{Histogram, HistogramSnapshot, LATENCY_BOUNDS_NS};

/// Every transaction type, in index order.
pub const KINDS: [TxKind; 5] = [
    TxKind::Saga,
    TxKind::TwoPc,
    TxKind::Tcc,
    TxKind::Msg,
    TxKind::Workflow,
];

/// Every branch op, in index order.
pub const OPS: [Op; 12] = [
    Op::Action,
    Op::Compensate,
    Op::Try,
    Op::Confirm,
    Op::Cancel,
    Op::Prepare,
    Op::Commit,
    Op::Rollback,
    Op::CommitOnePhase,
    Op::Msg,
    Op::QueryPrepared,
    Op::Workflow,
];

/// How a branch call ended, as a metric label.
pub const CALL_OUTCOMES: [&str; 5] = ["success", "failure", "ongoing", "error", "not_prepared"];

/// What recovery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    /// An unfinished transaction resumed from the log on open.
    Resumed = 0,
    /// A prepared XA branch committed because the log holds the commit decision.
    InDoubtCommitted = 1,
    /// A prepared XA branch rolled back because the log shows the transaction aborted.
    InDoubtRolledBack = 2,
    /// A prepared XA branch rolled back because no log record explains it (presumed abort).
    InDoubtOrphanRolledBack = 3,
}

/// [`RecoveryAction`]s as metric labels, in index order.
pub const RECOVERY_ACTIONS: [&str; 4] = [
    "resumed",
    "in_doubt_committed",
    "in_doubt_rolled_back",
    "in_doubt_orphan_rolled_back",
];

fn kind_index(k: TxKind) -> usize {
    match k {
        TxKind::Saga => 0,
        TxKind::TwoPc => 1,
        TxKind::Tcc => 2,
        TxKind::Msg => 3,
        TxKind::Workflow => 4,
    }
}

fn op_index(op: Op) -> usize {
    OPS.iter().position(|o| *o == op).unwrap_or(0)
}

pub(crate) fn outcome_index(o: &CallOutcome) -> usize {
    match o {
        CallOutcome::Success | CallOutcome::ReadOnly => 0,
        CallOutcome::Failure(_) => 1,
        CallOutcome::Ongoing => 2,
        CallOutcome::Error(_) => 3,
        CallOutcome::NotPrepared => 4,
    }
}

/// The engine's live counters (monotonic since open, except the gauges).
#[derive(Debug)]
pub struct EngineMetrics {
    started: [AtomicU64; KINDS.len()],
    /// `[kind][0 = succeeded, 1 = failed]`.
    finished: [[AtomicU64; 2]; KINDS.len()],
    parked_total: [AtomicU64; KINDS.len()],
    retries: AtomicU64,
    calls_total: AtomicU64,
    recovery: [AtomicU64; 4],
    heuristic: AtomicU64,
    /// `[op * 4 + outcome]`.
    calls: Vec<Histogram>,
    alerts: [AtomicU64; 3],
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            started: Default::default(),
            finished: Default::default(),
            parked_total: Default::default(),
            retries: AtomicU64::new(0),
            calls_total: AtomicU64::new(0),
            recovery: Default::default(),
            heuristic: AtomicU64::new(0),
            calls: (0..OPS.len() * CALL_OUTCOMES.len())
                .map(|_| Histogram::new(LATENCY_BOUNDS_NS))
                .collect(),
            alerts: Default::default(),
        }
    }
}

/// What the webhook sender did with an alert, as a metric label.
pub const ALERT_RESULTS: [&str; 3] = ["sent", "failed", "dropped"];

impl EngineMetrics {
    pub(crate) fn started(&self, k: TxKind) {
        self.started[kind_index(k)].fetch_add(1, Relaxed);
    }
    pub(crate) fn finished(&self, k: TxKind, status: TxStatus) {
        let o = usize::from(status != TxStatus::Succeeded);
        self.finished[kind_index(k)][o].fetch_add(1, Relaxed);
    }
    pub(crate) fn parked(&self, k: TxKind) {
        self.parked_total[kind_index(k)].fetch_add(1, Relaxed);
    }
    pub(crate) fn call(&self, op: Op, outcome: &CallOutcome, latency_us: u64) {
        let o = outcome_index(outcome);
        self.calls_total.fetch_add(1, Relaxed);
        if o == 2 || o == 3 {
            self.retries.fetch_add(1, Relaxed);
        }
        self.calls[op_index(op) * CALL_OUTCOMES.len() + o].observe(latency_us * 1000);
    }
    pub(crate) fn recovery(&self, action: RecoveryAction, n: u64) {
        self.recovery[action as usize].fetch_add(n, Relaxed);
    }
    /// A heuristic outcome was found: the log and a participant disagree (see
    /// `tandem_core::twopc` and `tandem_core::in_doubt`).
    pub(crate) fn heuristic(&self) {
        self.heuristic.fetch_add(1, Relaxed);
    }
    /// Counts an alert's fate (`ALERT_RESULTS[i]`).
    pub fn alert(&self, result: usize) {
        if let Some(c) = self.alerts.get(result) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Totals over every label (a few loads; no histogram is read).
    pub fn totals(&self) -> Totals {
        let sum = |a: &[AtomicU64]| a.iter().map(|c| c.load(Relaxed)).sum::<u64>();
        Totals {
            started: sum(&self.started),
            succeeded: self.finished.iter().map(|f| f[0].load(Relaxed)).sum(),
            failed: self.finished.iter().map(|f| f[1].load(Relaxed)).sum(),
            parked: sum(&self.parked_total),
            calls: self.calls_total.load(Relaxed),
            call_retries: self.retries.load(Relaxed),
            recovered: self.recovery[0].load(Relaxed),
        }
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &[AtomicU64]| a.iter().map(|c| c.load(Relaxed)).collect::<Vec<_>>();
        MetricsSnapshot {
            started: load(&self.started),
            finished: self.finished.iter().map(|f| load(f)).collect(),
            parked_total: load(&self.parked_total),
            retries: self.retries.load(Relaxed),
            recovery: load(&self.recovery),
            heuristic: self.heuristic.load(Relaxed),
            calls: self.calls.iter().map(Histogram::snapshot).collect(),
            alerts: load(&self.alerts),
        }
    }
}

/// [`EngineMetrics::totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub parked: u64,
    pub calls: u64,
    pub call_retries: u64,
    /// Unfinished transactions resumed from the log on open.
    pub recovered: u64,
}

/// A copy of [`EngineMetrics`] at one moment; vectors are indexed like [`KINDS`], [`OPS`],
/// [`CALL_OUTCOMES`], [`RECOVERY_ACTIONS`] and [`ALERT_RESULTS`].
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    pub started: Vec<u64>,
    /// `[kind][0 = succeeded, 1 = failed]`.
    pub finished: Vec<Vec<u64>>,
    pub parked_total: Vec<u64>,
    /// Calls that answered ongoing or could not tell (each leads to another attempt).
    pub retries: u64,
    pub recovery: Vec<u64>,
    /// Heuristic outcomes found (transactions parked as such, and in-doubt branches whose
    /// log disagrees), since open.
    pub heuristic: u64,
    /// `[op * CALL_OUTCOMES.len() + outcome]`, latencies in nanoseconds.
    pub calls: Vec<HistogramSnapshot>,
    pub alerts: Vec<u64>,
}
