//! `GET /metrics`: the engine's and the log's counters in Prometheus' text exposition format
//! (version 0.0.4), rendered by hand from snapshots; nothing is computed per scrape beyond
//! reading atomics.
//!
//! Names follow Prometheus conventions: counters end in `_total`, durations are in seconds
//! (`_seconds`), label sets are small and fixed (transaction type, outcome, op).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use tandem_engine::metrics::{ALERT_RESULTS, CALL_OUTCOMES, KINDS, OPS, RECOVERY_ACTIONS};
use tandem_store::hist::HistogramSnapshot;

use crate::AppState;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&state).await)
}

/// Renders every metric family.
pub async fn render(state: &AppState) -> String {
    let m = state.coord.metrics().snapshot();
    let stats = state.coord.stats();
    // Counts the store keeps; after a store failure the process is on its way out, and the
    // scrape still answers, with zeros.
    let counts = state.coord.counts().await.unwrap_or_default();
    let mut out = Text::default();

    out.family(
        "tandem_transactions_started_total",
        "counter",
        "Transactions started, by type.",
    );
    for (k, v) in KINDS.iter().zip(&m.started) {
        out.sample(
            "tandem_transactions_started_total",
            &[("type", k.as_str())],
            *v,
        );
    }
    out.family(
        "tandem_transactions_finished_total",
        "counter",
        "Transactions that ended, by type and outcome (succeeded or failed).",
    );
    for (k, by_outcome) in KINDS.iter().zip(&m.finished) {
        for (o, v) in ["succeeded", "failed"].iter().zip(by_outcome) {
            out.sample(
                "tandem_transactions_finished_total",
                &[("type", k.as_str()), ("outcome", o)],
                *v,
            );
        }
    }
    out.family(
        "tandem_transactions_in_flight",
        "gauge",
        "Transactions that have not ended: running in memory or waiting in the store.",
    );
    out.sample("tandem_transactions_in_flight", &[], counts.unfinished);
    out.family(
        "tandem_transactions_running",
        "gauge",
        "Transactions driven in memory right now (bounded by active_max).",
    );
    out.sample("tandem_transactions_running", &[], stats.running as u64);
    out.family(
        "tandem_transactions_parked",
        "gauge",
        "Transactions parked right now, waiting for an operator to retry or stop them.",
    );
    out.sample("tandem_transactions_parked", &[], counts.parked);
    out.family(
        "tandem_heuristic_outcomes_total",
        "counter",
        "Heuristic outcomes found: a participant disagreed with the log (parked and alerted; a human must look).",
    );
    out.sample("tandem_heuristic_outcomes_total", &[], m.heuristic);
    out.family(
        "tandem_transactions_purged_total",
        "counter",
        "Finished transactions deleted by retention.",
    );
    out.sample("tandem_transactions_purged_total", &[], stats.store.purged);
    out.family(
        "tandem_transactions_parked_total",
        "counter",
        "Times a transaction was parked (retry limit reached or stuck), by type.",
    );
    for (k, v) in KINDS.iter().zip(&m.parked_total) {
        out.sample(
            "tandem_transactions_parked_total",
            &[("type", k.as_str())],
            *v,
        );
    }
    out.family(
        "tandem_branch_call_duration_seconds",
        "histogram",
        "Branch call latency, by op and outcome (success, failure, ongoing, error).",
    );
    for (i, op) in OPS.iter().enumerate() {
        for (j, o) in CALL_OUTCOMES.iter().enumerate() {
            let h = &m.calls[i * CALL_OUTCOMES.len() + j];
            if h.count() > 0 {
                out.histogram(
                    "tandem_branch_call_duration_seconds",
                    &[("op", op.as_str()), ("outcome", o)],
                    h,
                    1e-9,
                );
            }
        }
    }
    out.family(
        "tandem_branch_call_retries_total",
        "counter",
        "Branch calls that answered ongoing or could not tell, so another attempt follows.",
    );
    out.sample("tandem_branch_call_retries_total", &[], m.retries);
    out.family(
        "tandem_recovery_actions_total",
        "counter",
        "Recovery actions: transactions resumed from the log on start, in-doubt prepared transactions resolved.",
    );
    for (a, v) in RECOVERY_ACTIONS.iter().zip(&m.recovery) {
        out.sample("tandem_recovery_actions_total", &[("action", a)], *v);
    }
    out.family(
        "tandem_alerts_total",
        "counter",
        "Parked-transaction alerts, by result (sent to the webhook, failed after every attempt, dropped because the queue was full).",
    );
    for (r, v) in ALERT_RESULTS.iter().zip(&m.alerts) {
        out.sample("tandem_alerts_total", &[("result", r)], *v);
    }
    out.family(
        "tandem_log_records_total",
        "counter",
        "Records written to the log.",
    );
    out.sample("tandem_log_records_total", &[], stats.store.records);
    out.family(
        "tandem_log_bytes_total",
        "counter",
        "Bytes appended to the log.",
    );
    out.sample("tandem_log_bytes_total", &[], stats.store.bytes);
    if let Some(h) = state.coord.log_histograms() {
        out.family(
            "tandem_log_batch_records",
            "histogram",
            "Records per log batch (one write, at most one fsync).",
        );
        out.histogram("tandem_log_batch_records", &[], &h.batch_records, 1.0);
        out.family(
            "tandem_log_fsync_duration_seconds",
            "histogram",
            "Duration of the log's fdatasync calls.",
        );
        out.histogram("tandem_log_fsync_duration_seconds", &[], &h.fsync_ns, 1e-9);
    }
    out.0
}

/// The text being built.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
        if labels.is_empty() && extra.is_none() {
            return;
        }
        self.0.push('{');
        for (i, (k, v)) in labels.iter().chain(extra.iter()).enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{k}=\"{}\"", escape(v));
        }
        self.0.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {v}");
    }

    /// Cumulative buckets, `_sum` (scaled to the base unit) and `_count`.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &HistogramSnapshot,
        scale: f64,
    ) {
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = match h.bounds.get(i) {
                Some(b) => format_float(*b as f64 * scale),
                None => "+Inf".to_string(),
            };
            let _ = write!(self.0, "{name}_bucket");
            self.labels(labels, Some(("le", &le)));
            let _ = writeln!(self.0, " {cumulative}");
        }
        let _ = write!(self.0, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", format_float(h.sum as f64 * scale));
        let _ = write!(self.0, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {cumulative}");
    }
}

fn format_float(v: f64) -> String {
    // Shortest round-trip form, e.g. 0.00005, 2.5, 1.
    let s = format!("{v}");
    if s.contains('e') {
        format!("{v:.9}")
    } else {
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
