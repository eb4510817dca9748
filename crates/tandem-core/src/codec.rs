//! The binary encoding of a transaction snapshot, as the log stores it.
//!
//! `[format version: u8][postcard(Transaction)][postcard(Extension)]`. The version byte
//! comes first so a future format can be read beside this one; decoding an unknown version
//! is an error, never a guess. Snapshots are checked ([`Transaction::check`]) when written
//! and again when read.
//!
//! Versions: 1 is the transaction alone; 2 (written by this build) adds the extension
//! after it — fields added since version 1 (a workflow's `result`), so that snapshots of
//! version 1 still decode as they are.

use crate::tx::Transaction;

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 2;

/// Fields added after format version 1, encoded after the transaction.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Extension {
    result: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("empty snapshot")]
    Empty,
    #[error("snapshot format version {0} is not known to this build (it reads {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("snapshot breaks an invariant: {0}")]
    Invariant(String),
}

/// Encodes `tx` after checking its invariants.
pub fn encode(tx: &Transaction) -> Result<Vec<u8>, CodecError> {
    tx.check().map_err(CodecError::Invariant)?;
    // postcard writes a u8 as one byte, so the tuple is exactly `[version][body]`.
    let mut out = postcard::to_allocvec(&(FORMAT_VERSION, tx))?;
    let ext = Extension {
        result: tx.result.clone(),
    };
    Ok(postcard::to_extend(&ext, std::mem::take(&mut out))?)
}

pub fn decode(bytes: &[u8]) -> Result<Transaction, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    let tx = match version {
        1 => postcard::from_bytes(body)?,
        2 => {
            let (mut tx, rest): (Transaction, _) = postcard::take_from_bytes(body)?;
            let ext: Extension = postcard::from_bytes(rest)?;
            tx.result = ext.result;
            tx
        }
        v => return Err(CodecError::UnknownVersion(v)),
    };
    tx.check().map_err(CodecError::Invariant)?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Branch, Op, Options, Timestamp, TxKind};

    #[test]
    fn round_trip_and_version_check() {
        let mut tx = Transaction::new("g1", TxKind::Saga, Options::default(), Timestamp(5));
        tx.branches
            .push(Branch::new("01", Op::Action, "bank-a", b"{}".to_vec()));
        let bytes = encode(&tx).expect("encode");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(&bytes).expect("decode"), tx);
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            decode(&future),
            Err(CodecError::UnknownVersion(99))
        ));
        assert!(matches!(decode(&[]), Err(CodecError::Empty)));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// Guards against losing a workflow's result on restart, and against no longer reading
    /// logs written before the extension existed.
    #[test]
    fn the_extension_round_trips_and_version_1_still_decodes() {
        let mut tx = Transaction::new("w1", TxKind::Workflow, Options::default(), Timestamp(5));
        tx.result = Some("aGk=".into());
        assert_eq!(decode(&encode(&tx).expect("encode")).expect("decode"), tx);
        tx.result = None;
        let v1 = postcard::to_allocvec(&(1u8, &tx)).expect("v1");
        assert_eq!(decode(&v1).expect("v1 decodes"), tx);
    }
}
