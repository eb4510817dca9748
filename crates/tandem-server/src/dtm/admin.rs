//! The read-only and housekeeping endpoints: `/api/ping`, `version`, `newGid`, `all`.
//!
//! `all` pages with the store's opaque cursor: DTM's `position` is whatever the previous
//! answer's `next_position` said (empty = the first page; an empty `next_position` = the
//! last page). Bad filters are a 400, never a 500.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};
use tandem_core::{Timestamp, TxKind, TxStatus};
use tandem_store::{ListQuery, LIST_LIMIT_MAX};

use super::reply::{self, DtmResult};
use super::view;
use crate::error::ApiError;
use crate::AppState;

pub async fn ping() -> Json<Value> {
    Json(json!({ "msg": "pong" }))
}

pub async fn version() -> Json<Value> {
    Json(json!({ "version": concat!("tandem-", env!("CARGO_PKG_VERSION")) }))
}

/// A fresh gid from the coordinator's durable identity (`tandem_core::ids::generated_gid`).
pub async fn new_gid(State(s): State<AppState>) -> DtmResult {
    let gid = s.coord.new_gid();
    reply::ok(json!({ "gid": gid, "dtm_result": reply::SUCCESS }))
}

fn bad(m: String) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

fn millis(q: &HashMap<String, String>, key: &str) -> Result<Option<Timestamp>, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(|ms| Some(Timestamp(ms))).map_err(|_| {
            bad(format!(
                "{key} must be milliseconds since the epoch, not {v:?}"
            ))
        }),
    }
}

/// `GET /api/dtmsvr/all?gid=&position=&limit=&status=&transType=&createTimeStart=&createTimeEnd=`
pub async fn all(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> DtmResult {
    if let Some(gid) = q.get("gid").filter(|g| !g.is_empty()) {
        let found: Vec<Value> = s
            .coord
            .get(gid)
            .await?
            .iter()
            .map(view::transaction)
            .collect();
        return reply::ok(json!({ "transactions": found, "next_position": "" }));
    }
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=LIST_LIMIT_MAX).contains(&n) => n,
            _ => return Err(bad(format!("limit must be 1..={LIST_LIMIT_MAX}, not {v:?}")).into()),
        },
    };
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(v) => Some(TxStatus::parse(v).ok_or_else(|| bad(format!("unknown status {v:?}")))?),
    };
    let want_type = q.get("transType").map(String::as_str).unwrap_or("");
    let kind = match want_type {
        "" => None,
        "saga" => Some(TxKind::Saga),
        "msg" => Some(TxKind::Msg),
        "tcc" | "xa" => Some(TxKind::Tcc),
        "workflow" => Some(TxKind::Workflow),
        v => return Err(bad(format!("unknown transType {v:?}")).into()),
    };
    let list = ListQuery {
        status,
        kind,
        created_from: millis(&q, "createTimeStart")?,
        created_to: millis(&q, "createTimeEnd")?,
        cursor: q.get("position").filter(|p| !p.is_empty()).cloned(),
        limit,
        ..ListQuery::default()
    };
    let page = s.coord.list(&list).await?;
    // tcc and xa share a kind; a page filtered to one of them may hold fewer than `limit`.
    let items: Vec<Value> = page
        .items
        .iter()
        .filter(|tx| want_type.is_empty() || view::dtm_trans_type(tx) == want_type)
        .map(view::transaction)
        .collect();
    reply::ok(json!({ "transactions": items, "next_position": page.next.unwrap_or_default() }))
}
