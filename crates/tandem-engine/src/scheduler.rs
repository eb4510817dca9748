//! The scheduler: brings transactions that wait in the store back into memory when they are
//! due, within `active_max`.
//!
//! ```text
//!  loop: claim_due(now, room) ──► a driver per transaction (Tick, or Resume for one a driver
//!        │                         held when it last stopped, or another node's)
//!        └─ sleep until the store's next due time, a driver's hint, or scheduler_poll
//! ```
//!
//! It holds nothing itself: the store's due index is the truth, so a restart or another node
//! finds the same work. A full registry (too much running) makes it wait for room instead of
//! loading more. While a shared store's lease is not valid it claims nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tandem_core::Event;

use crate::driver::Driver;
use crate::shared::{Phase, Shared};

/// How long the scheduler waits for room when the registry is full.
const FULL_BACKOFF: Duration = Duration::from_millis(50);

/// Claims and starts what is due until the coordinator stops.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut phase = shared.watch_phase();
    loop {
        if *phase.borrow() != Phase::Run {
            return;
        }
        let wait = if !shared.store.lease_valid() {
            shared.config.health_poll
        } else {
            match pass(&shared).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: cannot read the store; trying again");
                    shared.config.scheduler_poll
                }
            }
        };
        tokio::select! {
            biased;
            changed = phase.changed() => if changed.is_err() { return },
            _ = shared.scheduler.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One look: claims and starts what is due; returns how long to sleep.
async fn pass(shared: &Arc<Shared>) -> Result<Duration, tandem_store::StoreError> {
    let poll = shared.config.scheduler_poll;
    loop {
        let room = shared
            .config
            .active_max
            .saturating_sub(shared.registry.len());
        if room == 0 {
            return Ok(FULL_BACKOFF);
        }
        let limit = room.min(shared.config.claim_batch.max(1));
        let now = shared.clock.now();
        let epoch = shared.store.epoch();
        let due = shared.store.claim_due(now, limit, false).await?;
        let n = due.len();
        let mut started = 0;
        for c in due {
            let first = if c.resume { Event::Resume } else { Event::Tick };
            // Already driven here (an event loaded it meanwhile): nothing to do.
            let spawned = Driver::spawn(shared, c.tx, c.fence, epoch, first, false);
            started += usize::from(spawned.is_ok());
        }
        if n < limit || started == 0 {
            break;
        }
    }
    let now = shared.clock.now();
    let next = shared.store.next_due().await?;
    let wait = match next {
        Some(at) => Duration::from_millis(at.0.saturating_sub(now.0)).min(poll),
        None => poll,
    };
    let planned = now.0.saturating_add(wait.as_millis() as u64);
    shared.scheduler_planned.store(planned, Ordering::Release);
    Ok(wait)
}
