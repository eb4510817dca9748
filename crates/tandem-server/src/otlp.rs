//! Span export over OTLP/HTTP with the JSON encoding (`POST {endpoint}/v1/traces`), which
//! every OpenTelemetry collector accepts on port 4318. Written here rather than pulled in as
//! the OpenTelemetry SDK: the server makes exactly two kinds of span (a transaction, a
//! branch call) and already has an HTTP client.
//!
//! Bounded: spans wait in a queue of [`QUEUE_MAX`] (a full queue drops the new span and
//! counts it); a batch holds at most [`BATCH_MAX`] spans and leaves at least once a second;
//! each batch gets [`ATTEMPTS`] tries with a 5 s timeout, then is dropped (and counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::http_transport::HttpTransport;

pub const QUEUE_MAX: usize = 8192;
pub const BATCH_MAX: usize = 512;
pub const ATTEMPTS: u32 = 3;

/// OTLP span kinds.
pub const KIND_INTERNAL: u8 = 1;
pub const KIND_CLIENT: u8 = 3;

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent: Option<u64>,
    pub name: String,
    pub kind: u8,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(&'static str, Value)>,
    pub error: Option<String>,
}

/// Where spans go; cheap to clone.
#[derive(Clone, Debug)]
pub struct Exporter {
    tx: mpsc::Sender<Span>,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    /// Starts the batching task that POSTs to `endpoint` (e.g. `http://127.0.0.1:4318`).
    pub fn spawn(endpoint: &str, service_name: &str) -> Exporter {
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        let dropped = Arc::new(AtomicU64::new(0));
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        tokio::spawn(run(rx, url, service_name.to_string(), Arc::clone(&dropped)));
        Exporter { tx, dropped }
    }

    /// Queues `span`; never waits (a full queue drops it).
    pub fn export(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans dropped so far (queue full, or a batch that could not be delivered).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn run(mut rx: mpsc::Receiver<Span>, url: String, service: String, dropped: Arc<AtomicU64>) {
    let http = HttpTransport::new();
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        let first = match rx.recv().await {
            Some(s) => s,
            None => return,
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let body = encode(&service, &batch).to_string().into_bytes();
        let mut delivered = false;
        for attempt in 1..=ATTEMPTS {
            match http
                .post_json(&url, body.clone(), &[], Duration::from_secs(5))
                .await
            {
                Ok(code) if (200..300).contains(&code) => {
                    delivered = true;
                    break;
                }
                Ok(code) => tracing::debug!(code, attempt, "OTLP collector refused spans"),
                Err(e) => tracing::debug!(error = %e, attempt, "OTLP collector unreachable"),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        if !delivered {
            tracing::warn!(spans = batch.len(), %url, "spans not exported; dropped");
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        batch.clear();
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans`.
pub fn encode(service: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut v = json!({
                "traceId": format!("{:032x}", s.trace_id),
                "spanId": format!("{:016x}", s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.max(s.start_ns).to_string(),
                "attributes": s.attrs.iter().map(|(k, v)| json!({"key": k, "value": any_value(v)})).collect::<Vec<_>>(),
                "status": match &s.error {
                    None => json!({"code": 1}),
                    Some(m) => json!({"code": 2, "message": m}),
                },
            });
            if let Some(p) = s.parent {
                v["parentSpanId"] = json!(format!("{p:016x}"));
            }
            v
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "tandem", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
        }]
    })
}

fn any_value(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    }
}
