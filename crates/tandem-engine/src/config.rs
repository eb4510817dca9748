//! Engine settings, with the limits every queue and call is bounded by.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Transactions driven in memory at once (calls in flight or work due; a transaction that
    /// only waits lives in the store). Past it, new ones are refused with
    /// [`crate::EngineError::Busy`]: too much running, never too much waiting.
    pub active_max: usize,
    /// Branch calls in flight at once, across all transactions.
    pub calls_in_flight_max: usize,
    /// Per-call timeout when the transaction does not set `request_timeout_ms`.
    pub request_timeout: Duration,
    /// The node name this coordinator must have. A new store records it (with a random
    /// incarnation) as its identity; an existing store created under another name refuses to
    /// open. `None`: whatever the store holds, or `tandem` for a new store.
    pub node_name: Option<String>,
    /// What one transaction may be (branches, payload bytes); see `tandem_core::spec`.
    pub limits: tandem_core::Limits,
    /// Park a transaction that stays in one status (and unparked) this long: a stall an
    /// operator should see, not a silent loop. `None` turns the check off.
    pub stuck_after: Option<Duration>,
    /// How often the coordinator checks its store's health between writes (a store can fail
    /// in the background); fail-stop follows within this long.
    pub health_poll: Duration,
    /// A driver with nothing to do for this long leaves memory; its transaction waits in the
    /// store until its next timer or an event.
    pub evict_after: Duration,
    /// The scheduler looks at the store at least this often (a shared store: for other nodes'
    /// work; any store: for what it could not see coming).
    pub scheduler_poll: Duration,
    /// How many due transactions one look claims at most.
    pub claim_batch: usize,
    /// Finished transactions are deleted this long after they ended; `None` keeps them.
    pub retention: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            active_max: 100_000,
            calls_in_flight_max: 4096,
            request_timeout: Duration::from_secs(30),
            node_name: None,
            limits: tandem_core::Limits::default(),
            stuck_after: Some(Duration::from_secs(3600)),
            health_poll: Duration::from_millis(100),
            evict_after: Duration::from_secs(1),
            scheduler_poll: Duration::from_secs(1),
            claim_batch: 256,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}
