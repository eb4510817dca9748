//! What a caller waiting for a transaction hears: where it ended, or that it was parked.

use tandem_core::{Transaction, TxStatus};

/// What a finished (or parked) transaction tells whoever waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub gid: String,
    pub status: TxStatus,
    /// Set when the transaction stopped making progress and waits for an operator.
    pub parked: Option<String>,
    pub fail_reason: Option<String>,
    /// Set when a participant disagreed with the log (see `Transaction::heuristic`).
    pub heuristic: Option<String>,
}

impl Outcome {
    pub(crate) fn of(tx: &Transaction) -> Outcome {
        Outcome {
            gid: tx.gid.clone(),
            status: tx.status,
            parked: tx.parked.clone(),
            heuristic: tx.heuristic.clone(),
            fail_reason: tx.fail_reason.clone(),
        }
    }
    pub fn succeeded(&self) -> bool {
        self.status == TxStatus::Succeeded
    }
}
