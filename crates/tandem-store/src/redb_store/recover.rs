//! Recovery, run by [`super::RedbStore::open`] before anything else touches the store.
//!
//! It checks redb's table format, reads `checkpoint_lsn`, removes half-created segment files,
//! scans every log segment oldest first, checks that lsns strictly increase, and replays every
//! record above the checkpoint: a snapshot replaces what the gid had; a delta is applied to the
//! gid's state so far (replayed, or in redb at the checkpoint) — a delta whose base is missing
//! is corruption, never skipped. Then it upserts the results into redb, commits durably (with
//! the new checkpoint) and only then deletes the segments.
//!
//! The scan stops at the first frame whose length or crc is wrong: a torn tail was never
//! acknowledged (acknowledgement waits for the fsync, which covers the whole frame), so
//! dropping it loses nothing that was promised. A torn frame anywhere but at the end of the
//! newest segment is corruption and fails the open rather than silently losing what follows;
//! so is a blank (headerless) segment anywhere but last. A crash during recovery is harmless:
//! upserts are idempotent and the log is deleted last.

use std::collections::HashMap;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use tandem_core::{codec, Transaction};

use super::apply::{self, BY_CREATED, DUE, FINISHED, META, OPEN, TABLES_FORMAT, TX};
use super::{redb_err, wal};
use crate::{Record, Result, StoreError};

/// A gid's state during replay: its newest snapshot record, or (once a delta touched it) the
/// decoded transaction, encoded again only at the end.
enum Replayed {
    Record(Record),
    Tx(Box<Transaction>),
}

impl Replayed {
    fn version(&self) -> u64 {
        match self {
            Replayed::Record(r) => r.version,
            Replayed::Tx(t) => t.version,
        }
    }
}

/// Brings redb up to date with the log in `wal_dir` and empties it. Returns the next lsn.
pub(crate) fn recover(wal_dir: &Path, db: &Database, fsync: bool) -> Result<u64> {
    let checkpoint = check_tables(db)?;
    wal::remove_temporaries(wal_dir)?;
    let segments = wal::list_segments(wal_dir)?;
    let mut last_lsn: Option<u64> = None;
    let mut replay: HashMap<String, Replayed> = HashMap::new();
    let rtx = db.begin_read().map_err(redb_err)?;
    let stored = rtx.open_table(TX).map_err(redb_err)?;
    let mut replayed_records = 0usize;
    for (i, (first_lsn, path)) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        let scan = wal::scan_segment(path, *first_lsn)?;
        if scan.blank {
            if !newest {
                return Err(StoreError::Corrupt(format!(
                    "{} at byte 0: no segment header, and newer segments follow",
                    path.display()
                )));
            }
            tracing::warn!(segment = %path.display(), "tandem-store: the newest log segment has no header (created just before a crash); reading it as empty");
            continue;
        }
        let torn = scan.torn();
        for (lsn, rec) in scan.frames {
            if lsn < *first_lsn || last_lsn.is_some_and(|last| lsn <= last) {
                return Err(StoreError::Corrupt(format!(
                    "{}: lsn {lsn} does not follow {last_lsn:?}",
                    path.display()
                )));
            }
            last_lsn = Some(lsn);
            if lsn > checkpoint {
                replayed_records += 1;
                replay_one(&mut replay, &stored, rec).map_err(|e| {
                    StoreError::Corrupt(format!("{} (lsn {lsn}): {e}", path.display()))
                })?;
            }
        }
        if torn {
            if !newest {
                return Err(StoreError::Corrupt(format!(
                    "{}: bad frame at byte {} of {}, and newer segments follow",
                    path.display(),
                    scan.valid_bytes,
                    scan.file_bytes
                )));
            }
            tracing::warn!(
                segment = %path.display(),
                dropped_bytes = scan.file_bytes - scan.valid_bytes,
                "tandem-store: dropping a torn log tail (never acknowledged)"
            );
        }
    }
    drop(stored);
    drop(rtx);
    let next_checkpoint = last_lsn.unwrap_or(0).max(checkpoint);
    if !replay.is_empty() || next_checkpoint != checkpoint {
        tracing::info!(
            records = replayed_records,
            transactions = replay.len(),
            "tandem-store: replaying the log into redb"
        );
        let records = replay
            .into_values()
            .map(|r| match r {
                Replayed::Record(rec) => Ok(rec),
                Replayed::Tx(tx) => Record::from_tx(&tx),
            })
            .collect::<Result<Vec<Record>>>()?;
        let mut wtx = db.begin_write().map_err(redb_err)?;
        wtx.set_durability(Durability::Immediate)
            .map_err(redb_err)?;
        apply::upsert(&wtx, records.iter())?;
        wtx.open_table(META)
            .map_err(redb_err)?
            .insert("checkpoint_lsn", next_checkpoint)
            .map_err(redb_err)?;
        wtx.commit().map_err(redb_err)?;
    }
    for (_, path) in &segments {
        std::fs::remove_file(path)?;
    }
    if fsync && !segments.is_empty() {
        wal::sync_dir(wal_dir)?;
    }
    Ok(next_checkpoint + 1)
}

