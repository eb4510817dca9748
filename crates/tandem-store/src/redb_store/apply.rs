//! The redb side: table layout, upserting records (shared with recovery), and the applier
//! thread that moves durable log batches into redb and checkpoints.
//!
//! Tables:
//! - `tx`: gid → value ([`wal::encode_value`]: indexed fields + body), the newest version;
//! - `due`: due key (u64 BE, `Due::key`: 0 = held by a driver, MAX = no timer) ++ gid → (), for
//!   every transaction whose newest version is not final — the scheduler's index;
//! - `finished`: finished ms (u64 BE) ++ gid → (), for every final one — retention's index;
//! - `by_created`: created ms (u64 BE) ++ gid → (), so a reverse range scan lists newest first;
//! - `meta`: `"format_version"`, `"checkpoint_lsn"`, `"unfinished"` (how many `due` holds) and
//!   `"parked"` (how many of those are parked);
//! - `identity`: the coordinator this store belongs to (written once, at its first start).
//!
//! Invariants: an upsert never replaces a version with an older one (so replays are
//! harmless), and `due`/`finished`/`by_created` and the counts always agree with `tx`. The applier commits with
//! `Durability::None` (cheap: the log already holds the records) and, every `checkpoint_ms` or
//! `checkpoint_bytes`, commits `checkpoint_lsn` with `Durability::Immediate`, which makes every
//! earlier commit durable too; only then are log segments wholly at or below it deleted.
//! Overlay entries are removed after the commit that made redb hold their version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::{redb_err, wal, RedbConfig, Shared};
use crate::{Record, Result, StoreError};

pub(crate) const TX: TableDefinition<&str, &[u8]> = TableDefinition::new("tx");
/// Format 1's index of unfinished gids; read once to migrate, then deleted.
pub(crate) const OPEN: TableDefinition<&str, ()> = TableDefinition::new("open");
pub(crate) const DUE: TableDefinition<&[u8], ()> = TableDefinition::new("due");
pub(crate) const FINISHED: TableDefinition<&[u8], ()> = TableDefinition::new("finished");
pub(crate) const BY_CREATED: TableDefinition<&[u8], ()> = TableDefinition::new("by_created");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `"node"` → the node name, `"incarnation"` → its random incarnation (8 hex digits).
pub(crate) const IDENTITY: TableDefinition<&str, &str> = TableDefinition::new("identity");
/// The layout of the tables above; format 1 is migrated on open, a newer one refused.
pub(crate) const TABLES_FORMAT: u64 = 2;

/// Most distinct transactions the applier holds before putting them in redb.
const APPLY_RECORDS_MAX: usize = 32_768;
/// How long the applier gathers records before putting them in redb. Most transactions
/// are written several times within this window and end in it, so gathering (newest
/// version per gid) turns several b-tree upserts, and the `open` insert and delete, into
/// one insert. The overlay serves reads meanwhile.
const APPLY_EVERY: Duration = Duration::from_millis(5);
/// How long an unfinished transaction's newest record waits for a newer one before it is
/// applied anyway. Most transactions end well within it, and are then applied once.
const UNFINISHED_HOLD: Duration = Duration::from_millis(500);
/// Overlay entries removed per lock acquisition after an apply.
const OVERLAY_CHUNK: usize = 64;

/// `ms` (u64 BE) ++ `gid`: the key of the `by_created`, `due` and `finished` indexes.
pub(crate) fn created_key(created_ms: u64, gid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + gid.len());
    k.extend_from_slice(&created_ms.to_be_bytes());
    k.extend_from_slice(gid.as_bytes());
    k
}

/// The `(ms, gid)` of an index key.
pub(crate) fn split_key(key: &[u8]) -> Option<(u64, &str)> {
    if key.len() < 8 {
        return None;
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&key[..8]);
    Some((u64::from_be_bytes(ms), std::str::from_utf8(&key[8..]).ok()?))
}

/// Adds `delta` to the count `key` (`"unfinished"`, `"parked"`) in `meta`.
pub(crate) fn add_count(wtx: &WriteTransaction, key: &str, delta: i64) -> Result<()> {
    if delta == 0 {
        return Ok(());
    }
    let mut meta = wtx.open_table(META).map_err(redb_err)?;
    let n = meta.get(key).map_err(redb_err)?.map_or(0, |v| v.value());
    let n = n.saturating_add_signed(delta);
    meta.insert(key, n).map_err(redb_err)?;
    Ok(())
}

