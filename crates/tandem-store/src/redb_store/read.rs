//! Reads: the newest durable version of a gid is the newer of the overlay's and redb's.
//!
//! The overlay is always consulted before redb: the applier commits to redb first and removes
//! overlay entries after, so a record missing from the overlay is already visible in redb.
//! The overlay mutex is held only to clone `Arc`s, never across a redb call or a decode.
//! `list` merges two newest-first streams: overlay records (filtered, sorted in memory) and a
//! reverse scan of `by_created` that skips gids the overlay holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};
use tandem_core::Transaction;

use super::apply::{BY_CREATED, OPEN, TX};
use super::{redb_err, wal, Shared};
use crate::query::{newest_first, Plan};
use crate::{ListQuery, Page, Record, Result};

type TxTable = ReadOnlyTable<&'static str, &'static [u8]>;

fn stored(tx: &TxTable, gid: &str) -> Result<Option<Record>> {
    match tx.get(gid).map_err(redb_err)? {
        Some(v) => Ok(Some(wal::decode_value(gid, v.value())?)),
        None => Ok(None),
    }
}

/// The newer of the overlay's record and redb's.
fn newest(tx: &TxTable, gid: &str, over: Option<&Arc<Record>>) -> Result<Option<Record>> {
    let held = stored(tx, gid)?;
    Ok(match (over, held) {
        (Some(o), Some(h)) if h.version > o.version => Some(h),
        (Some(o), _) => Some(Record::clone(o)),
        (None, h) => h,
    })
}

fn tx_table(db: &Database) -> Result<TxTable> {
    db.begin_read()
        .map_err(redb_err)?
        .open_table(TX)
        .map_err(redb_err)
}

pub(crate) fn get(shared: &Shared, db: &Database, gid: &str) -> Result<Option<Transaction>> {
    let over = shared.overlay().get(gid).cloned();
    let tx = tx_table(db)?;
    newest(&tx, gid, over.as_ref())?
        .map(|r| r.decode())
        .transpose()
}

pub(crate) fn unfinished(shared: &Shared, db: &Database) -> Result<Vec<Transaction>> {
    let over: HashMap<String, Arc<Record>> = shared.overlay().clone();
    let rtx = db.begin_read().map_err(redb_err)?;
    let tx = rtx.open_table(TX).map_err(redb_err)?;
    let open = rtx.open_table(OPEN).map_err(redb_err)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for entry in open.iter().map_err(redb_err)? {
        let (gid, _) = entry.map_err(redb_err)?;
        let gid = gid.value().to_string();
        if let Some(rec) = newest(&tx, &gid, over.get(&gid))? {
            if !rec.is_final() {
                out.push(rec.decode()?);
            }
        }
        seen.insert(gid);
    }
    for (gid, o) in &over {
        if seen.contains(gid) {
            continue;
        }
        if let Some(rec) = newest(&tx, gid, Some(o))? {
            if !rec.is_final() {
                out.push(rec.decode()?);
            }
        }
    }
    Ok(out)
}

pub(crate) fn list(shared: &Shared, db: &Database, q: &ListQuery) -> Result<Page> {
    let plan = Plan::new(q)?;
    let over: Vec<Arc<Record>> = shared.overlay().values().cloned().collect();
    let rtx = db.begin_read().map_err(redb_err)?;
    let tx = rtx.open_table(TX).map_err(redb_err)?;
    let by_created = rtx.open_table(BY_CREATED).map_err(redb_err)?;

    let over_gids: HashSet<&str> = over.iter().map(|r| r.gid.as_str()).collect();
    let mut from_overlay = Vec::new();
    for o in &over {
        if let Some(rec) = newest(&tx, &o.gid, Some(o))? {
            if plan.matches_record(&rec) {
                from_overlay.push(rec);
            }
        }
    }
    from_overlay.sort_by(newest_first);
    let mut from_overlay = from_overlay.into_iter().peekable();

    let lower = q
        .created_from
        .map(|t| t.0.to_be_bytes().to_vec())
        .unwrap_or_default();
    let mut upper: Option<Vec<u8>> = q.created_to.map(|t| t.0.to_be_bytes().to_vec());
    if let Some((created, gid)) = &plan.below {
        let mut key = created.to_be_bytes().to_vec();
        key.extend_from_slice(gid);
        upper = Some(match upper {
            Some(u) if u < key => u,
            _ => key,
        });
    }
    let range = match &upper {
        Some(u) => by_created.range::<&[u8]>(lower.as_slice()..u.as_slice()),
        None => by_created.range::<&[u8]>(lower.as_slice()..),
    }
    .map_err(redb_err)?;

    // One more than the limit tells whether a next page exists.
    let want = plan.limit + 1;
    let mut hits: Vec<Record> = Vec::with_capacity(want.min(1024));
    for entry in range.rev() {
        if hits.len() >= want {
            break;
        }
        let (key, _) = entry.map_err(redb_err)?;
        let key = key.value();
        if key.len() < 8 {
            continue;
        }
        let mut created = [0u8; 8];
        created.copy_from_slice(&key[..8]);
        let created = u64::from_be_bytes(created);
        let gid = &key[8..];
        let Ok(gid) = std::str::from_utf8(gid) else {
            continue;
        };
        if over_gids.contains(gid) || !plan.matches_key(created, gid.as_bytes()) {
            continue;
        }
        let Some(rec) = stored(&tx, gid)? else {
            continue;
        };
        if !plan.matches_record(&rec) {
            continue;
        }
        while let Some(o) = from_overlay.next_if(|o| newest_first(o, &rec).is_lt()) {
            hits.push(o);
        }
        hits.push(rec);
    }
    hits.extend(from_overlay);
    hits.truncate(want);
    plan.page(hits.into_iter())
}
