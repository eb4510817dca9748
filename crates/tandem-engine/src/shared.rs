//! What every part of the engine shares — the store, transport, clock, settings, the registry
//! of active transactions, metrics and alerts — and the coordinator's lifecycle [`Phase`].
//!
//! The phase is published on a watch channel so every driver and background task sees it
//! change at once:
//!
//! ```text
//!  Run ──close()──► Drain ──grace over──► Stop
//!   │                 │
//!   └─────────────────┴── a store write or sync failed ──► Failed   (final: fail-stop)
//! ```
//!
//! **Fail-stop.** After any store failure the page cache, and so what the log will hold after a
//! restart, is unknown: a decision the engine tried to write may or may not be on disk. From
//! then on nothing may act on what the process believes — no participant call, no in-doubt
//! resolution, no new transaction. [`Shared::fail`] moves to `Failed` (which no other phase
//! replaces); drivers leave at once, calls not yet sent are never sent, and every API call
//! answers [`EngineError::Failed`]. The server turns this into "not ready" and a non-zero
//! exit; the log is the truth on the next start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tandem_store::{Due, Store};
use tokio::sync::{broadcast, watch, Notify, Semaphore};

use crate::alert::ParkedAlert;
use crate::clock::{Clock, Rng};
use crate::config::EngineConfig;
use crate::coordinator::EndHook;
use crate::error::EngineError;
use crate::metrics::EngineMetrics;
use crate::registry::Registry;
use crate::transport::Transport;

/// Where the coordinator is in its life; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Serving.
    Run,
    /// Shutting down: calls in flight may finish (and be logged); nothing new starts.
    Drain,
    /// Shut down: drivers leave now; whatever is unfinished resumes from the log.
    Stop,
    /// The store failed: nothing is called, resolved or written any more.
    Failed,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn Rng>,
    pub(crate) config: EngineConfig,
    pub(crate) identity: tandem_core::Identity,
    pub(crate) registry: Registry,
    pub(crate) call_permits: Arc<Semaphore>,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) alerts: broadcast::Sender<ParkedAlert>,
    pub(crate) on_end: Option<EndHook>,
    phase: watch::Sender<Phase>,
    failure: Mutex<Option<String>>,
    /// Wakes the scheduler early (a transaction left memory due before its planned wake-up).
    pub(crate) scheduler: Notify,
    /// When the scheduler plans to look next (ms of the engine clock).
    pub(crate) scheduler_planned: AtomicU64,
}

/// The parts of [`Shared`] a builder supplies.
pub(crate) struct Parts {
    pub store: Arc<dyn Store>,
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    pub config: EngineConfig,
    pub identity: tandem_core::Identity,
    pub on_end: Option<EndHook>,
}

impl Shared {
    pub(crate) fn new(p: Parts) -> Shared {
        Shared {
            registry: Registry::new(p.config.active_max),
            call_permits: Arc::new(Semaphore::new(p.config.calls_in_flight_max)),
            metrics: Arc::new(EngineMetrics::default()),
            alerts: broadcast::channel(crate::alert::ALERTS_QUEUE_MAX).0,
            phase: watch::channel(Phase::Run).0,
            failure: Mutex::new(None),
            scheduler: Notify::new(),
            scheduler_planned: AtomicU64::new(u64::MAX),
            store: p.store,
            transport: p.transport,
            clock: p.clock,
            rng: p.rng,
            config: p.config,
            identity: p.identity,
            on_end: p.on_end,
        }
    }

    /// A transaction left memory, due at `due`: make sure the scheduler looks by then.
    pub(crate) fn scheduler_hint(&self, due: Due) {
        if let Due::Idle(Some(at)) = due {
            if self.scheduler_planned.fetch_min(at.0, Ordering::AcqRel) > at.0 {
                self.scheduler.notify_one();
            }
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    pub(crate) fn watch_phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Moves to `next` unless the coordinator already failed (`Failed` is final).
    pub(crate) fn set_phase(&self, next: Phase) {
        self.phase.send_if_modified(|p| {
            if *p == Phase::Failed || *p == next {
                return false;
            }
            *p = next;
            true
        });
    }

    /// Enters fail-stop (see the module doc); the first reason is kept.
    pub(crate) fn fail(&self, why: impl Into<String>) {
        let why = why.into();
        {
            let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_some() {
                return;
            }
            *f = Some(why.clone());
        }
        tracing::error!(reason = %why, "the log failed: fail-stop — no participant call, no in-doubt resolution and no new transaction from now on; restart to recover from the log");
        self.set_failed();
    }

    fn set_failed(&self) {
        self.phase.send_if_modified(|p| {
            if *p == Phase::Failed {
                return false;
            }
            *p = Phase::Failed;
            true
        });
    }

    /// Why the coordinator failed, if it did. Also notices a store that failed on its own
    /// (e.g. its background applier) before any driver's write did.
    pub(crate) fn failure(&self) -> Option<String> {
        if let Some(f) = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Some(f);
        }
        let why = self.store.failure()?;
        self.fail(why.clone());
        Some(why)
    }

    /// Whether participant calls and in-doubt resolutions may still be made.
    pub(crate) fn healthy(&self) -> bool {
        self.phase() != Phase::Failed && self.failure().is_none()
    }

    /// `Ok` while new work is accepted; otherwise why not.
    pub(crate) fn accepting(&self) -> Result<(), EngineError> {
        if let Some(why) = self.failure() {
            return Err(EngineError::Failed(why));
        }
        if !self.store.lease_valid() {
            return Err(EngineError::Unavailable(
                "the shared store is unreachable, or this node's lease on it lapsed; it resumes by itself when the store is back".into(),
            ));
        }
        match self.phase() {
            Phase::Run => Ok(()),
            Phase::Failed => Err(EngineError::Failed(String::new())),
            Phase::Drain | Phase::Stop => Err(EngineError::ShuttingDown),
        }
    }

    /// `Ok` unless the coordinator failed (reads stay possible while shutting down).
    pub(crate) fn check_failed(&self) -> Result<(), EngineError> {
        match self.failure() {
            Some(why) => Err(EngineError::Failed(why)),
            None => Ok(()),
        }
    }
}
