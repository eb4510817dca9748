//! Alerts: what the engine tells operators the moment a transaction is parked (past its
//! retry limit, or stuck in one status beyond `stuck_after`).
//!
//! The engine only publishes on a bounded broadcast channel ([`ALERTS_QUEUE_MAX`]); it
//! never waits for a listener. Delivering alerts anywhere (the server's webhook) is the
//! listener's job; a listener that falls behind loses the oldest alerts and can count them.

use tandem_core::{Timestamp, TxKind, TxStatus};

/// Alerts buffered for each slow listener before the oldest are dropped.
pub const ALERTS_QUEUE_MAX: usize = 1024;

/// A transaction stopped making progress and waits for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedAlert {
    pub gid: String,
    pub kind: TxKind,
    pub status: TxStatus,
    pub reason: String,
    pub at: Timestamp,
}
