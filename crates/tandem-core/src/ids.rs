//! Global transaction ids (gids): what a valid one looks like.
//!
//! A gid names a transaction everywhere — in the log, in URLs (`tandem tx show GID`), in XA
//! xids and in participants' barrier tables — so it is restricted to a conservative alphabet
//! and a bounded length that every one of those places can hold.

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

/// Checks that `gid` is non-empty, at most [`GID_LEN_MAX`] bytes, and uses only
/// `[A-Za-z0-9-_.:@]`.
pub fn validate_gid(gid: &str) -> Result<(), GidError> {
    if gid.is_empty() {
        return Err(GidError::Empty);
    }
    if gid.len() > GID_LEN_MAX {
        return Err(GidError::TooLong { len: gid.len() });
    }
    if let Some(ch) = gid
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')))
    {
        return Err(GidError::BadChar { ch });
    }
    Ok(())
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
    }
}
