//! [`RedbStore`]: the embedded default store, a group-committed write-ahead log in front of a
//! redb table file.
//!
//! ```text
//!  write(rec, sync) ──► bounded queue ──► writer thread ──► wal/<lsn>.log  (one write_all,
//!                                           │                               one fdatasync)
//!                                           │ after the fsync: overlay insert, then ack
//!                                           ▼
//!                      reads ──► overlay ──► applier thread ──► tandem.redb (Durability::None;
//!                                 then redb                      Immediate at checkpoints)
//! ```
//!
//! Why this shape: a redb durable commit costs about twice an fdatasync of an append, so the
//! acknowledgement path is only the log. One writer thread owns the log file and batches
//! everything queued (up to `batch_records_max`) into one write and at most one fsync, so
//! durability costs one fsync per batch, not per record. Unsynced writes (`sync = false`)
//! do not use the queue: they wait in a side vector (`Lazy`) that the writer empties
//! into its next batch, so they cost neither a thread wake-up nor a system call.
//!
//! Invariants:
//! - a sync write is acknowledged only after the fsync that covers it returned;
//! - a record becomes visible (overlay) only after it is durable in the log, and leaves the
//!   overlay only after redb holds that version or a newer one; reads consult the overlay
//!   first, then redb, and take the newer;
//! - redb's `checkpoint_lsn` is durable only with every record up to it, so log segments
//!   wholly at or below it may be deleted, and recovery replays only what lies above it;
//! - after a failed log write or fsync the store refuses writes (fail-stop): the page cache
//!   state is unknown, and only a reopen (which replays the log) is safe.

mod apply;
mod read;
mod recover;
mod topics;
pub(crate) mod wal;
mod writer;

use crate::hist::{self, Histogram};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase};
use tandem_core::{Identity, Timestamp, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::{Claim, Claimed, ListQuery, Page, Record, Result, Store, StoreError, StoreStats};

pub use wal::RECORD_BODY_BYTES_MAX;

/// Durable batches queued for the applier (which drains them every few milliseconds); when
/// full, the writer waits (backpressure).
const APPLY_QUEUE_BATCHES: usize = 4096;

/// How a [`RedbStore`] batches, syncs and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedbConfig {
    /// fdatasync the log before acknowledging. `false` turns durability off (for comparison
    /// figures only: an acknowledged write may then be lost in a crash).
    pub fsync: bool,
    /// Most records in one log batch (one write, at most one fsync).
    pub batch_records_max: usize,
    /// Capacity of the write queue; a full queue makes `write` wait.
    pub queue_records_max: usize,
    /// Longest an unsynced write waits for a sync before the writer syncs anyway.
    pub lazy_flush_ms: u64,
    /// How often the applier makes redb durable and lets old log segments go.
    pub checkpoint_ms: u64,
    /// Also checkpoint once this many log bytes were applied since the last checkpoint.
    pub checkpoint_bytes: u64,
    /// Start a new log segment once the current one reaches this size.
    pub segment_bytes_max: u64,
    /// Most bytes of redb's page cache (memory does not grow with the table file: a million
    /// waiting or finished transactions are read from disk when needed).
    pub cache_bytes: usize,
}

impl Default for RedbConfig {
    fn default() -> Self {
        RedbConfig {
            fsync: true,
            batch_records_max: 2048,
            queue_records_max: 16_384,
            lazy_flush_ms: 5,
            checkpoint_ms: 1_000,
            checkpoint_bytes: 64 << 20,
            segment_bytes_max: 64 << 20,
            cache_bytes: 64 << 20,
        }
    }
}

impl RedbConfig {
    fn clamped(mut self) -> RedbConfig {
        self.batch_records_max = self.batch_records_max.clamp(1, 1 << 20);
        self.queue_records_max = self.queue_records_max.clamp(1, 1 << 24);
        self.lazy_flush_ms = self.lazy_flush_ms.max(1);
        self.checkpoint_ms = self.checkpoint_ms.max(1);
        self.checkpoint_bytes = self.checkpoint_bytes.max(1);
        self.segment_bytes_max = self.segment_bytes_max.max(4096);
        self.cache_bytes = self.cache_bytes.max(1 << 20);
        self
    }
}

