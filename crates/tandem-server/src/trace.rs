//! W3C trace context across services: one transaction is one trace.
//!
//! The `traceparent` of the request that creates a transaction is kept with it (as its
//! `traceparent` branch header, so it survives restarts) and continues into every branch
//! call: each call carries the same trace id and a fresh span id, whose parent is the
//! transaction's span. The transaction's span id is derived from its gid, so calls made
//! after a crash still hang under the same span. Without an incoming `traceparent` the trace
//! id is derived from the gid. Spans are exported by [`crate::otlp`] when configured.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tandem_core::Transaction;

tokio::task_local! {
    /// The valid `traceparent` of the request being handled, if it had one.
    static INCOMING: Option<String>;
}

/// A parsed `traceparent`: version 00, trace id, parent span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
}

impl TraceParent {
    /// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); all-zero ids are invalid.
    pub fn parse(v: &str) -> Option<TraceParent> {
        let mut parts = v.trim().split('-');
        let (ver, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if ver != "00"
            || parts.next().is_some()
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceParent { trace_id, span_id })
    }

    pub fn header(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }
}

/// Middleware: remembers the request's `traceparent` while its handler runs.
pub async fn capture(req: Request, next: Next) -> Response {
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| TraceParent::parse(v).is_some())
        .map(str::to_string);
    INCOMING.scope(incoming, next.run(req)).await
}

/// Runs `f` with `incoming` as the request's `traceparent` (for APIs that are not axum
/// routes, such as gRPC, whose metadata carries it). An invalid value is ignored.
pub async fn scoped<F: std::future::Future>(incoming: Option<String>, f: F) -> F::Output {
    let incoming = incoming.filter(|v| TraceParent::parse(v).is_some());
    INCOMING.scope(incoming, f).await
}

/// Keeps the creating request's `traceparent` with the transaction (unless the client set
/// one in its branch headers itself).
pub fn adopt(mut tx: Transaction) -> Transaction {
    let incoming = INCOMING.try_with(|v| v.clone()).ok().flatten();
    if let Some(tp) = incoming {
        let has = tx
            .options
            .branch_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("traceparent"));
        if !has {
            tx.options.branch_headers.push(("traceparent".into(), tp));
        }
    }
    tx
}

/// The `traceparent` a transaction was created with, if any.
pub fn submitted(headers: &[(String, String)]) -> Option<TraceParent> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("traceparent"))
        .and_then(|(_, v)| TraceParent::parse(v))
}

/// FNV-1a over `s`, seeded: stable ids derived from names.
pub(crate) fn fnv(seed: u64, s: &str) -> u64 {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in s.bytes() {
        x ^= u64::from(b);
        x = x.wrapping_mul(0x0100_0000_01b3);
    }
    x
}

/// The trace a transaction belongs to: the submitter's, else one derived from the gid.
pub fn trace_id(gid: &str, headers: &[(String, String)]) -> u128 {
    match submitted(headers) {
        Some(tp) => tp.trace_id,
        None => (u128::from(fnv(1, gid)) << 64 | u128::from(fnv(2, gid))).max(1),
    }
}

/// The transaction's own span id (stable across restarts).
pub fn tx_span_id(gid: &str) -> u64 {
    fnv(4, gid) | 1
}

/// A fresh span id (never 0).
pub fn new_span_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    // splitmix64 over a shared counter.
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_valid_traceparents() {
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(tp.span_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(
            tp.header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert_ne!(new_span_id(), new_span_id());
    }
}
