//! XA: the local half of two-phase commit on PostgreSQL ([`pg`]) and MySQL/MariaDB
//! ([`mysql`]), shared by the engine's library-mode resources and by participant services in
//! the server's XA mode.
//!
//! This module owns the transaction identifiers ([`Xid`]) and their validation, the DTM
//! phase-2 query convention ([`Phase2`]), and the listing of prepared transactions recovery
//! needs ([`Prepared`], [`FirstSeen`]).
//!
//! ```text
//!  local work ──► prepared ──► COMMIT PREPARED / XA COMMIT      (decision: commit)
//!      │              └──────► ROLLBACK PREPARED / XA ROLLBACK  (otherwise: presumed abort)
//!      └─ fails ─► rolled back at once, never prepared
//! ```
//!
//! Invariants:
//! - An xid reaches SQL only through [`Xid`], whose characters are a closed safe set
//!   (`A-Z a-z 0-9 - _ . : @`), so quoting it in `'…'` can never break out of the literal:
//!   a bad xid is a clear [`XidError`], never an injection.
//! - Phase 2 is idempotent, and says what it found: committing or rolling back an xid that is
//!   no longer prepared (PostgreSQL SQLSTATE 42704, MySQL `ER_XAER_NOTA` 1397) is not an error
//!   but [`Finished::NotPrepared`]. For a rollback that is what rollback wants. For a commit it
//!   means an earlier commit did it — or that something else rolled the branch back; only the
//!   coordinator, which knows whether it sent a commit before, can tell which (a heuristic
//!   outcome otherwise), so the answer is passed up, never folded into success here.
//!
//! Server XA mode, in a participant's HTTP handler (DTM conventions: query parameters `gid`,
//! `branch_id`, `op`; the xid is `gid-branch_id` as DTM makes it):
//!
//! ```no_run
//! # async fn handler(client: &tokio_postgres::Client, query: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_participant::xa::{self, Phase2};
//! match Phase2::from_query(query)? {
//!     // op=commit|rollback: the coordinator's second phase.
//!     // "Not prepared" is success in DTM's XA mode (the coordinator retries phase 2).
//!     Phase2::Finish { xid, op } => {
//!         let _found = xa::pg::finish(client, &xid, op).await?;
//!     }
//!     // no op: do the local work and leave it prepared; then register the branch.
//!     Phase2::Local { xid, .. } => {
//!         xa::pg::local(client, &xid, |c| async move {
//!             c.execute("UPDATE account SET balance = balance - 10 WHERE id = 1", &[]).await
//!         })
//!         .await?;
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod mysql;
pub mod pg;

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Longest xid PostgreSQL accepts (`GIDSIZE` is 200 bytes including the terminator).
pub const PG_XID_LEN_MAX: usize = 199;
/// Longest xid this crate gives MySQL/MariaDB (the `gtrid` part of an XA id is ≤ 64 bytes).
pub const MYSQL_XID_LEN_MAX: usize = 64;
/// Most prepared transactions one listing returns; recovery pages through the rest later.
pub const LIST_MAX: usize = 10_000;

/// Why a string cannot be an xid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XidError {
    #[error("xid is empty")]
    Empty,
    #[error("xid {xid:?} is {len} bytes; {backend} allows at most {max}")]
    TooLong {
        xid: String,
        len: usize,
        max: usize,
        backend: &'static str,
    },
    #[error("xid {xid:?} contains {ch:?}; allowed are A-Z a-z 0-9 and - _ . : @")]
    BadChar { xid: String, ch: char },
    #[error("bad XA request: {0}")]
    BadRequest(String),
}

/// A validated XA transaction identifier, safe to put between single quotes in SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xid(String);

impl Xid {
    /// Validates `s` (characters and PostgreSQL's length limit; MySQL's shorter limit is
    /// checked where an xid is used there).
    pub fn new(s: impl Into<String>) -> Result<Xid, XidError> {
        let s = s.into();
        if s.is_empty() {
            return Err(XidError::Empty);
        }
        if let Some(ch) = s.chars().find(|c| !safe_char(*c)) {
            return Err(XidError::BadChar { xid: s, ch });
        }
        if s.len() > PG_XID_LEN_MAX {
            return Err(XidError::TooLong {
                len: s.len(),
                xid: s,
                max: PG_XID_LEN_MAX,
                backend: "PostgreSQL",
            });
        }
        Ok(Xid(s))
    }

