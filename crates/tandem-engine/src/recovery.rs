//! In-doubt recovery: prepared transactions left on XA resources, resolved from the log.
//!
//! Drivers resolve what the log knows is unfinished. What they cannot see is a branch that
//! became prepared *after* the log stopped expecting it: a prepare that outlived its call
//! timeout (the engine rolled back a branch that was not prepared yet, then the prepare
//! landed), or a crash that lost the unforced record of a transaction whose participants can
//! be listed. So at open and every [`InDoubtConfig::interval`] the coordinator lists, on every
//! registered [`InDoubt`] resource, the prepared xids that carry its own identity's prefix
//! (`node:incarnation:`), and asks `tandem_core::in_doubt::verdict` what to do with each — the
//! table is there, with the rule that only proof decides: a rollback needs the log to show the
//! abort or (healthy, and covering this incarnation) to have no record of that attempt at all.
//!
//! Nothing is resolved while the coordinator is not healthy (its log failed: fail-stop); the
//! check is repeated right before every resolution. Every action is logged at `warn`, counted
//! in [`RecoveryStats`] and in `/metrics`; a heuristic verdict (the log and a database
//! disagree) is logged at `error`, counted as a heuristic outcome and alerted, and the branch
//! is left as it is for a human. A failed listing or resolution is counted and retried on the
//! next pass, never in a tight loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tandem_core::in_doubt::{self, Facts, LogState, RollbackWhy, Verdict};
use tandem_core::Xid;

use crate::metrics::RecoveryAction;
use crate::participant::BranchError;
use crate::shared::{Phase, Shared};

/// One prepared transaction a resource reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDoubtXact {
    pub xid: String,
    /// How long it has been prepared (or, where the database does not say, known to us).
    pub age: Duration,
}

/// A resource whose prepared transactions can be listed and resolved by xid.
#[async_trait]
pub trait InDoubt: Send + Sync + 'static {
    /// Prepared transactions whose xid starts with `prefix` (bounded by the resource).
    async fn list_prepared(&self, prefix: &str) -> Result<Vec<InDoubtXact>, BranchError>;
    /// Commits (`commit`) or rolls back the prepared transaction `xid`; idempotent.
    async fn resolve(&self, xid: &str, commit: bool) -> Result<(), BranchError>;
}

/// When in-doubt recovery runs and what counts as an orphan.
#[derive(Debug, Clone)]
pub struct InDoubtConfig {
    /// Time between passes (the first runs when the coordinator opens).
    pub interval: Duration,
    /// A prepared transaction of ours that no log record explains is rolled back only once
    /// it is at least this old (a younger one may belong to a transaction just starting).
    pub orphan_age: Duration,
    /// Per listing or resolution call.
    pub call_timeout: Duration,
}

impl Default for InDoubtConfig {
    fn default() -> Self {
        InDoubtConfig {
            interval: Duration::from_secs(60),
            orphan_age: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    passes: AtomicU64,
    listed: AtomicU64,
    committed: AtomicU64,
    rolled_back: AtomicU64,
    orphans_rolled_back: AtomicU64,
    left_active: AtomicU64,
    left_young: AtomicU64,
    errors: AtomicU64,
    heuristic: AtomicU64,
}

/// What in-doubt recovery did since open (monotonic counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    pub passes: u64,
    /// Prepared xids of ours found, over all passes.
    pub listed: u64,
    /// Committed because the log holds the commit decision.
    pub committed: u64,
    /// Rolled back because the log says the transaction did not commit.
    pub rolled_back: u64,
    /// Rolled back because no log record explains them (older than `orphan_age`).
    pub orphans_rolled_back: u64,
    /// Left to the live driver of their transaction.
    pub left_active: u64,
    /// Unexplained but younger than `orphan_age`: left for a later pass.
    pub left_young: u64,
    /// Listings or resolutions that failed (retried on the next pass).
    pub errors: u64,
    /// Branches whose log record contradicts them (left for a human, alerted).
    pub heuristic: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RecoveryStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RecoveryStats {
            passes: l(&self.passes),
            listed: l(&self.listed),
            committed: l(&self.committed),
            rolled_back: l(&self.rolled_back),
            orphans_rolled_back: l(&self.orphans_rolled_back),
            left_active: l(&self.left_active),
            left_young: l(&self.left_young),
            errors: l(&self.errors),
            heuristic: l(&self.heuristic),
        }
    }
}

/// The registered resources, the settings and the counters.
pub(crate) struct InDoubtSet {
    pub(crate) resources: Vec<(String, Arc<dyn InDoubt>)>,
    pub(crate) config: InDoubtConfig,
    pub(crate) stats: Counters,
    /// One pass at a time (the periodic task and an explicit call may overlap).
    pub(crate) running: tokio::sync::Mutex<()>,
}

/// What the log says about `gid`, as the verdict needs it.
async fn log_state(
    shared: &Shared,
    gid: &str,
) -> Result<Option<tandem_core::Transaction>, BranchError> {
    shared
        .store
        .get(gid)
        .await
        .map_err(|e| BranchError::Transient(e.to_string()))
}