/// Applies one logged record to the gid's replayed state: newest snapshot wins; a delta
/// needs its base (the state so far, or redb's at the checkpoint).
fn replay_one(
    replay: &mut HashMap<String, Replayed>,
    stored: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
    rec: Record,
) -> Result<()> {
    if replay
        .get(&rec.gid)
        .is_some_and(|r| r.version() >= rec.version)
    {
        return Ok(());
    }
    if !codec::is_delta(&rec.body) {
        replay.insert(rec.gid.clone(), Replayed::Record(rec));
        return Ok(());
    }
    let mut base = match replay.remove(&rec.gid) {
        Some(Replayed::Tx(tx)) => *tx,
        Some(Replayed::Record(r)) => r.decode()?,
        None => match stored.get(rec.gid.as_str()).map_err(redb_err)? {
            Some(v) => wal::decode_value(&rec.gid, v.value())?.decode()?,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "a delta of {} (version {}) has no base",
                    rec.gid, rec.version
                )))
            }
        },
    };
    codec::apply_delta(&mut base, &rec.body)?;
    replay.insert(rec.gid, Replayed::Tx(Box::new(base)));
    Ok(())
}

/// Creates the tables on first open, migrates format 1, refuses a newer format, and returns
/// the checkpoint.
fn check_tables(db: &Database) -> Result<u64> {
    let wtx = db.begin_write().map_err(redb_err)?;
    let (checkpoint, format) = {
        wtx.open_table(TX).map_err(redb_err)?;
        wtx.open_table(DUE).map_err(redb_err)?;
        wtx.open_table(FINISHED).map_err(redb_err)?;
        wtx.open_table(BY_CREATED).map_err(redb_err)?;
        wtx.open_table(apply::IDENTITY).map_err(redb_err)?;
        let mut meta = wtx.open_table(META).map_err(redb_err)?;
        let format = meta
            .get("format_version")
            .map_err(redb_err)?
            .map(|v| v.value());
        let fresh = format.is_none();
        if fresh {
            meta.insert("format_version", TABLES_FORMAT)
                .map_err(redb_err)?;
        }
        let checkpoint = meta
            .get("checkpoint_lsn")
            .map_err(redb_err)?
            .map(|v| v.value());
        (checkpoint.unwrap_or(0), format.unwrap_or(TABLES_FORMAT))
    };
    match format {
        TABLES_FORMAT => {}
        1 => migrate_from_1(&wtx)?,
        other => {
            return Err(StoreError::Corrupt(format!(
                "table format {other} is newer than this build reads ({TABLES_FORMAT}): run a newer tandem"
            )))
        }
    }
    wtx.commit().map_err(redb_err)?;
    Ok(checkpoint)
}

/// Format 1 → 2: values gain their finished and due fields; the `open` index becomes `due`
/// (every open transaction was held by a driver then: `Active`, resumed at start) and
/// `finished` is built. One transaction, committed with the rest of the open.
fn migrate_from_1(wtx: &redb::WriteTransaction) -> Result<()> {
    let (mut unfinished, mut parked) = (0u64, 0u64);
    {
        let mut tx = wtx.open_table(TX).map_err(redb_err)?;
        let mut due = wtx.open_table(DUE).map_err(redb_err)?;
        let mut finished = wtx.open_table(FINISHED).map_err(redb_err)?;
        let mut recs = Vec::new();
        for entry in tx.iter().map_err(redb_err)? {
            let (gid, v) = entry.map_err(redb_err)?;
            recs.push(wal::decode_value(gid.value(), v.value())?);
        }
        for rec in &recs {
            tx.insert(rec.gid.as_str(), wal::encode_value(rec).as_slice())
                .map_err(redb_err)?;
            if rec.is_final() {
                if let Some(f) = rec.finished_at {
                    finished
                        .insert(apply::created_key(f.0, &rec.gid).as_slice(), ())
                        .map_err(redb_err)?;
                }
            } else {
                due.insert(apply::created_key(rec.due.key(), &rec.gid).as_slice(), ())
                    .map_err(redb_err)?;
                unfinished += 1;
                parked += u64::from(rec.parked);
            }
        }
        tracing::info!(
            transactions = recs.len(),
            "tandem-store: migrated tables from format 1"
        );
    }
    wtx.delete_table(OPEN).map_err(redb_err)?;
    let mut meta = wtx.open_table(META).map_err(redb_err)?;
    meta.insert("format_version", TABLES_FORMAT)
        .map_err(redb_err)?;
    meta.insert("unfinished", unfinished).map_err(redb_err)?;
    meta.insert("parked", parked).map_err(redb_err)?;
    Ok(())
}
