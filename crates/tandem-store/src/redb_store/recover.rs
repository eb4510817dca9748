//! Recovery, run by [`super::RedbStore::open`] before anything else touches the store.
//!
//! It checks redb's table format, reads `checkpoint_lsn`, scans every log segment oldest
//! first, checks that lsns strictly increase, and upserts every record above the checkpoint
//! into redb; then it commits durably (with the new checkpoint) and only then deletes the
//! segments. The scan stops at the first frame whose length or crc is wrong: a torn tail was
//! never acknowledged (acknowledgement waits for the fsync, which covers the whole frame), so
//! dropping it loses nothing that was promised. A torn frame anywhere but at the end of the
//! newest segment is corruption and fails the open rather than silently losing what follows.
//! A crash during recovery is harmless: upserts are idempotent and the log is deleted last.

use std::path::Path;

use redb::{Database, Durability, ReadableTable};

use super::apply::{self, BY_CREATED, META, OPEN, TABLES_FORMAT, TX};
use super::{redb_err, wal};
use crate::{Result, StoreError};

/// Brings redb up to date with the log in `wal_dir` and empties it. Returns the next lsn.
pub(crate) fn recover(wal_dir: &Path, db: &Database, fsync: bool) -> Result<u64> {
    let checkpoint = check_tables(db)?;
    let segments = wal::list_segments(wal_dir)?;
    let mut last_lsn: Option<u64> = None;
    let mut replay = Vec::new();
    for (i, (first_lsn, path)) in segments.iter().enumerate() {
        let scan = wal::scan_segment(path, *first_lsn)?;
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
                replay.push(rec);
            }
        }
        if torn {
            if i + 1 != segments.len() {
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
    let next_checkpoint = last_lsn.unwrap_or(0).max(checkpoint);
    if !replay.is_empty() || next_checkpoint != checkpoint {
        tracing::info!(
            records = replay.len(),
            "tandem-store: replaying the log into redb"
        );
        let mut wtx = db.begin_write().map_err(redb_err)?;
        wtx.set_durability(Durability::Immediate)
            .map_err(redb_err)?;
        apply::upsert(&wtx, replay.iter())?;
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

/// Creates the tables on first open, refuses another table format, returns the checkpoint.
fn check_tables(db: &Database) -> Result<u64> {
    let wtx = db.begin_write().map_err(redb_err)?;
    let checkpoint = {
        wtx.open_table(TX).map_err(redb_err)?;
        wtx.open_table(OPEN).map_err(redb_err)?;
        wtx.open_table(BY_CREATED).map_err(redb_err)?;
        let mut meta = wtx.open_table(META).map_err(redb_err)?;
        let format = meta
            .get("format_version")
            .map_err(redb_err)?
            .map(|v| v.value());
        match format {
            None => {
                meta.insert("format_version", TABLES_FORMAT)
                    .map_err(redb_err)?;
            }
            Some(TABLES_FORMAT) => {}
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "table format {other} is not known to this build (it reads {TABLES_FORMAT})"
                )))
            }
        }
        let checkpoint = meta
            .get("checkpoint_lsn")
            .map_err(redb_err)?
            .map(|v| v.value());
        checkpoint.unwrap_or(0)
    };
    wtx.commit().map_err(redb_err)?;
    Ok(checkpoint)
}
