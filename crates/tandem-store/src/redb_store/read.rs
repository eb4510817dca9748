//! Reads: the newest durable version of a gid is the newer of the overlay's and redb's; the
//! scheduler's queries (due, next due) merge the overlay's newest records with redb's `due`
//! index the same way.
//!
//! The overlay is always consulted before redb: the applier commits to redb first and removes
//! overlay entries after, so a record missing from the overlay is already visible in redb.
//! The overlay mutex is held only to clone `Arc`s, never across a redb call or a decode.
//! `list` merges two newest-first streams: overlay records (filtered, sorted in memory) and a
//! reverse scan of `by_created` that skips gids the overlay holds.

use std::collections::HashSet;
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableDatabase};
use tandem_core::{Timestamp, Transaction};

use super::apply::{split_key, BY_CREATED, DUE, META, TX};
use super::{redb_err, wal, Shared};
use crate::query::{newest_first, Plan};
use crate::{Claim, Claimed, Counts, Due, ListQuery, Page, Record, Result};

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

/// The newest durable record of `gid` (overlay, else redb).
fn newest_record(shared: &Shared, tx: &TxTable, gid: &str) -> Result<Option<Record>> {
    let over = shared.overlay().get(gid).cloned();
    newest(tx, gid, over.as_ref())
}

fn claimed(rec: &Record) -> Result<Claimed> {
    Ok(Claimed {
        resume: rec.due == Due::Active,
        tx: rec.decode()?,
        fence: 0,
    })
}

pub(crate) fn claim(shared: &Shared, db: &Database, gid: &str) -> Result<Claim> {
    let tx = tx_table(db)?;
    Ok(match newest_record(shared, &tx, gid)? {
        None => Claim::Missing,
        Some(rec) => Claim::Got(Box::new(claimed(&rec)?)),
    })
}

/// Unfinished records due by `now` (idle ones whose time came; with `active`, the ones a
/// driver held), earliest first: the overlay's newest records merged with redb's `due` index.
pub(crate) fn claim_due(
    shared: &Shared,
    db: &Database,
    now: Timestamp,
    limit: usize,
    active: bool,
) -> Result<Vec<Claimed>> {
    let lower: u64 = if active { 0 } else { 1 };
    let is_due = |k: u64| k >= lower && k <= now.0;
    let over: Vec<Arc<Record>> = shared.overlay().values().cloned().collect();
    let rtx = db.begin_read().map_err(redb_err)?;
    let tx = rtx.open_table(TX).map_err(redb_err)?;
    let due = rtx.open_table(DUE).map_err(redb_err)?;
    let mut hits: Vec<(u64, Record)> = Vec::new();
    let over_gids: HashSet<&str> = over.iter().map(|r| r.gid.as_str()).collect();
    for o in &over {
        if let Some(rec) = newest(&tx, &o.gid, Some(o))? {
            if !rec.is_final() && is_due(rec.due.key()) {
                hits.push((rec.due.key(), rec));
            }
        }
    }
    let upper = now.0.saturating_add(1).to_be_bytes();
    let from = lower.to_be_bytes();
    for entry in due
        .range::<&[u8]>(from.as_slice()..upper.as_slice())
        .map_err(redb_err)?
    {
        if hits.len() >= limit + over_gids.len() {
            break;
        }
        let (key, _) = entry.map_err(redb_err)?;
        let Some((_, gid)) = split_key(key.value()) else {
            continue;
        };
        if over_gids.contains(gid) {
            continue;
        }
        if let Some(rec) = stored(&tx, gid)? {
            if !rec.is_final() && is_due(rec.due.key()) {
                hits.push((rec.due.key(), rec));
            }
        }
    }
    hits.sort_by(|a, b| (a.0, &a.1.gid).cmp(&(b.0, &b.1.gid)));
    hits.truncate(limit);
    hits.iter().map(|(_, r)| claimed(r)).collect()
}

/// The earliest due time of an idle, unfinished record with a timer.
pub(crate) fn next_due(shared: &Shared, db: &Database) -> Result<Option<Timestamp>> {
    let over: Vec<Arc<Record>> = shared.overlay().values().cloned().collect();
    let rtx = db.begin_read().map_err(redb_err)?;
    let tx = rtx.open_table(TX).map_err(redb_err)?;
    let due = rtx.open_table(DUE).map_err(redb_err)?;
    let mut best: Option<u64> = None;
    let over_gids: HashSet<&str> = over.iter().map(|r| r.gid.as_str()).collect();
    for o in &over {
        if let Some(rec) = newest(&tx, &o.gid, Some(o))? {
            if let (false, Due::Idle(Some(t))) = (rec.is_final(), rec.due) {
                best = Some(best.map_or(t.0, |b| b.min(t.0)));
            }
        }
    }
    let from = 1u64.to_be_bytes();
    let upper = u64::MAX.to_be_bytes();
    for entry in due
        .range::<&[u8]>(from.as_slice()..upper.as_slice())
        .map_err(redb_err)?
    {
        let (key, _) = entry.map_err(redb_err)?;
        let Some((k, gid)) = split_key(key.value()) else {
            continue;
        };
        if over_gids.contains(gid) {
            continue;
        }
        best = Some(best.map_or(k, |b| b.min(k)));
        break;
    }
    Ok(best.map(Timestamp))
}

/// redb's counts, corrected by the overlay's records that redb does not hold yet.
pub(crate) fn counts(shared: &Shared, db: &Database) -> Result<Counts> {
    let over: Vec<Arc<Record>> = shared.overlay().values().cloned().collect();
    let rtx = db.begin_read().map_err(redb_err)?;
    let meta = rtx.open_table(META).map_err(redb_err)?;
    let tx = rtx.open_table(TX).map_err(redb_err)?;
    let get = |k: &str| -> Result<i64> {
        Ok(meta.get(k).map_err(redb_err)?.map_or(0, |v| v.value()) as i64)
    };
    let (mut unfinished, mut parked) = (get("unfinished")?, get("parked")?);
    for o in &over {
        let held = tx
            .get(o.gid.as_str())
            .map_err(redb_err)?
            .map(|v| wal::decode_value_head(&o.gid, v.value()))
            .transpose()?;
        if held.as_ref().is_some_and(|h| h.version >= o.version) {
            continue;
        }
        let was_open = held.as_ref().is_some_and(|h| !h.final_);
        let was_parked = held.as_ref().is_some_and(|h| !h.final_ && h.parked);
        unfinished += i64::from(!o.is_final()) - i64::from(was_open);
        parked += i64::from(!o.is_final() && o.parked) - i64::from(was_parked);
    }
    Ok(Counts {
        unfinished: unfinished.max(0) as u64,
        parked: parked.max(0) as u64,
    })
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