/// Upserts `recs` (newest version per gid wins, and never below what `tx` holds) in `wtx`.
/// Returns, per gid touched, the version redb holds afterwards.
pub(crate) fn upsert<'a>(
    wtx: &WriteTransaction,
    recs: impl IntoIterator<Item = &'a Record>,
) -> Result<Vec<(&'a str, u64)>> {
    let mut newest: HashMap<&'a str, &'a Record> = HashMap::new();
    for rec in recs {
        match newest.get(rec.gid.as_str()) {
            Some(old) if old.version >= rec.version => {}
            _ => {
                newest.insert(rec.gid.as_str(), rec);
            }
        }
    }
    let mut tx = wtx.open_table(TX).map_err(redb_err)?;
    let mut due = wtx.open_table(DUE).map_err(redb_err)?;
    let mut finished = wtx.open_table(FINISHED).map_err(redb_err)?;
    let mut by_created = wtx.open_table(BY_CREATED).map_err(redb_err)?;
    let mut unfinished_delta = 0i64;
    let mut parked_delta = 0i64;
    // Key order keeps consecutive inserts on neighbouring b-tree pages.
    let mut newest: Vec<(&'a str, &'a Record)> = newest.into_iter().collect();
    newest.sort_unstable_by_key(|(gid, _)| *gid);
    let mut held = Vec::with_capacity(newest.len());
    for (gid, rec) in newest {
        // One descent: insert, and look at what it replaced.
        let value = wal::encode_value(rec);
        let old = match tx.insert(gid, value.as_slice()).map_err(redb_err)? {
            Some(v) => {
                let bytes = v.value().to_vec();
                let head = wal::decode_value_head(gid, &bytes)?;
                Some((head, bytes))
            }
            None => None,
        };
        if let Some((old_head, old_bytes)) = &old {
            if old_head.version >= rec.version {
                // A replay of something older than what redb holds: put it back.
                tx.insert(gid, old_bytes.as_slice()).map_err(redb_err)?;
                held.push((gid, old_head.version));
                continue;
            }
            if old_head.created_ms != rec.created_at.0 {
                by_created
                    .remove(created_key(old_head.created_ms, gid).as_slice())
                    .map_err(redb_err)?;
            }
            if old_head.final_ {
                if let Some(f) = old_head.finished_ms {
                    finished
                        .remove(created_key(f, gid).as_slice())
                        .map_err(redb_err)?;
                }
            } else {
                due.remove(created_key(old_head.due_key, gid).as_slice())
                    .map_err(redb_err)?;
                unfinished_delta -= 1;
                parked_delta -= i64::from(old_head.parked);
            }
        }
        if old
            .as_ref()
            .is_none_or(|(h, _)| h.created_ms != rec.created_at.0)
        {
            by_created
                .insert(created_key(rec.created_at.0, gid).as_slice(), ())
                .map_err(redb_err)?;
        }
        if rec.is_final() {
            if let Some(f) = rec.finished_at {
                finished
                    .insert(created_key(f.0, gid).as_slice(), ())
                    .map_err(redb_err)?;
            }
        } else {
            due.insert(created_key(rec.due.key(), gid).as_slice(), ())
                .map_err(redb_err)?;
            unfinished_delta += 1;
            parked_delta += i64::from(rec.parked);
        }
        held.push((gid, rec.version));
    }
    drop((tx, due, finished, by_created));
    add_count(wtx, "unfinished", unfinished_delta)?;
    add_count(wtx, "parked", parked_delta)?;
    Ok(held)
}

/// Deletes up to `limit` final transactions that finished before `before_ms` (one redb
/// transaction, made durable by the next checkpoint; lost in a crash before it, it is simply
/// done again). Returns how many it deleted.
pub(crate) fn purge(db: &Database, before_ms: u64, limit: usize) -> Result<usize> {
    let mut wtx = db.begin_write().map_err(redb_err)?;
    wtx.set_durability(Durability::None).map_err(redb_err)?;
    let n = {
        let mut tx = wtx.open_table(TX).map_err(redb_err)?;
        let mut finished = wtx.open_table(FINISHED).map_err(redb_err)?;
        let mut by_created = wtx.open_table(BY_CREATED).map_err(redb_err)?;
        let upper = before_ms.to_be_bytes();
        let mut old: Vec<Vec<u8>> = Vec::new();
        for entry in finished
            .range::<&[u8]>(..upper.as_slice())
            .map_err(redb_err)?
            .take(limit)
        {
            old.push(entry.map_err(redb_err)?.0.value().to_vec());
        }
        for key in &old {
            finished.remove(key.as_slice()).map_err(redb_err)?;
            let Some((_, gid)) = split_key(key) else {
                continue;
            };
            let removed = tx.remove(gid).map_err(redb_err)?;
            if let Some(v) = removed {
                let head = wal::decode_value_head(gid, v.value())?;
                by_created
                    .remove(created_key(head.created_ms, gid).as_slice())
                    .map_err(redb_err)?;
            }
        }
        old.len()
    };
    wtx.commit().map_err(redb_err)?;
    Ok(n)
}

