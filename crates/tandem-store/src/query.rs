//! What every backend's [`crate::Store::list`] shares: checking a [`ListQuery`], matching
//! records against its filters, and the opaque paging cursor.
//!
//! Order is newest first by the key `(created_at ms, gid bytes)`, both descending; a cursor
//! names the last key of a page (`<created ms as 16 hex>-<gid as hex>`), and the next page holds
//! only keys strictly below it, so paging has neither duplicates nor gaps while the set is
//! unchanged. Keeping this in one place makes the memory model and redb agree by construction.

use std::cmp::Ordering;

use crate::{ListQuery, Page, Record, Result, StoreError, LIST_LIMIT_MAX};

/// Page size when the query says 0.
pub const LIST_LIMIT_DEFAULT: usize = 100;

/// A checked [`ListQuery`].
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub q: &'a ListQuery,
    pub limit: usize,
    /// Only keys strictly below this one.
    pub below: Option<(u64, Vec<u8>)>,
}

impl<'a> Plan<'a> {
    pub fn new(q: &'a ListQuery) -> Result<Plan<'a>> {
        let limit = match q.limit {
            0 => LIST_LIMIT_DEFAULT,
            n if n > LIST_LIMIT_MAX => {
                return Err(StoreError::InvalidQuery(format!(
                    "limit {n} is above the maximum {LIST_LIMIT_MAX}"
                )))
            }
            n => n,
        };
        let below = q.cursor.as_deref().map(parse_cursor).transpose()?;
        Ok(Plan { q, limit, below })
    }

    /// Whether a record with these indexed fields belongs in the answer.
    pub fn matches_record(&self, r: &Record) -> bool {
        let q = self.q;
        q.status.is_none_or(|s| s == r.status)
            && q.kind.is_none_or(|k| k == r.kind)
            && q.parked.is_none_or(|p| p == r.parked)
            && self.matches_key(r.created_at.0, r.gid.as_bytes())
    }

    /// The filters that depend only on the index key: creation range, gid prefix, cursor.
    pub fn matches_key(&self, created_ms: u64, gid: &[u8]) -> bool {
        let q = self.q;
        q.created_from.is_none_or(|t| created_ms >= t.0)
            && q.created_to.is_none_or(|t| created_ms < t.0)
            && q.gid_prefix
                .as_deref()
                .is_none_or(|p| gid.starts_with(p.as_bytes()))
            && self
                .below
                .as_ref()
                .is_none_or(|(c, g)| (created_ms, gid) < (*c, g.as_slice()))
    }

    /// Takes up to `limit` records from `hits` (already filtered, newest first) and decodes
    /// them; `next` is set when at least one more matched.
    pub fn page(&self, mut hits: impl Iterator<Item = Record>) -> Result<Page> {
        let mut items = Vec::with_capacity(self.limit.min(64));
        let mut last = None;
        for rec in hits.by_ref().take(self.limit) {
            items.push(rec.decode()?);
            last = Some((rec.created_at.0, rec.gid));
        }
        let next = match (last, hits.next()) {
            (Some((created, gid)), Some(_)) => Some(format_cursor(created, gid.as_bytes())),
            _ => None,
        };
        Ok(Page { items, next })
    }
}

/// Newest first: `created_at` descending, then gid descending.
pub(crate) fn newest_first(a: &Record, b: &Record) -> Ordering {
    (b.created_at.0, b.gid.as_bytes()).cmp(&(a.created_at.0, a.gid.as_bytes()))
}

pub(crate) fn format_cursor(created_ms: u64, gid: &[u8]) -> String {
    let mut s = format!("{created_ms:016x}-");
    for b in gid {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(crate) fn parse_cursor(s: &str) -> Result<(u64, Vec<u8>)> {
    let bad = || StoreError::InvalidQuery(format!("malformed cursor {s:?}"));
    let (created, gid) = s.split_once('-').ok_or_else(bad)?;
    if created.len() != 16 || gid.len() % 2 != 0 || !s.is_ascii() {
        return Err(bad());
    }
    let created = u64::from_str_radix(created, 16).map_err(|_| bad())?;
    let gid = (0..gid.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&gid[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    Ok((created, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects() {
        let c = format_cursor(42, b"g-1");
        assert_eq!(parse_cursor(&c).ok(), Some((42, b"g-1".to_vec())));
        for bad in [
            "",
            "zz",
            "0000000000000001-0",
            "000000000000000g-00",
            "1-00",
            "é",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(StoreError::InvalidQuery(_))),
                "{bad}"
            );
        }
    }
}
