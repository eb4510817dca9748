//! An in-memory [`Store`]: the reference model the conformance suite measures every durable
//! backend against, and the `--durability off` backend for comparisons.
//!
//! It owns one map, gid → newest [`Record`], behind a mutex (and one of topics by name). A write is "durable" the moment
//! it is in the map, so `sync` makes no difference and reads see every acknowledged write.
//! Invariants: the map holds, per gid, the record with the highest `version` ever written
//! (an older version written later is ignored); after [`Store::close`] every call answers
//! [`StoreError::Closed`]. Nothing survives the process, by design.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tandem_core::{Identity, Timestamp, Transaction};

use crate::{
    Claim, Claimed, Counts, Due, ListQuery, Page, Record, Result, Store, StoreError, StoreStats,
};

/// A [`Store`] that keeps everything in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Record>>,
    topics: Mutex<std::collections::BTreeMap<String, crate::Topic>>,
    closed: AtomicBool,
    records: AtomicU64,
    bytes: AtomicU64,
    purged: AtomicU64,
    identity: Mutex<Option<Identity>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn map(&self) -> Result<MutexGuard<'_, HashMap<String, Record>>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        // A poisoned lock means a panic while holding it; the map is still consistent
        // (every update is a single insert), so keep serving.
        Ok(self.map.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl MemoryStore {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn topics_map(&self) -> MutexGuard<'_, std::collections::BTreeMap<String, crate::Topic>> {
        // Every update is one insert or remove: a poisoned map is consistent.
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn write(&self, rec: Record, _sync: bool) -> Result<()> {
        let mut map = self.map()?;
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(rec.body.len() as u64, Ordering::Relaxed);
        match map.get(&rec.gid) {
            Some(old) if old.version > rec.version => {}
            _ => {
                map.insert(rec.gid.clone(), rec);
            }
        }
        Ok(())
    }

    async fn get(&self, gid: &str) -> Result<Option<Transaction>> {
        let rec = self.map()?.get(gid).cloned();
        rec.map(|r| r.decode()).transpose()
    }

    async fn list(&self, q: &ListQuery) -> Result<Page> {
        let plan = crate::query::Plan::new(q)?;
        let mut hits: Vec<Record> = self
            .map()?
            .values()
            .filter(|r| plan.matches_record(r))
            .cloned()
            .collect();
        hits.sort_by(crate::query::newest_first);
        plan.page(hits.into_iter())
    }

    async fn claim(&self, gid: &str) -> Result<Claim> {
        let rec = self.map()?.get(gid).cloned();
        Ok(match rec {
            None => Claim::Missing,
            Some(r) => Claim::Got(Box::new(Claimed {
                resume: !r.is_final() && r.due == Due::Active,
                tx: r.decode()?,
                fence: r.fence,
            })),
        })
    }

    async fn claim_due(&self, now: Timestamp, limit: usize, active: bool) -> Result<Vec<Claimed>> {
        let mut due: Vec<Record> = self
            .map()?
            .values()
            .filter(|r| !r.is_final())
            .filter(|r| match r.due {
                Due::Active => active,
                d => d.key() <= now.0,
            })
            .cloned()
            .collect();
        due.sort_by(|a, b| (a.due.key(), &a.gid).cmp(&(b.due.key(), &b.gid)));
        due.truncate(limit);
        due.iter()
            .map(|r| {
                Ok(Claimed {
                    resume: r.due == Due::Active,
                    tx: r.decode()?,
                    fence: r.fence,
                })
            })
            .collect()
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        Ok(self
            .map()?
            .values()
            .filter(|r| !r.is_final())
            .filter_map(|r| match r.due {
                Due::Idle(Some(t)) => Some(t),
                _ => None,
            })
            .min())
    }

    async fn counts(&self) -> Result<Counts> {
        let map = self.map()?;
        let open = map.values().filter(|r| !r.is_final());
        let (mut unfinished, mut parked) = (0, 0);
        for r in open {
            unfinished += 1;
            parked += u64::from(r.parked);
        }
        Ok(Counts { unfinished, parked })
    }

    async fn purge_finished(&self, before: Timestamp, limit: usize) -> Result<usize> {
        let mut map = self.map()?;
        let old: Vec<String> = map
            .values()
            .filter(|r| r.finished_at.is_some_and(|f| f < before))
            .map(|r| r.gid.clone())
            .take(limit)
            .collect();
        for gid in &old {
            map.remove(gid);
        }
        self.purged.fetch_add(old.len() as u64, Ordering::Relaxed);
        Ok(old.len())
    }

    async fn flush(&self) -> Result<()> {
        self.map().map(|_| ())
    }

    async fn topics(&self) -> Result<Vec<crate::Topic>> {
        self.check_open()?;
        Ok(self.topics_map().values().cloned().collect())
    }

    async fn topic(&self, name: &str) -> Result<Option<crate::Topic>> {
        self.check_open()?;
        Ok(self.topics_map().get(name).cloned())
    }

    async fn put_topic(&self, topic: &crate::Topic, expected: u64) -> Result<bool> {
        self.check_open()?;
        topic.check()?;
        let mut topics = self.topics_map();
        let stored = topics.get(&topic.name).map_or(0, |t| t.version);
        if stored != expected {
            return Ok(false);
        }
        if stored == 0 && topics.len() >= crate::topic::TOPICS_MAX {
            return Err(StoreError::Full(format!(
                "{} topics, the most a store keeps",
                crate::topic::TOPICS_MAX
            )));
        }
        topics.insert(topic.name.clone(), topic.clone());
        Ok(true)
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        self.check_open()?;
        Ok(self.topics_map().remove(name).is_some())
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    async fn identity(&self) -> Result<Option<Identity>> {
        drop(self.map()?);
        Ok(self
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn init_identity(&self, id: Identity) -> Result<Identity> {
        drop(self.map()?);
        let mut held = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        Ok(held.get_or_insert(id).clone())
    }

    fn stats(&self) -> StoreStats {
        let records = self.records.load(Ordering::Relaxed);
        StoreStats {
            purged: self.purged.load(Ordering::Relaxed),
            batches: records,
            records,
            syncs: 0,
            sync_nanos: 0,
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}
