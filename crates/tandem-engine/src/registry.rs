//! The transactions this process is driving right now, by gid.
//!
//! Each active transaction has exactly one driver task; the registry maps its gid to the
//! task's inbox so that client requests (TCC register/submit, operator retry/stop, waiting
//! for an outcome) reach it. Sharded so that thousands of short sagas per second do not all
//! queue on one lock. Its size is bounded by `EngineConfig::active_max`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tandem_core::{ApplyError, Event};
use tokio::sync::{mpsc, oneshot};

use crate::outcome::Outcome;

/// A request to an active transaction's driver, sent to the inbox the registry holds.
pub(crate) enum Control {
    /// Apply `event`; reply once its commands ran (its sync persist is durable).
    Event {
        event: Event,
        reply: oneshot::Sender<Result<(), ApplyError>>,
    },
    /// Reply when the transaction ends or is parked (at once if it already is parked).
    Wait(oneshot::Sender<Outcome>),
}

/// Capacity of a driver's inbox.
pub(crate) const INBOX_MAX: usize = 64;

const SHARDS: usize = 32;

pub(crate) struct Registry {
    shards: Vec<Mutex<HashMap<Arc<str>, mpsc::Sender<Control>>>>,
    len: AtomicUsize,
    max: usize,
}

pub(crate) enum Claim {
    Claimed,
    Active,
    Full { active: usize, limit: usize },
}

impl Registry {
    pub(crate) fn new(max: usize) -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            max,
        }
    }

    fn shard(&self, gid: &str) -> MutexGuard<'_, HashMap<Arc<str>, mpsc::Sender<Control>>> {
        let mut h: usize = 5381;
        for b in gid.bytes() {
            h = h.wrapping_mul(33) ^ usize::from(b);
        }
        // A poisoned shard only means a panic elsewhere while holding it; the map is intact.
        self.shards[h % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `gid` with `inbox` unless it is already active or the registry is full.
    /// `force` ignores the limit (recovery must load every unfinished transaction).
    pub(crate) fn claim(
        &self,
        gid: &Arc<str>,
        inbox: &mpsc::Sender<Control>,
        force: bool,
    ) -> Claim {
        let mut shard = self.shard(gid);
        if shard.contains_key(gid) {
            return Claim::Active;
        }
        let active = self.len.load(Ordering::Relaxed);
        if !force && active >= self.max {
            return Claim::Full {
                active,
                limit: self.max,
            };
        }
        shard.insert(gid.clone(), inbox.clone());
        self.len.fetch_add(1, Ordering::Relaxed);
        Claim::Claimed
    }

    pub(crate) fn get(&self, gid: &str) -> Option<mpsc::Sender<Control>> {
        self.shard(gid).get(gid).cloned()
    }

    pub(crate) fn remove(&self, gid: &str) {
        if self.shard(gid).remove(gid).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}
