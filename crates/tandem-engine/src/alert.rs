//! Alerts: what the engine tells operators the moment a transaction is parked (past its
//! retry limit, stuck in one status beyond `stuck_after`, or on a heuristic outcome — a
//! participant that disagrees with the log), or in-doubt recovery finds such a disagreement.
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
    /// A heuristic outcome: the log and a participant disagree; a human must look.
    pub heuristic: bool,
    pub at: Timestamp,
}
