//! A branch call's identity as the barrier sees it: (trans_type, gid, branch_id, op), the
//! barrier table to use, and the per-call barrier id counter.
//!
//! Branch calls carry the identity as query parameters (`trans_type`, `gid`, `branch_id`,
//! `op`, the DTM convention that Tandem's server follows). Build one [`Barrier`] per incoming
//! call: its barrier ids count "01", "02", ... for each local transaction the handler runs
//! through it, as DTM does, so a retried call maps to the same rows.

use super::error::{Error, Result};
use super::ops;
use super::table::Table;

/// Longest gid and branch_id the DTM table holds (`varchar(128)`).
const ID_CHARS_MAX: usize = 128;
/// Longest trans_type and op the DTM table holds (`varchar(45)`).
const NAME_CHARS_MAX: usize = 45;

/// The barrier of one incoming branch call. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Barrier {
    pub(crate) trans_type: String,
    pub(crate) gid: String,
    pub(crate) branch_id: String,
    pub(crate) op: String,
    pub(crate) table: Option<Table>,
    barriers_used: u32,
}

impl Barrier {
    /// The barrier of the call `(trans_type, gid, branch_id, op)`, e.g.
    /// `("saga", "g1", "01", "compensate")`.
    ///
    /// # Errors
    /// [`Error::InvalidBranch`] when a part is empty or longer than the DTM table holds.
    pub fn new(
        trans_type: impl Into<String>,
        gid: impl Into<String>,
        branch_id: impl Into<String>,
        op: impl Into<String>,
    ) -> Result<Self> {
        let b = Barrier {
            trans_type: trans_type.into(),
            gid: gid.into(),
            branch_id: branch_id.into(),
            op: op.into(),
            table: None,
            barriers_used: 0,
        };
        for (name, value, max) in [
            ("trans_type", &b.trans_type, NAME_CHARS_MAX),
            ("gid", &b.gid, ID_CHARS_MAX),
            ("branch_id", &b.branch_id, ID_CHARS_MAX),
            ("op", &b.op, NAME_CHARS_MAX),
        ] {
            if value.is_empty() {
                return Err(Error::InvalidBranch(format!("{name} is empty")));
            }
            if value.chars().count() > max {
                return Err(Error::InvalidBranch(format!(
                    "{name} is longer than {max} characters"
                )));
            }
        }
        Ok(b)
    }

    /// The barrier of a call from already-decoded query parameters (e.g. an axum
    /// `Query<HashMap<String, String>>`); other parameters are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidBranch`] when one of the four is missing or invalid.
    pub fn from_params<K, V>(params: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut trans_type, mut gid, mut branch_id, mut op) =
            (String::new(), String::new(), String::new(), String::new());
        for (k, v) in params {
            let slot = match k.as_ref() {
                "trans_type" => &mut trans_type,
                "gid" => &mut gid,
                "branch_id" => &mut branch_id,
                "op" => &mut op,
                _ => continue,
            };
            *slot = v.as_ref().to_owned();
        }
        Self::new(trans_type, gid, branch_id, op)
    }

    /// The barrier of a call from its raw URL query string
    /// (`trans_type=saga&gid=g1&branch_id=01&op=action`, percent-encoded).
    ///
    /// # Errors
    /// [`Error::InvalidBranch`] when one of the four is missing, invalid or badly encoded.
    pub fn from_query(query: &str) -> Result<Self> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut pairs = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((percent_decode(k)?, percent_decode(v)?));
        }
        Self::from_params(pairs)
    }

    /// The barrier of a transactional message's local transaction (DTM's `DoAndSubmit`):
    /// branch "00", op "msg". Run the local transaction through it, then submit the message;
    /// answer the coordinator's check with the backend's `query_prepared`.
    ///
    /// # Errors
    /// [`Error::InvalidBranch`] when `gid` is empty or too long.
    pub fn for_msg(gid: impl Into<String>) -> Result<Self> {
        Self::new("msg", gid, MSG_BRANCH_ID, ops::MSG)
    }

    /// Use `table` (`name` or `schema.name`) instead of the backend's default
    /// ([`DEFAULT_TABLE`](super::DEFAULT_TABLE), or
    /// [`DEFAULT_SQLITE_TABLE`](super::DEFAULT_SQLITE_TABLE) on SQLite).
    ///
    /// # Errors
    /// [`Error::InvalidTable`] when the name is not plain identifiers.
    pub fn with_table(mut self, table: &str) -> Result<Self> {
        self.table = Some(Table::parse(table)?);
        Ok(self)
    }

    /// The transaction type (`saga`, `tcc`, `xa`, `msg`, ...).
    pub fn trans_type(&self) -> &str {
        &self.trans_type
    }

    /// The global transaction id.
    pub fn gid(&self) -> &str {
        &self.gid
    }

    /// The branch id.
    pub fn branch_id(&self) -> &str {
        &self.branch_id
    }

    /// The op of this call (`action`, `compensate`, `try`, `confirm`, `cancel`, ...).
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The next barrier id of this call: "01" for the first local transaction, then "02", ...
    pub(crate) fn next_barrier_id(&mut self) -> String {
        self.barriers_used += 1;
        format!("{:02}", self.barriers_used)
    }
}

/// Branch id of a message's local transaction (DTM's `MsgDoBranch0`).
pub(crate) const MSG_BRANCH_ID: &str = "00";
/// Barrier id of a message's local transaction (DTM's `MsgDoBarrier1`).
pub(crate) const MSG_BARRIER_ID: &str = "01";

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::InvalidBranch(format!("bad percent-encoding in {s:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::InvalidBranch(format!("{s:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_query_decodes_and_requires_all_four() {
        let b =
            Barrier::from_query("?gid=a%2Fb+c&trans_type=saga&branch_id=01&op=action&x=1").unwrap();
        assert_eq!(
            (b.trans_type(), b.gid(), b.branch_id(), b.op()),
            ("saga", "a/b c", "01", "action")
        );
        assert!(Barrier::from_query("gid=g&trans_type=saga&branch_id=01").is_err());
        assert!(Barrier::from_query("gid=%zz&trans_type=saga&branch_id=01&op=try").is_err());
        assert!(Barrier::new("saga", "g".repeat(129), "01", "action").is_err());
    }

    #[test]
    fn barrier_ids_count_per_call_from_01() {
        let mut b = Barrier::new("tcc", "g", "01", "try").unwrap();
        assert_eq!(b.next_barrier_id(), "01");
        assert_eq!(b.next_barrier_id(), "02");
        let mut again = Barrier::new("tcc", "g", "01", "try").unwrap();
        assert_eq!(again.next_barrier_id(), "01");
    }
}