/// Durably records that everything up to `lsn` is in redb.
pub(crate) fn commit_checkpoint(db: &Database, lsn: u64) -> Result<()> {
    fail::fail_point!("store-before-checkpoint", |_| Err(StoreError::Redb(
        "failpoint store-before-checkpoint".into()
    )));
    let mut wtx = db.begin_write().map_err(redb_err)?;
    wtx.set_durability(Durability::Immediate)
        .map_err(redb_err)?;
    wtx.open_table(META)
        .map_err(redb_err)?
        .insert("checkpoint_lsn", lsn)
        .map_err(redb_err)?;
    wtx.commit().map_err(redb_err)
}

/// Deletes log segments whose records all lie at or below `lsn`; never the newest one.
pub(crate) fn delete_segments_through(wal_dir: &std::path::Path, lsn: u64) -> Result<()> {
    let segments = wal::list_segments(wal_dir)?;
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first <= lsn.saturating_add(1) {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Records received from the writer and not yet in redb, newest version per gid. Final
/// records are applied at the next tick; unfinished ones are held (up to
/// [`UNFINISHED_HOLD`]) since a newer version usually follows, so each short transaction
/// costs redb one upsert instead of one per record.
#[derive(Default)]
struct Pending {
    finals: HashMap<String, Arc<Record>>,
    unfinished: HashMap<String, Arc<Record>>,
    /// Arrival order of unfinished gids, for the hold timeout (may hold stale entries).
    arrivals: std::collections::VecDeque<(Instant, String)>,
}

impl Pending {
    fn len(&self) -> usize {
        self.finals.len() + self.unfinished.len()
    }

    fn add(&mut self, rec: Arc<Record>) {
        let newest = |m: &HashMap<String, Arc<Record>>| m.get(rec.gid.as_str()).map(|r| r.version);
        if newest(&self.finals)
            .max(newest(&self.unfinished))
            .is_some_and(|v| v >= rec.version)
        {
            return;
        }
        if rec.is_final() {
            self.unfinished.remove(rec.gid.as_str());
            self.finals.insert(rec.gid.clone(), rec);
        } else if self
            .unfinished
            .insert(rec.gid.clone(), rec.clone())
            .is_none()
        {
            self.arrivals.push_back((Instant::now(), rec.gid.clone()));
        }
    }

    /// What to apply now.
    fn take(&mut self, all: bool) -> Vec<Arc<Record>> {
        let mut out: Vec<Arc<Record>> = self.finals.drain().map(|(_, r)| r).collect();
        if all {
            out.extend(self.unfinished.drain().map(|(_, r)| r));
            self.arrivals.clear();
            return out;
        }
        while let Some((at, _)) = self.arrivals.front() {
            if at.elapsed() < UNFINISHED_HOLD {
                break;
            }
            if let Some((_, gid)) = self.arrivals.pop_front() {
                if let Some(r) = self.unfinished.remove(&gid) {
                    out.push(r);
                }
            }
        }
        out
    }
}

pub(crate) enum ApplyMsg {
    /// Records durable in the log, in lsn order, ending at `last_lsn`.
    Batch {
        recs: Vec<Arc<Record>>,
        last_lsn: u64,
        bytes: u64,
    },
    /// Apply what is queued, checkpoint, answer, exit.
    Stop(SyncSender<Result<()>>),
}

pub(crate) struct Applier {
    db: Arc<Database>,
    shared: Arc<Shared>,
    rx: Receiver<ApplyMsg>,
    wal_dir: PathBuf,
    checkpoint_every: Duration,
    checkpoint_bytes: u64,
    /// Newest version per gid received from the writer, not yet in redb.
    pending: Pending,
    /// Highest lsn received; `applied_lsn` catches up when all of `pending` is applied.
    received_lsn: u64,
    applied_lsn: u64,
    checkpoint_lsn: u64,
    last_checkpoint: Instant,
    bytes_since_checkpoint: u64,
    failed: bool,
}

impl Applier {
    pub fn new(
        db: Arc<Database>,
        shared: Arc<Shared>,
        rx: Receiver<ApplyMsg>,
        wal_dir: PathBuf,
        cfg: &RedbConfig,
        checkpoint_lsn: u64,
    ) -> Applier {
        Applier {
            db,
            shared,
            rx,
            wal_dir,
            checkpoint_every: Duration::from_millis(cfg.checkpoint_ms),
            checkpoint_bytes: cfg.checkpoint_bytes,
            pending: Pending::default(),
            received_lsn: checkpoint_lsn,
            applied_lsn: checkpoint_lsn,
            checkpoint_lsn,
            last_checkpoint: Instant::now(),
            bytes_since_checkpoint: 0,
            failed: false,
        }
    }

    pub fn run(mut self) {
        let mut last_apply = Instant::now();
        loop {
            let until_checkpoint = self
                .checkpoint_every
                .saturating_sub(self.last_checkpoint.elapsed());
            // Busy: sleep, then take whatever arrived (the writer's sends then never have to
            // wake this thread). Idle: block until the first batch or the checkpoint is due.
            let msg = if self.pending.len() > 0 {
                std::thread::sleep(
                    until_checkpoint.min(APPLY_EVERY.saturating_sub(last_apply.elapsed())),
                );
                self.rx.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                self.rx.recv_timeout(until_checkpoint)
            };
            let mut next = Some(msg);
            while let Some(msg) = next.take() {
                match msg {
                    Ok(ApplyMsg::Batch {
                        recs,
                        last_lsn,
                        bytes,
                    }) => {
                        for rec in recs {
                            self.pending.add(rec);
                        }
                        self.received_lsn = self.received_lsn.max(last_lsn);
                        self.bytes_since_checkpoint += bytes;
                        if self.pending.len() < APPLY_RECORDS_MAX {
                            next = self.rx.try_recv().ok().map(Ok);
                        }
                    }
                    Ok(ApplyMsg::Stop(reply)) => {
                        let result = self.checkpoint();
                        let _ = reply.send(result);
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = self.checkpoint();
                        return;
                    }
                }
            }
            if self.pending.len() >= APPLY_RECORDS_MAX {
                self.apply(true);
                last_apply = Instant::now();
            } else if last_apply.elapsed() >= APPLY_EVERY {
                self.apply(false);
                last_apply = Instant::now();
            }
            if self.last_checkpoint.elapsed() >= self.checkpoint_every
                || self.bytes_since_checkpoint >= self.checkpoint_bytes
            {
                // A failed checkpoint is retried at the next one; the log keeps the records.
                let _ = self.checkpoint();
                last_apply = Instant::now();
            }
        }
    }

    /// Moves pending records into redb (one `Durability::None` transaction): every one when
    /// `all`, else the final ones and those pending longer than [`UNFINISHED_HOLD`].
    fn apply(&mut self, all: bool) {
        if self.failed {
            self.pending = Pending::default();
            return;
        }
        let batch = self.pending.take(all);
        if batch.is_empty() {
            if all {
                self.applied_lsn = self.received_lsn;
            }
            return;
        }
        let held = (|| {
            let mut wtx = self.db.begin_write().map_err(redb_err)?;
            wtx.set_durability(Durability::None).map_err(redb_err)?;
            let held: Vec<(String, u64)> = upsert(&wtx, batch.iter().map(|r| &**r))?
                .into_iter()
                .map(|(g, v)| (g.to_string(), v))
                .collect();
            wtx.commit().map_err(redb_err)?;
            Ok::<_, StoreError>(held)
        })();
        match held {
            Ok(held) => {
                if all {
                    self.applied_lsn = self.received_lsn;
                }
                // In small chunks: the writer and every reader take this lock, and must not
                // wait behind thousands of removals.
                for chunk in held.chunks(OVERLAY_CHUNK) {
                    let mut overlay = self.shared.overlay();
                    for (gid, version) in chunk {
                        if overlay.get(gid).is_some_and(|r| r.version <= *version) {
                            overlay.remove(gid);
                        }
                    }
                }
            }
            Err(e) => {
                // The records stay in the overlay (still readable) and in the log (replayed
                // at the next open); new writes are refused.
                self.failed = true;
                self.shared.fail(format!("applying to redb failed: {e}"));
            }
        }
    }

    fn checkpoint(&mut self) -> Result<()> {
        // The checkpoint may only cover what redb holds: apply what is pending first.
        self.apply(true);
        self.last_checkpoint = Instant::now();
        if self.failed {
            return self.shared.check_failed();
        }
        if self.applied_lsn == self.checkpoint_lsn {
            return Ok(());
        }
        let result = commit_checkpoint(&self.db, self.applied_lsn)
            .and_then(|()| delete_segments_through(&self.wal_dir, self.applied_lsn));
        match &result {
            Ok(()) => {
                self.checkpoint_lsn = self.applied_lsn;
                self.bytes_since_checkpoint = 0;
            }
            Err(e) => tracing::warn!(error = %e, "tandem-store: checkpoint failed; will retry"),
        }
        result
    }
}
