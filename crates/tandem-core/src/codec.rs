//! The binary encoding of a transaction snapshot, as the log stores it.
//!
//! `[format version: u8][postcard(Transaction)]`. The version byte comes first so a future
//! format can be read beside this one; decoding an unknown version is an error, never a
//! guess. Snapshots are checked ([`Transaction::check`]) when written and again when read.

use crate::tx::Transaction;

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 1;

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
    Ok(postcard::to_allocvec(&(FORMAT_VERSION, tx))?)
}

pub fn decode(bytes: &[u8]) -> Result<Transaction, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let tx: Transaction = postcard::from_bytes(body)?;
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
}
