//! Retention: finished transactions (and their history) are deleted `retention` after they
//! ended, in bounded batches, so the store's size is flat at a steady load.
//!
//! Each pass deletes batches of [`PURGE_BATCH`] until fewer remain, pausing between batches
//! so that the write path never waits behind a long deletion. A gid deleted here is unknown
//! afterwards: a late duplicate submit of it starts a new transaction (see
//! docs/operations.md), so keep `retention` longer than any client's retry window.

use std::sync::Arc;
use std::time::Duration;

use crate::shared::{Phase, Shared};

/// Transactions deleted per store call.
pub(crate) const PURGE_BATCH: usize = 1000;
/// Time between passes.
const EVERY: Duration = Duration::from_secs(10);
/// Pause between two batches of one pass.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(retention) = shared.config.retention else {
        return;
    };
    let mut phase = shared.watch_phase();
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Run {
                    return;
                }
                continue;
            }
            _ = tokio::time::sleep(EVERY) => {}
        }
        if !shared.healthy() || !shared.store.lease_valid() {
            continue;
        }
        let before = shared
            .clock
            .now()
            .0
            .saturating_sub(retention.as_millis() as u64);
        loop {
            match shared
                .store
                .purge_finished(tandem_core::Timestamp(before), PURGE_BATCH)
                .await
            {
                Ok(n) if n == PURGE_BATCH => tokio::time::sleep(BETWEEN_BATCHES).await,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(purged = n, "retention deleted finished transactions");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention: cannot purge now; trying again later");
                    break;
                }
            }
        }
    }
}