/// What the writer is asked to do.
pub(crate) enum Req {
    /// `ack` is present for a sync write and answered after the fsync.
    Write {
        rec: Record,
        ack: Option<oneshot::Sender<Result<()>>>,
    },
    /// Make everything queued so far durable, then answer.
    Barrier(oneshot::Sender<Result<()>>),
    /// Unsynced writes wait in [`Lazy`] while the writer sleeps with nothing to sync: look.
    Nudge,
    /// Flush, stop taking requests, stop the applier after a durable commit, then answer.
    Stop(oneshot::Sender<Result<()>>),
}

/// Records durable in the log but maybe not yet in redb, newest version per gid.
pub(crate) type Overlay = HashMap<String, Arc<Record>>;

/// Unsynced writes (`sync = false`) on their way to the writer. They do not wake it: it
/// takes them with the next sync, or by its lazy-flush deadline. Only when the writer sleeps
/// with nothing to sync at all does the first of them wake it ([`Req::Nudge`]). An unsynced
/// write is thus one vector push under a lock, not a thread wake-up and a `write(2)`.
#[derive(Debug, Default)]
pub(crate) struct Lazy {
    pub recs: Vec<Record>,
    /// The writer is asleep with no deadline; whoever adds to `recs` must nudge it.
    pub writer_idle: bool,
    /// The writer has stopped; nothing added here would be written.
    pub closed: bool,
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub purged: AtomicU64,
    pub batches: AtomicU64,
    pub records: AtomicU64,
    pub syncs: AtomicU64,
    pub sync_nanos: AtomicU64,
    pub bytes: AtomicU64,
    pub batch_records: Histogram,
    pub fsync_ns: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            purged: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            records: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            sync_nanos: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            batch_records: Histogram::new(hist::SIZE_BOUNDS),
            fsync_ns: Histogram::new(hist::LATENCY_BOUNDS_NS),
        }
    }
}

/// State the store, the writer and the applier share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    overlay: Mutex<Overlay>,
    lazy: Mutex<Lazy>,
    failed: Mutex<Option<String>>,
    failed_flag: AtomicBool,
    pub counters: Counters,
}

impl Shared {
    pub fn overlay(&self) -> MutexGuard<'_, Overlay> {
        // Every overlay update is a single insert or remove, so a poisoned map is consistent.
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lazy(&self) -> MutexGuard<'_, Lazy> {
        // Every update is a push, a drain or a flag store: a poisoned value is consistent.
        self.lazy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters fail-stop; the first reason is kept.
    pub fn fail(&self, why: String) {
        tracing::error!(%why, "tandem-store: refusing writes from now on");
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert(why);
        self.failed_flag.store(true, Ordering::Release);
    }

    pub fn check_failed(&self) -> Result<()> {
        if !self.failed_flag.load(Ordering::Acquire) {
            return Ok(());
        }
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        Err(StoreError::Failed(failed.clone().unwrap_or_default()))
    }
}

pub(crate) fn redb_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Redb(e.to_string())
}

