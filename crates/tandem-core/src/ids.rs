//! Global transaction ids (gids) and branch ids: what a valid one looks like, and the gids a
//! node generates.
//!
//! A gid names a transaction everywhere — in the log, in URLs (`tandem tx show GID`), in XA
//! xids and in participants' barrier tables — so it is restricted to a conservative alphabet
//! and a bounded length that every one of those places can hold. This is the only place these
//! rules are written: the store, the server and the participant helpers call it.

use crate::identity::Identity;
use crate::tx::Timestamp;

/// Longest gid accepted, in bytes (DTM's barrier table holds 128).
pub const GID_LEN_MAX: usize = 128;

/// Why a gid was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GidError {
    #[error("gid is empty")]
    Empty,
    #[error("gid is {len} bytes long; the limit is {GID_LEN_MAX}")]
    TooLong { len: usize },
    #[error("gid contains {ch:?}; allowed are letters, digits and - _ . : @")]
    BadChar { ch: char },
}

/// Whether `c` may appear in a gid (and so in an xid): `[A-Za-z0-9-_.:@]`. None of them needs
/// quoting in a URL path, a query value or an SQL string literal.
pub fn is_gid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')
}

/// Checks that `gid` is non-empty, at most [`GID_LEN_MAX`] bytes, and uses only
/// `[A-Za-z0-9-_.:@]`.
pub fn validate_gid(gid: &str) -> Result<(), GidError> {
    if gid.is_empty() {
        return Err(GidError::Empty);
    }
    if gid.len() > GID_LEN_MAX {
        return Err(GidError::TooLong { len: gid.len() });
    }
    if let Some(ch) = gid.chars().find(|c| !is_gid_char(*c)) {
        return Err(GidError::BadChar { ch });
    }
    Ok(())
}

/// Longest branch id, in bytes.
pub const BRANCH_ID_LEN_MAX: usize = 64;

/// Why a branch id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("branch_id {id:?} must be 1..={BRANCH_ID_LEN_MAX} bytes of letters, digits, - _ .")]
pub struct BranchIdError {
    pub id: String,
}

/// Checks a caller-chosen branch id (TCC, XA registrations): 1..=[`BRANCH_ID_LEN_MAX`] bytes
/// of `[A-Za-z0-9-_.]` (no `:`, which ends the branch part of an xid).
pub fn validate_branch_id(id: &str) -> Result<(), BranchIdError> {
    let ok = !id.is_empty()
        && id.len() <= BRANCH_ID_LEN_MAX
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(BranchIdError { id: id.to_string() })
    }
}

/// The id of the `k`th (0-based) branch the coordinator lays out itself, as DTM numbers them:
/// "01", "02", … "99", "100", …
pub fn branch_id(k: usize) -> String {
    format!("{:02}", k + 1)
}

/// A gid the node generates: `<node>-<ms, hex>-<session, 4 hex>-<counter, hex>`. The node name
/// comes from the store's [`Identity`]; `session` is random per process start and `counter`
/// counts within it, so two processes (or two nodes given the same name) do not collide even
/// within one millisecond. Always a valid gid (node names are at most 32 bytes).
pub fn generated_gid(identity: &Identity, now: Timestamp, session: u16, counter: u64) -> String {
    format!("{}-{:x}-{session:04x}-{counter:x}", identity.node, now.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids() {
        assert_eq!(validate_gid("abc-1_2.3:4@x"), Ok(()));
        assert_eq!(validate_gid(""), Err(GidError::Empty));
        assert_eq!(
            validate_gid(&"a".repeat(129)),
            Err(GidError::TooLong { len: 129 })
        );
        assert_eq!(validate_gid("a b"), Err(GidError::BadChar { ch: ' ' }));
        assert_eq!(validate_gid("a/b"), Err(GidError::BadChar { ch: '/' }));
        let id = Identity::new(crate::identity::NODE_DEFAULT, 1).unwrap();
        let long = Identity::new("n".repeat(32), 1).unwrap();
        for (who, counter) in [(&id, 0), (&long, u64::MAX)] {
            let g = generated_gid(who, Timestamp(u64::MAX), u16::MAX, counter);
            assert_eq!(validate_gid(&g), Ok(()), "{g}");
        }
    }

    #[test]
    fn branch_ids() {
        assert_eq!(branch_id(0), "01");
        assert_eq!(branch_id(99), "100");
        assert!(validate_branch_id("a-1_b.c").is_ok());
        for bad in ["", "a:b", "a b", &"x".repeat(65)] {
            assert!(validate_branch_id(bad).is_err(), "{bad}");
        }
    }
}
