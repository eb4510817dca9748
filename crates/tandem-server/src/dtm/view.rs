//! How a transaction looks through DTM's eyes: the `transaction` and `branches` objects of
//! `query` and `all`, with DTM's field names (its `trans_global` / `trans_branch_op` rows).
//!
//! - Times are RFC 3339 in UTC with milliseconds (Go marshals `time.Time` the same way).
//! - `bin_data` is base64, as Go marshals a `[]byte`.
//! - DTM knows three branch statuses; ours map onto them (`running`, `skipped` and
//!   `pending` read `prepared`), and the precise one is added as `tandem_status`.
//! - Saga branches are listed compensate-then-action per step, as DTM stores them; the
//!   msg query-prepared check and a workflow's callback are not DTM branches and are left
//!   out (a workflow's recorded steps are).
//! - Empty values are omitted as DTM's `omitempty` does; `parked` is a Tandem addition.

use serde_json::{json, Map, Value};
use tandem_core::{Branch, BranchStatus, Op, Timestamp, Transaction, TxKind, TxStatus};

use super::wire::{op_name, trans_type};

/// DTM's `trans_type` of a transaction: a `Tcc` whose branches are commit/rollback is xa.
pub fn dtm_trans_type(tx: &Transaction) -> &'static str {
    match tx.kind {
        TxKind::Tcc
            if tx
                .branches
                .iter()
                .any(|b| matches!(b.op, Op::Commit | Op::Rollback)) =>
        {
            "xa"
        }
        kind => trans_type(kind, Op::Action),
    }
}

pub fn transaction(tx: &Transaction) -> Value {
    let o = &tx.options;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        let empty = match &v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_u64() == Some(0),
            Value::Bool(b) => !b,
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty || k == "concurrent" || k == "id" {
            m.insert(k.to_string(), v);
        }
    };
    let secs = |ms: Option<u64>| ms.map(|v| v / 1000).unwrap_or(0);
    let headers: Map<String, Value> = o
        .branch_headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let opts = json!({
        "wait_result": o.wait_result,
        "timeout_to_fail": secs(o.timeout_to_fail_ms),
        "request_timeout": secs(o.request_timeout_ms),
        "retry_interval": o.retry_interval_ms / 1000,
        "branch_headers": headers,
        "concurrent": o.concurrent,
        "retry_limit": o.retry_limit,
    });
    put("id", json!(tx.created_at.0));
    put("create_time", time(tx.created_at));
    put("update_time", time(tx.updated_at));
    put("gid", json!(tx.gid));
    put("trans_type", json!(dtm_trans_type(tx)));
    let (steps, payloads) = steps_and_payloads(tx);
    put("steps", steps);
    put("payloads", payloads);
    put("status", json!(tx.status.as_str()));
    if matches!(tx.kind, TxKind::Msg | TxKind::Workflow) {
        put("query_prepared", json!(tx.query_prepared));
    }
    put("protocol", json!(protocol(tx)));
    if tx.status == TxStatus::Succeeded {
        put(
            "finish_time",
            tx.finished_at.map(time).unwrap_or(Value::Null),
        );
    }
    if tx.status == TxStatus::Failed {
        put(
            "rollback_time",
            tx.finished_at.map(time).unwrap_or(Value::Null),
        );
    }
    put("rollback_reason", json!(tx.fail_reason));
    put("result", json!(tx.result));
    put("options", json!(opts.to_string()));
    put("custom_data", json!(tx.custom_data));
    put("next_cron_interval", json!(o.retry_interval_ms / 1000));
    put(
        "next_cron_time",
        tx.next_wake.map(time).unwrap_or(Value::Null),
    );
    for (k, v) in opts.as_object().into_iter().flatten() {
        put(k, v.clone());
    }
    put("parked", json!(tx.parked));
    Value::Object(m)
}

