//! `GET /v1/stats`: the live counters the dashboard polls every second or two — how many
//! transactions are unfinished, parked and running now, and how many started, ended and were
//! parked since the server opened its log (a client turns two readings into a throughput).
//!
//! Invariant: answering costs a handful of atomic loads and one count the store keeps (no
//! scan), so polling it from many dashboards is harmless. The transactions themselves (e.g.
//! which are parked) come from `GET /v1/transactions?parked=true`, which pages.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;

/// Counters since the server opened its log (they restart at 0 with the process), and what
/// is in memory now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct StatsView {
    /// The server's clock when it answered (ms since the epoch).
    pub now_ms: u64,
    /// `node_name`: the prefix of the gids this server generates.
    pub node_name: String,
    /// The server's version.
    pub version: String,
    /// Unfinished transactions: running in memory, or waiting in the store (for a timer, a
    /// retry, a confirm, a check, or an operator).
    pub active: u64,
    /// Transactions driven in memory right now (calls in flight or work due).
    #[serde(default)]
    pub running: u64,
    /// Most transactions running at once (`active_max`); past it, submits get 503 — too much
    /// running, never too much waiting.
    pub active_max: u64,
    /// Transactions begun since start (recovered ones are counted in `recovered`).
    pub started: u64,
    /// Transactions that ended `succeed` since start.
    pub succeeded: u64,
    /// Transactions that ended `failed` since start.
    pub failed: u64,
    /// Times a transaction was parked for an operator since start (a parking event, not
    /// the number parked now).
    pub parked_total: u64,
    /// Transactions parked right now, waiting for an operator.
    pub parked: u64,
    /// Branch calls made since start.
    pub calls: u64,
    /// Of those, calls that were retries.
    pub call_retries: u64,
    /// Unfinished transactions resumed from the log when the server started.
    pub recovered: u64,
    /// Records written to the log since start.
    pub log_records: u64,
    /// fsyncs of the log since start.
    pub log_syncs: u64,
}

/// Live counters (cheap: no scan).
#[utoipa::path(get, path = "/v1/stats", tag = "meta",
    responses((status = 200, description = "The counters now", body = StatsView),
        (status = 503, description = "The store is unavailable", body = crate::v1::view::ErrorBody)))]
pub async fn get_stats(
    State(state): State<AppState>,
) -> Result<Json<StatsView>, crate::error::ApiError> {
    let s = state.coord.stats();
    let counts = state.coord.counts().await?;
    Ok(Json(StatsView {
        now_ms: state.coord.now().0,
        node_name: state.coord.identity().node.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        active: counts.unfinished,
        running: counts.running,
        active_max: state.cfg.active_max as u64,
        started: s.started,
        succeeded: s.succeeded,
        failed: s.failed,
        parked_total: s.parked,
        parked: counts.parked,
        calls: s.calls,
        call_retries: s.call_retries,
        recovered: s.recovered,
        log_records: s.store.records,
        log_syncs: s.store.syncs,
    }))
}
