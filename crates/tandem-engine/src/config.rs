//! Engine settings, with the limits every queue and call is bounded by.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Transactions held in memory at once (running, waiting, parked). Past it, new ones are
    /// refused with [`crate::EngineError::Busy`].
    pub active_max: usize,
    /// Branch calls in flight at once, across all transactions.
    pub calls_in_flight_max: usize,
    /// Per-call timeout when the transaction does not set `request_timeout_ms`.
    pub request_timeout: Duration,
    /// Prefix every XA/2PC gid this coordinator owns carries (in-doubt recovery matches on it).
    pub node_name: String,
    /// Park a transaction that stays in one status (and unparked) this long: a stall an
    /// operator should see, not a silent loop. `None` turns the check off.
    pub stuck_after: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            active_max: 100_000,
            calls_in_flight_max: 4096,
            request_timeout: Duration::from_secs(30),
            node_name: "tandem".into(),
            stuck_after: Some(Duration::from_secs(3600)),
        }
    }
}
