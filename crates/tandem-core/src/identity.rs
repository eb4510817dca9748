//! A coordinator's durable identity, and the XA transaction ids (xids) built from it.
//!
//! An [`Identity`] — a node name and a random incarnation — is written into a store when the
//! store is created and read back on every start; it never comes from today's configuration.
//! Everything that leaves the process and must be recognised later is built from it: the xid
//! of every XA branch (below), and the gids a node generates.
//!
//! ```text
//!  xid = <node> ':' <incarnation, 8 hex> ':' <gid> ':' <branch id> ':' <nonce, 8 hex>
//!        └───── whose log decides it ─────┘        └ which branch ┘  └ which attempt ┘
//! ```
//!
//! - The **incarnation** is random per store, so two coordinators that were given the same node
//!   name (both default to `tandem`) never produce the same xid, and one never lists the
//!   other's branches as its own.
//! - The **nonce** is random per transaction (per attempt of a gid): if a crash loses every
//!   record of a transaction whose branches were prepared, and the application retries the same
//!   gid, the retry's xids differ from the orphans', so deciding the retry never decides them.
//! - `node` and the branch id contain no `:` and the two hex fields have a fixed width, so the
//!   split back ([`Xid::parse`]) is unambiguous although a gid may contain `:`.

use serde::{Deserialize, Serialize};

/// Longest node name, in bytes.
pub const NODE_LEN_MAX: usize = 32;
/// The node name a store gets when none is given.
pub const NODE_DEFAULT: &str = "tandem";

/// Who a coordinator is: see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// Human-chosen, `[A-Za-z0-9-_.]`, 1..=[`NODE_LEN_MAX`] bytes.
    pub node: String,
    /// Random, chosen when the store was created.
    pub incarnation: u32,
}

/// Why a node name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("node name is empty")]
    Empty,
    #[error("node name {node:?} is {len} bytes; the limit is {NODE_LEN_MAX}")]
    TooLong { node: String, len: usize },
    #[error("node name {node:?} contains {ch:?}; allowed are letters, digits and - _ .")]
    BadChar { node: String, ch: char },
}

/// Checks a node name: 1..=[`NODE_LEN_MAX`] bytes of `[A-Za-z0-9-_.]` (no `:`: it ends the
/// node part of an xid).
pub fn validate_node(node: &str) -> Result<(), NodeError> {
    if node.is_empty() {
        return Err(NodeError::Empty);
    }
    if node.len() > NODE_LEN_MAX {
        return Err(NodeError::TooLong {
            node: node.to_string(),
            len: node.len(),
        });
    }
    if let Some(ch) = node
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NodeError::BadChar {
            node: node.to_string(),
            ch,
        });
    }
    Ok(())
}

impl Identity {
    pub fn new(node: impl Into<String>, incarnation: u32) -> Result<Identity, NodeError> {
        let node = node.into();
        validate_node(&node)?;
        Ok(Identity { node, incarnation })
    }

    /// What every xid of this identity starts with: `node:incarnation:`.
    pub fn xid_prefix(&self) -> String {
        format!("{}:{:08x}:", self.node, self.incarnation)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (incarnation {:08x})", self.node, self.incarnation)
    }
}

/// The parts of an xid made by [`Xid::format`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xid<'a> {
    pub node: &'a str,
    pub incarnation: u32,
    pub gid: &'a str,
    pub branch_id: &'a str,
    pub nonce: u32,
}

impl<'a> Xid<'a> {
    /// The xid of branch `branch_id` of attempt `nonce` of `gid`, decided by `origin`'s log.
    pub fn format(origin: &Identity, gid: &str, branch_id: &str, nonce: u32) -> String {
        format!("{}{gid}:{branch_id}:{nonce:08x}", origin.xid_prefix())
    }

    /// Splits an xid made by [`Xid::format`]; `None` for anything else (another
    /// coordinator's or application's xid).
    pub fn parse(s: &'a str) -> Option<Xid<'a>> {
        let (node, rest) = s.split_once(':')?;
        validate_node(node).ok()?;
        let incarnation = hex8(rest.get(..8)?)?;
        let rest = rest.get(8..)?.strip_prefix(':')?;
        let (rest, nonce) = rest.rsplit_once(':')?;
        let nonce = hex8(nonce)?;
        let (gid, branch_id) = rest.rsplit_once(':')?;
        if gid.is_empty() || branch_id.is_empty() {
            return None;
        }
        Some(Xid {
            node,
            incarnation,
            gid,
            branch_id,
            nonce,
        })
    }

    /// Whether this xid belongs to `identity`.
    pub fn is_of(&self, identity: &Identity) -> bool {
        self.node == identity.node && self.incarnation == identity.incarnation
    }
}

fn hex8(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// The xid a transaction written before identities existed gave its branches
/// (`node:gid:branch`), so that such a transaction, resumed after an upgrade, finishes phase 2
/// on the xids it prepared.
pub fn legacy_xid(node: &str, gid: &str, branch_id: &str) -> String {
    format!("{node}:{gid}:{branch_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xids_round_trip_and_stay_apart() {
        let a = Identity::new("node1", 0xdead_beef).unwrap();
        let x = Xid::format(&a, "g:1-x", "02", 7);
        assert_eq!(x, "node1:deadbeef:g:1-x:02:00000007");
        let p = Xid::parse(&x).unwrap();
        assert_eq!(
            p,
            Xid {
                node: "node1",
                incarnation: 0xdead_beef,
                gid: "g:1-x",
                branch_id: "02",
                nonce: 7
            }
        );
        assert!(p.is_of(&a));
        let b = Identity::new("node1", 1).unwrap();
        assert!(!p.is_of(&b), "same name, other incarnation: not ours");
        assert_ne!(Xid::format(&a, "g", "01", 1), Xid::format(&a, "g", "01", 2));
        for bad in [
            "node1:g:01",
            "other-xid",
            "node1:deadbeef:g:01",
            "node1:deadbeeg:g:01:00000001",
            "no de:deadbeef:g:01:00000001",
            "node1:deadbeef::01:00000001",
            "node1:deadbeef:g::00000001",
            "node1:deadbeef:g:01:0000001",
        ] {
            assert_eq!(Xid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn node_names() {
        assert!(validate_node("tandem-1.a_b").is_ok());
        assert_eq!(validate_node(""), Err(NodeError::Empty));
        assert!(matches!(
            validate_node("a:b"),
            Err(NodeError::BadChar { ch: ':', .. })
        ));
        assert!(matches!(
            validate_node(&"n".repeat(33)),
            Err(NodeError::TooLong { len: 33, .. })
        ));
    }
}
