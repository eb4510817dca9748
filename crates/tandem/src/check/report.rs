//! How a check run is reported: one line per schedule as it finishes (`ok`, or
//! `VIOLATION: expected …, observed …` with the gids to look up), a summary table, and the
//! closing `N passed, N failed` line; or everything as one JSON document with `--json`.

use serde_json::{json, Value};

use super::schedules::{Baseline, Outcome, Verdict};
use super::spec::Spec;

/// Width of the schedule-name column.
const NAME_WIDTH: usize = 26;

/// The line printed when a schedule finishes.
pub fn line(o: &Outcome) -> String {
    let gids = o.gids.join(", ");
    let mut l = match &o.verdict {
        Verdict::Ok => format!("{:<NAME_WIDTH$} ok", o.name),
        Verdict::Violation { expected, observed } => format!(
            "{:<NAME_WIDTH$} VIOLATION: expected {expected}, observed {observed} (gid {gids}) — {}",
            o.name, o.description
        ),
        Verdict::Skipped(why) => format!("{:<NAME_WIDTH$} skipped: {why}", o.name),
    };
    if let Some(n) = &o.note {
        l.push_str(&format!("  [{n}]"));
    }
    l
}

pub fn header(spec: &Spec, effect_by: &str) -> String {
    let eps: Vec<String> = spec
        .endpoints
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!(
        "tandem check participant: {} over HTTP ({}); effect read by {effect_by}",
        spec.protocol.name(),
        eps.join(", ")
    )
}

pub fn baseline(spec: &Spec, b: &Baseline) -> String {
    use super::spec::Role;
    let p = spec.protocol;
    let mut l = format!(
        "{:<NAME_WIDTH$} nothing = {}, one {} = {}",
        "baseline",
        b.zero,
        p.op_name(Role::First),
        b.first
    );
    if let Some(s) = &b.second {
        l.push_str(&format!(
            ", {} + {} = {s}",
            p.op_name(Role::First),
            p.op_name(Role::Second)
        ));
    }
    l.push_str(&format!(" (gids {})", b.gids.join(", ")));
    l
}

/// (passed, failed, skipped).
pub fn counts(outcomes: &[Outcome]) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for o in outcomes {
        match o.verdict {
            Verdict::Ok => c.0 += 1,
            Verdict::Violation { .. } => c.1 += 1,
            Verdict::Skipped(_) => c.2 += 1,
        }
    }
    c
}

/// The closing line.
pub fn totals(outcomes: &[Outcome]) -> String {
    let (passed, failed, skipped) = counts(outcomes);
    if skipped > 0 {
        format!("{passed} passed, {failed} failed, {skipped} skipped")
    } else {
        format!("{passed} passed, {failed} failed")
    }
}

pub fn table(outcomes: &[Outcome]) -> String {
    let mut t = format!(
        "{:<NAME_WIDTH$} {:<9} {:>5} {:>6}  GIDS\n",
        "SCHEDULE", "RESULT", "CALLS", "MS"
    );
    for o in outcomes {
        let result = match o.verdict {
            Verdict::Ok => "ok",
            Verdict::Violation { .. } => "VIOLATION",
            Verdict::Skipped(_) => "skipped",
        };
        t.push_str(&format!(
            "{:<NAME_WIDTH$} {:<9} {:>5} {:>6}  {}\n",
            o.name,
            result,
            o.calls,
            o.ms,
            o.gids.join(", ")
        ));
    }
    t
}

pub fn json(spec: &Spec, effect_by: &str, b: &Baseline, outcomes: &[Outcome], ms: u64) -> Value {
    let (passed, failed, skipped) = counts(outcomes);
    let schedules: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let (result, expected, observed, reason) = match &o.verdict {
                Verdict::Ok => ("ok", None, None, None),
                Verdict::Violation { expected, observed } => {
                    ("violation", Some(expected), Some(observed), None)
                }
                Verdict::Skipped(why) => ("skipped", None, None, Some(why)),
            };
            json!({
                "name": o.name,
                "description": o.description,
                "result": result,
                "expected": expected,
                "observed": observed,
                "skipped_because": reason,
                "note": o.note,
                "gids": o.gids,
                "calls": o.calls,
                "ms": o.ms,
            })
        })
        .collect();
    json!({
        "protocol": spec.protocol.name(),
        "endpoints": spec.endpoints,
        "effect_read_by": effect_by,
        "baseline": {"nothing": b.zero, "first": b.first, "second": b.second, "gids": b.gids},
        "schedules": schedules,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "ms": ms,
    })
}
