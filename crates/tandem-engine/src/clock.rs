//! The engine's only source of time, injected so a simulation can drive it.
//!
//! State machines get `now` from here; timers sleep with tokio's clock (which a simulation
//! or `tokio::time::pause` controls the same way).

use std::time::{SystemTime, UNIX_EPOCH};

use tandem_core::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}
