//! `GET /v1/stats`: the live counters the dashboard polls every second or two — what is in
//! memory now, and how many transactions started, ended and were parked since the server
//! opened its log (a client turns two readings into a throughput).
//!
//! Invariant: answering costs a handful of atomic loads, never a store read, so polling it
//! from many dashboards is harmless. The transactions themselves (e.g. which are parked) come
//! from `GET /v1/transactions?parked=true`, which pages.

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
    /// Unfinished transactions held in memory: running, waiting for a retry, or parked.
    pub active: u64,
    /// Most transactions held in memory at once (`active_max`); past it, submits get 503.
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

/// Live counters (cheap: no store read).
#[utoipa::path(get, path = "/v1/stats", tag = "meta",
    responses((status = 200, description = "The counters now", body = StatsView)))]
pub async fn get_stats(State(state): State<AppState>) -> Json<StatsView> {
    let s = state.coord.stats();
    Json(StatsView {
        now_ms: state.coord.now().0,
        node_name: state.coord.identity().node.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        active: s.active as u64,
        active_max: state.cfg.active_max as u64,
        started: s.started,
        succeeded: s.succeeded,
        failed: s.failed,
        parked_total: s.parked,
        parked: state.coord.metrics().parked_now(),
        calls: s.calls,
        call_retries: s.call_retries,
        recovered: s.recovered,
        log_records: s.store.records,
        log_syncs: s.store.syncs,
    })
}