/// The embedded durable store. See the module doc for its design.
pub struct RedbStore {
    tx: Option<mpsc::Sender<Req>>,
    /// Most unsynced writes waiting in [`Lazy`]; past it they queue like sync writes.
    lazy_records_max: usize,
    shared: Arc<Shared>,
    db: Arc<Database>,
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (creating if needed) the store in `dir`, replaying the log into redb first.
    /// Blocking: call it before serving, or from `spawn_blocking`.
    pub fn open(dir: &Path, cfg: RedbConfig) -> Result<RedbStore> {
        let cfg = cfg.clamped();
        let wal_dir = dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let db = Database::builder()
            .set_cache_size(cfg.cache_bytes)
            .create(dir.join("tandem.redb"))
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(dir.to_path_buf()),
                e => redb_err(e),
            })?;
        let db = Arc::new(db);
        let next_lsn = recover::recover(&wal_dir, &db, cfg.fsync)?;
        let file = wal::create_segment(&wal_dir, next_lsn, cfg.fsync, cfg.segment_bytes_max)?;

        let shared = Arc::new(Shared::default());
        let lazy_records_max = cfg.queue_records_max;
        let (tx, rx) = mpsc::channel(cfg.queue_records_max);
        // A few batches in flight to the applier; a slow applier then slows the writer.
        let (apply_tx, apply_rx) = std::sync::mpsc::sync_channel(APPLY_QUEUE_BATCHES);
        let applier = apply::Applier::new(
            Arc::clone(&db),
            Arc::clone(&shared),
            apply_rx,
            wal_dir.clone(),
            &cfg,
            next_lsn - 1,
        );
        let writer = writer::Writer::new(
            rx,
            file,
            wal_dir,
            next_lsn,
            cfg,
            Arc::clone(&shared),
            apply_tx,
        );
        let applier = std::thread::Builder::new()
            .name("tandem-store-apply".into())
            .spawn(move || applier.run())?;
        let writer = match std::thread::Builder::new()
            .name("tandem-store-wal".into())
            .spawn(move || writer.run())
        {
            Ok(w) => w,
            Err(e) => {
                // The applier stops when its channel (moved into the dropped writer) closes.
                let _ = applier.join();
                return Err(e.into());
            }
        };
        Ok(RedbStore {
            tx: Some(tx),
            lazy_records_max,
            shared,
            db,
            closed: AtomicBool::new(false),
            threads: Mutex::new(vec![writer, applier]),
            dir: dir.to_path_buf(),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn sender(&self) -> Result<&mpsc::Sender<Req>> {
        self.check_open()?;
        self.shared.check_failed()?;
        self.tx.as_ref().ok_or(StoreError::Closed)
    }

    /// The error for a request the writer dropped without answering.
    fn gone(&self) -> StoreError {
        self.shared
            .check_failed()
            .err()
            .unwrap_or(StoreError::Closed)
    }

    fn join_threads(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            if t.join().is_err() {
                tracing::error!("tandem-store: a store thread panicked");
            }
        }
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn write(&self, rec: Record, sync: bool) -> Result<()> {
        wal::check_record(&rec)?;
        let tx = self.sender()?;
        if !sync {
            loop {
                {
                    let mut lazy = self.shared.lazy();
                    if lazy.closed {
                        return Err(self.gone());
                    }
                    if lazy.recs.len() < self.lazy_records_max {
                        lazy.recs.push(rec);
                        if std::mem::take(&mut lazy.writer_idle) {
                            drop(lazy);
                            // A full queue means the writer is awake and will look anyway.
                            let _ = tx.try_send(Req::Nudge);
                        }
                        return Ok(());
                    }
                }
                // Many unsynced writes at once: wait until the writer took them
                // (backpressure). Unsynced writes always go through `Lazy`, never the
                // queue, so that one gid's writes reach the log in the order they were made.
                self.flush().await?;
            }
        }
        let (ack, done) = oneshot::channel();
        tx.send(Req::Write {
            rec,
            ack: Some(ack),
        })
        .await
        .map_err(|_| self.gone())?;
        done.await.map_err(|_| self.gone())?
    }

    async fn get(&self, gid: &str) -> Result<Option<Transaction>> {
        self.check_open()?;
        read::get(&self.shared, &self.db, gid)
    }

    async fn list(&self, q: &ListQuery) -> Result<Page> {
        self.check_open()?;
        read::list(&self.shared, &self.db, q)
    }

    async fn claim(&self, gid: &str) -> Result<Claim> {
        self.check_open()?;
        read::claim(&self.shared, &self.db, gid)
    }

    async fn claim_due(&self, now: Timestamp, limit: usize, active: bool) -> Result<Vec<Claimed>> {
        self.check_open()?;
        read::claim_due(&self.shared, &self.db, now, limit, active)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        self.check_open()?;
        read::next_due(&self.shared, &self.db)
    }

    async fn counts(&self) -> Result<crate::Counts> {
        self.check_open()?;
        read::counts(&self.shared, &self.db)
    }

    async fn purge_finished(&self, before: Timestamp, limit: usize) -> Result<usize> {
        self.check_open()?;
        self.shared.check_failed()?;
        let db = Arc::clone(&self.db);
        let n = tokio::task::spawn_blocking(move || apply::purge(&db, before.0, limit))
            .await
            .map_err(|e| StoreError::Failed(format!("purge task: {e}")))??;
        self.shared
            .counters
            .purged
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    async fn topics(&self) -> Result<Vec<crate::Topic>> {
        self.check_open()?;
        let db = Arc::clone(&self.db);
        blocking(move || topics::all(&db)).await
    }

    async fn topic(&self, name: &str) -> Result<Option<crate::Topic>> {
        self.check_open()?;
        let (db, name) = (Arc::clone(&self.db), name.to_string());
        blocking(move || topics::get(&db, &name)).await
    }

    async fn put_topic(&self, topic: &crate::Topic, expected: u64) -> Result<bool> {
        self.check_open()?;
        self.shared.check_failed()?;
        let (db, topic) = (Arc::clone(&self.db), topic.clone());
        blocking(move || topics::put(&db, &topic, expected)).await
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        self.check_open()?;
        self.shared.check_failed()?;
        let (db, name) = (Arc::clone(&self.db), name.to_string());
        blocking(move || topics::delete(&db, &name)).await
    }

    async fn flush(&self) -> Result<()> {
        let tx = self.sender()?;
        let (ack, done) = oneshot::channel();
        tx.send(Req::Barrier(ack)).await.map_err(|_| self.gone())?;
        done.await.map_err(|_| self.gone())?
    }

    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let Some(tx) = self.tx.as_ref() else {
            return Ok(());
        };
        let (ack, done) = oneshot::channel();
        let result = match tx.send(Req::Stop(ack)).await {
            Ok(()) => done.await.unwrap_or_else(|_| Err(self.gone())),
            Err(_) => Err(self.gone()),
        };
        // Both threads are at their end once Stop is answered, so joining is quick.
        self.join_threads();
        result
    }

    async fn identity(&self) -> Result<Option<Identity>> {
        self.check_open()?;
        let rtx = self.db.begin_read().map_err(redb_err)?;
        let table = rtx.open_table(apply::IDENTITY).map_err(redb_err)?;
        let get = |k: &str| -> Result<Option<String>> {
            Ok(table
                .get(k)
                .map_err(redb_err)?
                .map(|v| v.value().to_string()))
        };
        let (Some(node), Some(inc)) = (get("node")?, get("incarnation")?) else {
            return Ok(None);
        };
        let bad = |what: String| StoreError::Corrupt(format!("stored identity: {what}"));
        let incarnation =
            u32::from_str_radix(&inc, 16).map_err(|_| bad(format!("incarnation {inc:?}")))?;
        Identity::new(node, incarnation)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    async fn init_identity(&self, id: Identity) -> Result<Identity> {
        if let Some(held) = self.identity().await? {
            return Ok(held);
        }
        self.shared.check_failed()?;
        let mut wtx = self.db.begin_write().map_err(redb_err)?;
        wtx.set_durability(Durability::Immediate)
            .map_err(redb_err)?;
        {
            let mut t = wtx.open_table(apply::IDENTITY).map_err(redb_err)?;
            t.insert("node", id.node.as_str()).map_err(redb_err)?;
            t.insert("incarnation", format!("{:08x}", id.incarnation).as_str())
                .map_err(redb_err)?;
        }
        wtx.commit().map_err(redb_err)?;
        Ok(id)
    }

    fn failure(&self) -> Option<String> {
        match self.shared.check_failed() {
            Err(StoreError::Failed(why)) => Some(why),
            _ => None,
        }
    }

    fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        StoreStats {
            purged: c.purged.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            sync_nanos: c.sync_nanos.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    fn log_histograms(&self) -> Option<crate::LogHistograms> {
        let c = &self.shared.counters;
        Some(crate::LogHistograms {
            batch_records: c.batch_records.snapshot(),
            fsync_ns: c.fsync_ns.snapshot(),
        })
    }
}

/// Runs a redb call (which may wait for the applier's write transaction) off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}

impl Drop for RedbStore {
    /// Best effort without `close`: dropping the queue's sender makes the writer drain and
    /// sync what is queued, and the applier make a final durable commit; both are joined so
    /// the directory can be reopened at once.
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        drop(self.tx.take());
        self.join_threads();
    }
}