/// One pass over every registered resource.
pub(crate) async fn pass(shared: &Shared, set: &InDoubtSet) {
    let _one = set.running.lock().await;
    if !shared.healthy() || !shared.store.lease_valid() {
        return;
    }
    set.stats.passes.fetch_add(1, Ordering::Relaxed);
    let identity = &shared.identity;
    let prefix = identity.xid_prefix();
    let timeout = set.config.call_timeout;
    for (name, r) in &set.resources {
        let listed = match tokio::time::timeout(timeout, r.list_prepared(&prefix)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                set.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(resource = %name, error = %e, "in-doubt recovery: listing failed; retried next pass");
                continue;
            }
            Err(_) => {
                set.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(resource = %name, "in-doubt recovery: listing timed out; retried next pass");
                continue;
            }
        };
        for p in listed {
            let Some(xid) = Xid::parse(&p.xid) else {
                continue;
            };
            if !xid.is_of(identity) {
                continue;
            }
            set.stats.listed.fetch_add(1, Ordering::Relaxed);
            let record = if shared.registry.get(xid.gid).is_some() {
                None
            } else {
                match log_state(shared, xid.gid).await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        set.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(xid = %p.xid, error = %e, "in-doubt recovery: cannot read the log");
                        continue;
                    }
                }
            };
            let log = match &record {
                None => LogState::Driving,
                Some(None) => LogState::Absent,
                Some(Some(tx)) => LogState::Record(tx),
            };
            let verdict = in_doubt::verdict(&Facts {
                xid: &xid,
                listed_by: name,
                age_ms: p.age.as_millis() as u64,
                orphan_age_ms: set.config.orphan_age.as_millis() as u64,
                log,
                log_healthy: shared.healthy() && shared.store.lease_valid(),
                log_covers: true,
            });
            let (commit, action) = match verdict {
                Verdict::Leave(why) => {
                    let counter = match why {
                        in_doubt::LeaveWhy::Driving => Some(&set.stats.left_active),
                        in_doubt::LeaveWhy::Young => Some(&set.stats.left_young),
                        _ => None,
                    };
                    if let Some(c) = counter {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                Verdict::Heuristic(why) => {
                    set.stats.heuristic.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.heuristic();
                    tracing::error!(resource = %name, xid = %p.xid, %why, "HEURISTIC OUTCOME: a prepared branch contradicts the log; left for an operator");
                    let _ = shared.alerts.send(crate::alert::ParkedAlert {
                        gid: xid.gid.to_string(),
                        kind: tandem_core::TxKind::TwoPc,
                        status: record
                            .as_ref()
                            .and_then(|r| r.as_ref())
                            .map_or(tandem_core::TxStatus::Prepared, |t| t.status),
                        reason: format!("heuristic outcome: {why} (xid {} on {name})", p.xid),
                        heuristic: true,
                        at: shared.clock.now(),
                    });
                    continue;
                }
                Verdict::Commit => (true, RecoveryAction::InDoubtCommitted),
                Verdict::Rollback(RollbackWhy::LogAborted) => {
                    (false, RecoveryAction::InDoubtRolledBack)
                }
                Verdict::Rollback(_) => (false, RecoveryAction::InDoubtOrphanRolledBack),
            };
            let why = match verdict {
                Verdict::Rollback(w) => w.as_str(),
                _ => "the log holds the commit decision",
            };
            // The log may have failed since the verdict was reached: then nothing is proof.
            if !shared.healthy() || !shared.store.lease_valid() {
                return;
            }
            match tokio::time::timeout(timeout, r.resolve(&p.xid, commit)).await {
                Ok(Ok(())) => {
                    let counter = match action {
                        RecoveryAction::InDoubtCommitted => &set.stats.committed,
                        RecoveryAction::InDoubtRolledBack => &set.stats.rolled_back,
                        _ => &set.stats.orphans_rolled_back,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.recovery(action, 1);
                    tracing::warn!(resource = %name, xid = %p.xid, age_s = p.age.as_secs(),
                        action = if commit { "commit" } else { "rollback" }, reason = why,
                        "in-doubt recovery resolved a prepared transaction");
                }
                Ok(Err(e)) => {
                    set.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(resource = %name, xid = %p.xid, error = %e, "in-doubt recovery: resolution failed; retried next pass");
                }
                Err(_) => {
                    set.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(resource = %name, xid = %p.xid, "in-doubt recovery: resolution timed out; retried next pass");
                }
            }
        }
    }
}

/// Runs a pass now and then every `interval` until the coordinator shuts down.
pub(crate) async fn periodic(shared: Arc<Shared>, set: Arc<InDoubtSet>) {
    let mut phase = shared.watch_phase();
    pass(&shared, &set).await;
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Run {
                    return;
                }
            }
            _ = tokio::time::sleep(set.config.interval) => pass(&shared, &set).await,
        }
    }
}