    /// The xid DTM gives a branch in XA mode: `gid-branch_id`.
    pub fn for_branch(gid: &str, branch_id: &str) -> Result<Xid, XidError> {
        Xid::new(format!("{gid}-{branch_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The xid as a quoted SQL string literal (safe by construction).
    pub(crate) fn quoted(&self) -> String {
        format!("'{}'", self.0)
    }

    pub(crate) fn check_len(&self, max: usize, backend: &'static str) -> Result<(), XidError> {
        if self.0.len() > max {
            return Err(XidError::TooLong {
                xid: self.0.clone(),
                len: self.0.len(),
                max,
                backend,
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Xid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gid alphabet (`tandem_core::ids`), which needs no quoting in an SQL string literal.
fn safe_char(c: char) -> bool {
    tandem_core::ids::is_gid_char(c)
}

/// The coordinator's second-phase instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Commit,
    Rollback,
}

/// What phase 2 found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "NotPrepared on a commit may be a heuristic outcome"]
pub enum Finished {
    /// The prepared transaction was committed or rolled back now.
    Done,
    /// Nothing was prepared under this xid (already finished, or never prepared).
    NotPrepared,
}

/// What a server-XA-mode call asks of a participant, parsed from its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase2 {
    /// No `op`: the client's call; do the local work and prepare it under `xid`.
    Local {
        xid: Xid,
        gid: String,
        branch_id: String,
    },
    /// `op=commit` or `op=rollback`: the coordinator's second phase for `xid`.
    Finish { xid: Xid, op: Op },
}

impl Phase2 {
    /// Parses `gid`, `branch_id` and `op` from a URL query string (`a=b&c=d`, with or
    /// without the leading `?`), as DTM's `XaFromQuery` reads them.
    pub fn from_query(query: &str) -> Result<Phase2, XidError> {
        let mut gid = None;
        let mut branch_id = None;
        let mut op = None;
        for pair in query.trim_start_matches('?').split('&').take(64) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "gid" => gid = Some(v),
                "branch_id" => branch_id = Some(v),
                "op" => op = Some(v),
                _ => {}
            }
        }
        let (Some(gid), Some(branch_id)) = (gid, branch_id) else {
            return Err(XidError::BadRequest(
                "gid and branch_id are required".into(),
            ));
        };
        let xid = Xid::for_branch(&gid, &branch_id)?;
        match op.as_deref() {
            None | Some("") | Some("action") | Some("try") => Ok(Phase2::Local {
                xid,
                gid,
                branch_id,
            }),
            Some("commit") => Ok(Phase2::Finish {
                xid,
                op: Op::Commit,
            }),
            Some("rollback") => Ok(Phase2::Finish {
                xid,
                op: Op::Rollback,
            }),
            Some(other) => Err(XidError::BadRequest(format!("unknown op {other:?}"))),
        }
    }
}

fn percent_decode(s: &str) -> Result<String, XidError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| XidError::BadRequest(format!("bad escape in {s:?}")))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| XidError::BadRequest(format!("{s:?} is not UTF-8")))
}

/// One prepared transaction found on a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub xid: Xid,
    /// How long it has been prepared: from the database where it says (PostgreSQL), else
    /// since this process first saw it (MySQL's `XA RECOVER` gives no time; see [`FirstSeen`]).
    pub age: Duration,
}

/// Remembers when each xid was first listed, for databases that do not record when a
/// transaction was prepared. Bounded: it forgets xids absent from the latest listing.
#[derive(Debug, Default)]
pub struct FirstSeen {
    seen: HashMap<String, Instant>,
}

impl FirstSeen {
    /// Ages of `xids` (zero for a new one); forgets every xid not in `xids`.
    pub fn observe(&mut self, xids: Vec<Xid>) -> Vec<Prepared> {
        let now = Instant::now();
        let mut next = HashMap::with_capacity(xids.len());
        let out = xids
            .into_iter()
            .map(|xid| {
                let first = self.seen.get(xid.as_str()).copied().unwrap_or(now);
                next.insert(xid.as_str().to_string(), first);
                Prepared {
                    age: now.saturating_duration_since(first),
                    xid,
                }
            })
            .collect();
        self.seen = next;
        out
    }
}

/// Errors of the XA helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XaError {
    #[error(transparent)]
    Xid(#[from] XidError),
    #[error("postgres: {0}")]
    Pg(#[from] tokio_postgres::Error),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("unexpected answer from the database: {0}")]
    Protocol(String),
    /// MySQL/MariaDB: the branch is still prepared but attached to the session that prepared
    /// it (closing); phase 2 must be tried again shortly.
    #[error("XA branch {0} is still attached to the session that prepared it; try again")]
    StillAttached(String),
}

/// The local work failed (and was rolled back), or the XA statements around it did.
#[derive(Debug, thiserror::Error)]
pub enum LocalError<E> {
    #[error("local work failed (rolled back): {0}")]
    Work(E),
    #[error(transparent)]
    Xa(#[from] XaError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xids_are_validated() {
        assert!(Xid::new("g-1_a.b:c@d").is_ok());
        assert_eq!(Xid::new(""), Err(XidError::Empty));
        assert!(matches!(
            Xid::new("a'; DROP TABLE x; --"),
            Err(XidError::BadChar { ch: '\'', .. })
        ));
        assert!(matches!(
            Xid::new("a\\b"),
            Err(XidError::BadChar { ch: '\\', .. })
        ));
        assert!(matches!(
            Xid::new("a".repeat(200)),
            Err(XidError::TooLong { len: 200, .. })
        ));
        assert!(Xid::new("a".repeat(199)).is_ok());
        let x = Xid::new("a".repeat(65)).unwrap();
        assert!(x.check_len(MYSQL_XID_LEN_MAX, "MySQL").is_err());
    }

    #[test]
    fn dtm_queries() {
        let p = Phase2::from_query("?gid=g1&branch_id=01&op=commit&trans_type=xa").unwrap();
        assert_eq!(
            p,
            Phase2::Finish {
                xid: Xid::new("g1-01").unwrap(),
                op: Op::Commit
            }
        );
        let p = Phase2::from_query("gid=g%2D2&branch_id=02").unwrap();
        assert!(matches!(p, Phase2::Local { ref xid, .. } if xid.as_str() == "g-2-02"));
        assert!(Phase2::from_query("gid=g&branch_id=01&op=explode").is_err());
        assert!(Phase2::from_query("branch_id=01").is_err());
        assert!(matches!(
            Phase2::from_query("gid=a%27b&branch_id=01"),
            Err(XidError::BadChar { ch: '\'', .. })
        ));
    }

    #[test]
    fn first_seen_ages_and_forgets() {
        let mut f = FirstSeen::default();
        let a = Xid::new("a").unwrap();
        let out = f.observe(vec![a.clone()]);
        assert_eq!(out[0].age, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(f.observe(vec![a.clone()])[0].age >= Duration::from_millis(5));
        f.observe(vec![]);
        assert_eq!(f.observe(vec![a])[0].age, Duration::ZERO);
    }
}
