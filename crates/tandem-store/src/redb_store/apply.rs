//! The redb side: table layout, upserting records (shared with recovery), and the applier
//! thread that moves durable log batches into redb and checkpoints.
//!
//! Tables:
//! - `tx`: gid → value ([`wal::encode_value`]: indexed fields + body), the newest version;
//! - `open`: gid → () for every transaction whose newest version is not final;
//! - `by_created`: created ms (u64 BE) ++ gid → (), so a reverse range scan lists newest first;
//! - `meta`: `"format_version"`, `"checkpoint_lsn"`.
//!
//! Invariants: an upsert never replaces a version with an older one (so replays are
//! harmless), and `open`/`by_created` always agree with `tx`. The applier commits with
//! `Durability::None` (cheap: the log already holds the records) and, every `checkpoint_ms` or
//! `checkpoint_bytes`, commits `checkpoint_lsn` with `Durability::Immediate`, which makes every
//! earlier commit durable too; only then are log segments wholly at or below it deleted.
//! Overlay entries are removed after the commit that made redb hold their version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::{redb_err, wal, RedbConfig, Shared};
use crate::{Record, Result, StoreError};

pub(crate) const TX: TableDefinition<&str, &[u8]> = TableDefinition::new("tx");
pub(crate) const OPEN: TableDefinition<&str, ()> = TableDefinition::new("open");
pub(crate) const BY_CREATED: TableDefinition<&[u8], ()> = TableDefinition::new("by_created");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The layout of the tables above; a store written by another layout is refused.
pub(crate) const TABLES_FORMAT: u64 = 1;

/// Most records the applier puts in one redb transaction.
const APPLY_RECORDS_MAX: usize = 32_768;

pub(crate) fn created_key(created_ms: u64, gid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + gid.len());
    k.extend_from_slice(&created_ms.to_be_bytes());
    k.extend_from_slice(gid.as_bytes());
    k
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
    let mut open = wtx.open_table(OPEN).map_err(redb_err)?;
    let mut by_created = wtx.open_table(BY_CREATED).map_err(redb_err)?;
    // Key order keeps consecutive inserts on neighbouring b-tree pages.
    let mut newest: Vec<(&'a str, &'a Record)> = newest.into_iter().collect();
    newest.sort_unstable_by_key(|(gid, _)| *gid);
    let mut held = Vec::with_capacity(newest.len());
    for (gid, rec) in newest {
        let old = match tx.get(gid).map_err(redb_err)? {
            Some(v) => Some(wal::decode_value_head(gid, v.value())?),
            None => None,
        };
        if let Some((old_version, old_created)) = old {
            if old_version >= rec.version {
                held.push((gid, old_version));
                continue;
            }
            if old_created != rec.created_at.0 {
                by_created
                    .remove(created_key(old_created, gid).as_slice())
                    .map_err(redb_err)?;
            }
        }
        tx.insert(gid, wal::encode_value(rec).as_slice())
            .map_err(redb_err)?;
        by_created
            .insert(created_key(rec.created_at.0, gid).as_slice(), ())
            .map_err(redb_err)?;
        if rec.is_final() {
            open.remove(gid).map_err(redb_err)?;
        } else {
            open.insert(gid, ()).map_err(redb_err)?;
        }
        held.push((gid, rec.version));
    }
    Ok(held)
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
            applied_lsn: checkpoint_lsn,
            checkpoint_lsn,
            last_checkpoint: Instant::now(),
            bytes_since_checkpoint: 0,
            failed: false,
        }
    }

    pub fn run(mut self) {
        let mut pending: Vec<Arc<Record>> = Vec::new();
        loop {
            let wait = self
                .checkpoint_every
                .saturating_sub(self.last_checkpoint.elapsed());
            let mut stop = None;
            match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    let mut msg = Some(msg);
                    while let Some(m) = msg.take() {
                        match m {
                            ApplyMsg::Batch {
                                recs,
                                last_lsn,
                                bytes,
                            } => {
                                pending.extend(recs);
                                self.applied_lsn = self.applied_lsn.max(last_lsn);
                                self.bytes_since_checkpoint += bytes;
                            }
                            ApplyMsg::Stop(reply) => {
                                stop = Some(reply);
                                break;
                            }
                        }
                        if pending.len() < APPLY_RECORDS_MAX {
                            msg = self.rx.try_recv().ok();
                        }
                    }
                    self.apply(&mut pending);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.checkpoint();
                    return;
                }
            }
            if let Some(reply) = stop {
                let result = self.checkpoint();
                let _ = reply.send(result);
                return;
            }
            if self.last_checkpoint.elapsed() >= self.checkpoint_every
                || self.bytes_since_checkpoint >= self.checkpoint_bytes
            {
                // A failed checkpoint is retried at the next one; the log keeps the records.
                let _ = self.checkpoint();
            }
        }
    }

    fn apply(&mut self, pending: &mut Vec<Arc<Record>>) {
        if pending.is_empty() || self.failed {
            pending.clear();
            return;
        }
        let held = (|| {
            let mut wtx = self.db.begin_write().map_err(redb_err)?;
            wtx.set_durability(Durability::None).map_err(redb_err)?;
            let held: Vec<(String, u64)> = upsert(&wtx, pending.iter().map(|r| &**r))?
                .into_iter()
                .map(|(g, v)| (g.to_string(), v))
                .collect();
            wtx.commit().map_err(redb_err)?;
            Ok::<_, StoreError>(held)
        })();
        pending.clear();
        match held {
            Ok(held) => {
                let mut overlay = self.shared.overlay();
                for (gid, version) in held {
                    if overlay.get(&gid).is_some_and(|r| r.version <= version) {
                        overlay.remove(&gid);
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