/// `grpc` when the transaction calls gRPC participants (as one submitted over gRPC does),
/// else `http`.
fn protocol(tx: &Transaction) -> &'static str {
    let grpc = |t: &str| matches!(crate::target::parse(t), Ok(crate::target::Target::Grpc(_)));
    if tx.branches.iter().any(|b| grpc(&b.target)) {
        "grpc"
    } else {
        "http"
    }
}

/// A saga's or msg's `steps` and `payloads` as the client sent them (DTM's default store,
/// boltdb, keeps and shows them); `Null` for tcc/xa, whose branches are registered.
fn steps_and_payloads(tx: &Transaction) -> (Value, Value) {
    let text = |b: &Branch| Value::String(String::from_utf8_lossy(&b.payload).into_owned());
    let (steps, payloads): (Vec<Value>, Vec<Value>) = match tx.kind {
        TxKind::Saga => tx
            .branches
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| {
                let step = json!({"action": p[0].target, "compensate": p[1].target});
                (step, text(&p[0]))
            })
            .unzip(),
        TxKind::Msg => tx
            .branches
            .iter()
            .filter(|b| b.op == Op::Msg)
            .map(|b| (json!({"action": b.target}), text(b)))
            .unzip(),
        _ => return (Value::Null, Value::Null),
    };
    (Value::Array(steps), Value::Array(payloads))
}

/// The branches in DTM's order and shape.
pub fn branches(tx: &Transaction) -> Vec<Value> {
    let mut order: Vec<&Branch> = tx
        .branches
        .iter()
        .filter(|b| !matches!(b.op, Op::QueryPrepared | Op::Workflow))
        .collect();
    if tx.kind == TxKind::Saga {
        for pair in order.chunks_mut(2) {
            pair.reverse();
        }
    }
    order
        .into_iter()
        .enumerate()
        .map(|(i, b)| branch(tx, i, b))
        .collect()
}

fn branch(tx: &Transaction, i: usize, b: &Branch) -> Value {
    let last = b.recent.last().map(|a| a.at);
    let status = match b.status {
        BranchStatus::Succeeded => "succeed",
        BranchStatus::Failed => "failed",
        _ => "prepared",
    };
    let mut v = json!({
        "id": i + 1,
        "create_time": time(tx.created_at),
        "update_time": time(last.unwrap_or(tx.created_at)),
        "gid": tx.gid,
        "url": b.target,
        "bin_data": base64(&b.payload),
        "branch_id": b.branch_id,
        // A workflow's steps keep the op the client named; other branches use DTM's names.
        "op": if tx.kind == TxKind::Workflow { b.op.as_str() } else { op_name(b.op) },
        "status": status,
        "tandem_status": b.status.as_str(),
    });
    if matches!(b.status, BranchStatus::Succeeded | BranchStatus::Failed) {
        if let Some(t) = last {
            v["finish_time"] = time(t);
        }
    }
    v
}

/// RFC 3339, UTC, milliseconds: `2026-11-26T13:58:05.123Z`.
pub fn time(t: Timestamp) -> Value {
    let ms = t.as_millis();
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    Value::String(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    ))
}

/// Decodes standard base64 (padding optional, as Go writes it and as clients may trim
/// it); `None` when `s` is not base64.
pub fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

/// Standard base64 with padding (how Go's encoding/json writes `[]byte`).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_base64() {
        assert_eq!(time(Timestamp(0)), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            time(Timestamp(1_709_251_199_007)),
            json!("2024-02-29T23:59:59.007Z")
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        for data in [&b""[..], b"f", b"fo", b"foo", b"\x00\xff\x10binary"] {
            assert_eq!(unbase64(&base64(data)).as_deref(), Some(data));
        }
        assert_eq!(
            unbase64("Zm8"),
            Some(b"fo".to_vec()),
            "padding may be trimmed"
        );
        assert_eq!(unbase64("Z"), None);
        assert_eq!(unbase64("Zm9v!"), None);
    }
}
