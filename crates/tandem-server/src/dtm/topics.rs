//! DTM's topic and KV endpoints over HTTP, and `resetCronTime`.
//!
//! - `subscribe` / `unsubscribe`: `topic`, `url`, `remark` in the query string (DTM's
//!   client and console send GET), or, with POST, in a JSON body;
//! - `DELETE /topic/{name}` (and `POST`, for clients that cannot send DELETE);
//! - `scanKV?cat=topics&position=&limit=` and `queryKV?cat=topics&key=`: the topics as
//!   DTM's KV rows, `{"cat","k","v","version",...}` with `v` the JSON list of subscribers;
//!   Tandem keeps no other category, so any other `cat` lists nothing;
//! - `resetCronTime?timeout=&limit=`: every unfinished transaction whose next attempt is
//!   more than `timeout` seconds away (default 105, DTM's 3 × TimeoutToFail), or that is
//!   parked, is retried now; answers `{"has_remaining","succeed_count"}`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{json, Value};
use tandem_core::TxStatus;
use tandem_store::{ListQuery, Topic, LIST_LIMIT_MAX};

use super::reply::{self, DtmError, DtmResult};
use super::view::time;
use crate::error::ApiError;
use crate::AppState;

/// The query string, overlaid by a JSON object body of strings when one is sent.
fn fields(q: HashMap<String, String>, body: &Bytes) -> Result<HashMap<String, String>, DtmError> {
    let mut out = q;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    let map: HashMap<String, Value> = super::request::parse_json(body)?;
    for (k, v) in map {
        match v {
            Value::String(s) => {
                out.insert(k, s);
            }
            Value::Null => {}
            other => {
                return Err(ApiError::bad_request(
                    "invalid_json",
                    format!("{k} must be a string, not {other}"),
                )
                .into())
            }
        }
    }
    Ok(out)
}

fn get<'a>(m: &'a HashMap<String, String>, k: &str) -> &'a str {
    m.get(k).map(String::as_str).unwrap_or("")
}

pub async fn subscribe(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> DtmResult {
    let f = fields(q, &body)?;
    crate::topics::subscribe(&s, get(&f, "topic"), get(&f, "url"), get(&f, "remark")).await?;
    reply::success()
}

pub async fn unsubscribe(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> DtmResult {
    let f = fields(q, &body)?;
    crate::topics::unsubscribe(&s, get(&f, "topic"), get(&f, "url")).await?;
    reply::success()
}

pub async fn delete_topic(State(s): State<AppState>, Path(name): Path<String>) -> DtmResult {
    crate::topics::delete(&s, &name).await?;
    reply::success()
}

/// A topic as DTM's KV row.
fn kv(t: &Topic) -> Value {
    let subs: Vec<Value> = t
        .subscribers
        .iter()
        .map(|x| json!({"url": x.url, "remark": x.remark}))
        .collect();
    json!({
        "id": t.created_at.0,
        "create_time": time(t.created_at),
        "update_time": time(t.updated_at),
        "cat": "topics",
        "k": t.name,
        "v": Value::Array(subs).to_string(),
        "version": t.version,
    })
}

fn limit(q: &HashMap<String, String>) -> Result<usize, DtmError> {
    match get(q, "limit") {
        "" => Ok(100),
        v => match v.parse::<usize>() {
            Ok(n) if (1..=LIST_LIMIT_MAX).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be 1..={LIST_LIMIT_MAX}, not {v:?}"),
            )
            .into()),
        },
    }
}

fn topics_cat(q: &HashMap<String, String>) -> bool {
    matches!(get(q, "cat"), "" | "topics")
}

pub async fn scan_kv(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> DtmResult {
    let limit = limit(&q)?;
    if !topics_cat(&q) {
        return reply::ok(json!({"kv": [], "next_position": ""}));
    }
    let after = get(&q, "position");
    let all = s.coord.topics().await?;
    let page: Vec<&Topic> = all
        .iter()
        .filter(|t| after.is_empty() || t.name.as_str() > after)
        .take(limit)
        .collect();
    let next = match page.last() {
        Some(t) if page.len() == limit => t.name.clone(),
        _ => String::new(),
    };
    let rows: Vec<Value> = page.into_iter().map(kv).collect();
    reply::ok(json!({"kv": rows, "next_position": next}))
}

pub async fn query_kv(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> DtmResult {
    if !topics_cat(&q) {
        return reply::ok(json!({"kv": []}));
    }
    let rows: Vec<Value> = match get(&q, "key") {
        "" => s.coord.topics().await?.iter().map(kv).collect(),
        key => s.coord.topic(key).await?.iter().map(kv).collect(),
    };
    reply::ok(json!({"kv": rows}))
}

/// DTM's default `timeout` of `resetCronTime`: 3 × its TimeoutToFail, in seconds.
pub const RESET_TIMEOUT_S: u64 = 3 * super::request::DTM_TIMEOUT_TO_FAIL_S;
/// Most unfinished transactions one `resetCronTime` looks at.
pub const RESET_SCAN_MAX: usize = 10_000;

pub async fn reset_cron_time(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> DtmResult {
    let limit = limit(&q)?;
    let timeout_s = match get(&q, "timeout") {
        "" => RESET_TIMEOUT_S,
        v => v.parse::<u64>().map_err(|_| {
            DtmError(ApiError::bad_request(
                "invalid_query",
                format!("timeout must be seconds, not {v:?}"),
            ))
        })?,
    };
    let due_after = s.coord.now().plus_ms(timeout_s.saturating_mul(1000));
    let (mut picked, mut scanned, mut more) = (Vec::new(), 0usize, false);
    'scan: for status in [TxStatus::Submitted, TxStatus::Aborting, TxStatus::Prepared] {
        let mut cursor = None;
        loop {
            let page = s
                .coord
                .list(&ListQuery {
                    status: Some(status),
                    cursor: cursor.take(),
                    limit: LIST_LIMIT_MAX,
                    ..ListQuery::default()
                })
                .await?;
            for tx in &page.items {
                scanned += 1;
                let waiting_long = tx.next_wake.is_some_and(|w| w > due_after);
                // A prepared transaction waits for its client; only one whose calls are
                // failing (a retry is pending) is worth hurrying.
                let retrying =
                    status != TxStatus::Prepared || tx.branches.iter().any(|b| b.streak > 0);
                if tx.parked.is_some() || (waiting_long && retrying) {
                    if picked.len() == limit {
                        more = true;
                        break 'scan;
                    }
                    picked.push(tx.gid.clone());
                }
            }
            if scanned >= RESET_SCAN_MAX {
                more = page.next.is_some() || status != TxStatus::Prepared;
                break 'scan;
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    let mut done = 0u64;
    for gid in picked {
        // One that ended meanwhile is simply not counted.
        if s.coord.retry(&gid, "resetCronTime (DTM API)").await.is_ok() {
            done += 1;
        }
    }
    reply::ok(json!({"has_remaining": more, "succeed_count": done, "dtm_result": reply::SUCCESS}))
}
