//! The alert webhook: every parked transaction becomes one JSON POST to the configured URL,
//! retried with backoff up to `alert_attempts_max` attempts, then given up.
//!
//! Bounded on every side: alerts wait in the engine's broadcast queue (1024); a webhook too
//! slow to keep up loses the oldest (counted as `dropped`); each attempt has a 10 s timeout;
//! backoff doubles from 1 s up to 30 s. Outcomes are counted in `tandem_alerts_total`.
//!
//! Body: `{"event":"transaction_parked","gid","type","status","reason","parked_at_ms","node",
//! "heuristic"}`; `event` is `heuristic_outcome` (and `heuristic` true) when a participant
//! disagrees with the log — the alert that must wake someone.

use std::sync::Arc;
use std::time::Duration;

use tandem_engine::{Coordinator, ParkedAlert};
use tokio::sync::broadcast::error::RecvError;

use crate::http_transport::HttpTransport;

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Indexes into `tandem_engine::metrics::ALERT_RESULTS`.
const SENT: usize = 0;
const FAILED: usize = 1;
const DROPPED: usize = 2;

/// The JSON an alert is sent as.
pub fn body(alert: &ParkedAlert, node: &str) -> serde_json::Value {
    let event = if alert.heuristic {
        "heuristic_outcome"
    } else {
        "transaction_parked"
    };
    serde_json::json!({
        "event": event,
        "heuristic": alert.heuristic,
        "gid": alert.gid,
        "type": alert.kind.as_str(),
        "status": alert.status.as_str(),
        "reason": alert.reason,
        "parked_at_ms": alert.at.0,
        "node": node,
    })
}

/// Starts the sender; it runs until the coordinator is dropped.
pub fn spawn(coord: &Coordinator, url: String, attempts_max: u32, node: String) {
    let mut rx = coord.subscribe_alerts();
    let metrics = Arc::clone(coord.metrics());
    let http = HttpTransport::new();
    tokio::spawn(async move {
        loop {
            let alert = match rx.recv().await {
                Ok(a) => a,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "alert webhook too slow: oldest alerts dropped");
                    for _ in 0..n {
                        metrics.alert(DROPPED);
                    }
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let payload = body(&alert, &node).to_string().into_bytes();
            let mut backoff = BACKOFF_FIRST;
            let mut sent = false;
            for attempt in 1..=attempts_max.max(1) {
                match http
                    .post_json(&url, payload.clone(), &[], ATTEMPT_TIMEOUT)
                    .await
                {
                    Ok(code) if (200..300).contains(&code) => {
                        sent = true;
                        break;
                    }
                    Ok(code) => {
                        tracing::warn!(gid = %alert.gid, attempt, code, "alert webhook refused the alert")
                    }
                    Err(e) => {
                        tracing::warn!(gid = %alert.gid, attempt, error = %e, "alert webhook unreachable")
                    }
                }
                if attempt < attempts_max {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            if sent {
                metrics.alert(SENT);
            } else {
                tracing::error!(gid = %alert.gid, attempts = attempts_max, "alert not delivered; giving up");
                metrics.alert(FAILED);
            }
        }
    });
}
