//! In-doubt recovery: prepared transactions left on XA resources, resolved from the log.
//!
//! Drivers resolve what the log knows is unfinished. What they cannot see is a branch that
//! became prepared *after* the log stopped expecting it: a prepare that outlived its call
//! timeout (the engine rolled back a branch that was not prepared yet, then the prepare
//! landed), or a resource whose commit answer was lost in a way the log already closed. So
//! at open and every [`InDoubtConfig::interval`] the coordinator lists, on every registered
//! [`InDoubt`] resource, the prepared xids that carry its own prefix (`node_name:`), maps each
//! to `(gid, branch)` and decides:
//!
//! ```text
//!  gid driven right now ............................ leave it (the driver decides)
//!  2PC in the log, decision commit (submitted/succeeded) ... commit
//!  2PC in the log, anything else ........................... roll back (presumed abort)
//!  no record explains it, prepared longer than orphan_age .. roll back, reported
//!  no record explains it, younger .......................... leave it for now
//! ```
//!
//! Every action is logged at `warn` and counted in [`RecoveryStats`]. A failed listing or
//! resolution is counted and retried on the next pass, never in a tight loop.
//!
//! Xids are `node:gid:branch_id` ([`branch_xid`]); `node` and `branch_id` hold no `:`, so
//! the split back is unambiguous, and another coordinator's prefix never matches ours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tandem_core::{Op, TxKind, TxStatus};

use crate::coordinator::Shared;
use crate::participant::BranchError;

/// The xid the coordinator `node` gives branch `branch_id` of transaction `gid`.
pub fn branch_xid(node: &str, gid: &str, branch_id: &str) -> String {
    format!("{node}:{gid}:{branch_id}")
}

/// `(gid, branch_id)` of an xid made by [`branch_xid`] for `node`, else `None`.
pub fn parse_branch_xid<'a>(node: &str, xid: &'a str) -> Option<(&'a str, &'a str)> {
    let (owner, rest) = xid.split_once(':')?;
    if owner != node {
        return None;
    }
    let (gid, branch) = rest.rsplit_once(':')?;
    (!gid.is_empty() && !branch.is_empty()).then_some((gid, branch))
}

/// Whether `node` can prefix xids: non-empty, at most 32 bytes of `A-Z a-z 0-9 - _ .`.
pub(crate) fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 32
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

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
    /// The coordinator name this resource puts in front of its xids; must equal
    /// `EngineConfig::node_name` (checked when the coordinator starts).
    fn node(&self) -> &str;
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

enum Decision {
    Commit,
    Rollback(&'static str),
    Leave,
}

/// What the log says about branch `branch_id` of `gid`. The branch's target is not
/// compared with the resource that listed it: MySQL lists every database's branches, and
/// resolving by xid works from any of them.
async fn decide(
    shared: &Shared,
    set: &InDoubtSet,
    gid: &str,
    branch_id: &str,
    age: Duration,
) -> Result<Decision, BranchError> {
    if shared.registry.get(gid).is_some() {
        set.stats.left_active.fetch_add(1, Ordering::Relaxed);
        return Ok(Decision::Leave);
    }
    let tx = shared
        .store
        .get(gid)
        .await
        .map_err(|e| BranchError::Transient(e.to_string()))?;
    let explained = tx.as_ref().filter(|tx| {
        tx.kind == TxKind::TwoPc
            && tx
                .branches
                .iter()
                .any(|b| b.branch_id == branch_id && b.op == Op::Prepare)
    });
    Ok(match explained {
        Some(tx) if matches!(tx.status, TxStatus::Submitted | TxStatus::Succeeded) => {
            Decision::Commit
        }
        Some(_) => Decision::Rollback("the log has no commit decision (presumed abort)"),
        None if age >= set.config.orphan_age => {
            Decision::Rollback("no log record explains it (orphan)")
        }
        None => {
            set.stats.left_young.fetch_add(1, Ordering::Relaxed);
            Decision::Leave
        }
    })
}

/// One pass over every registered resource.
pub(crate) async fn pass(shared: &Shared, set: &InDoubtSet) {
    let _one = set.running.lock().await;
    set.stats.passes.fetch_add(1, Ordering::Relaxed);
    let node = shared.config.node_name.as_str();
    let prefix = format!("{node}:");
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
            let Some((gid, branch)) = parse_branch_xid(node, &p.xid) else {
                continue;
            };
            set.stats.listed.fetch_add(1, Ordering::Relaxed);
            let decision = match decide(shared, set, gid, branch, p.age).await {
                Ok(d) => d,
                Err(e) => {
                    set.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(xid = %p.xid, error = %e, "in-doubt recovery: cannot read the log");
                    continue;
                }
            };
            let (commit, why) = match decision {
                Decision::Leave => continue,
                Decision::Commit => (true, "the log holds the commit decision"),
                Decision::Rollback(why) => (false, why),
            };
            match tokio::time::timeout(timeout, r.resolve(&p.xid, commit)).await {
                Ok(Ok(())) => {
                    let counter = match (commit, why.contains("orphan")) {
                        (true, _) => &set.stats.committed,
                        (false, true) => &set.stats.orphans_rolled_back,
                        (false, false) => &set.stats.rolled_back,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // RECOVERY_ACTIONS: 1 = in_doubt_committed, 2 = in_doubt_rolled_back.
                    shared.metrics.recovery(if commit { 1 } else { 2 }, 1);
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
    let mut shutdown = shared.shutdown.clone();
    pass(&shared, &set).await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(set.config.interval) => pass(&shared, &set).await,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() != crate::driver::SHUTDOWN_RUN {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xids_round_trip_and_stay_ours() {
        let x = branch_xid("node1", "g:1-x", "02");
        assert_eq!(x, "node1:g:1-x:02");
        assert_eq!(parse_branch_xid("node1", &x), Some(("g:1-x", "02")));
        assert_eq!(parse_branch_xid("node", &x), None);
        assert_eq!(parse_branch_xid("node1", "node1:nobranch"), None);
        assert_eq!(parse_branch_xid("node1", "other-xid"), None);
        assert!(valid_node("tandem-1.a_b"));
        assert!(!valid_node("a:b"));
        assert!(!valid_node(""));
    }
}
