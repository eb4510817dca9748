//! How `tandem tx` prints transactions, in text or JSON. Both sources — a data directory
//! and a running server — are first turned into the `/v1` wire types (`tandem_client`'s),
//! so the two modes print exactly the same thing.

use tandem_client::{TxPage, TxSummary, TxView};

/// A page of a list; with `--json` exactly as `GET /v1/transactions` answers it:
/// `{"transactions": [...], "next_cursor": cursor-or-null}`.
pub fn list(items: &[TxSummary], next: Option<&str>, json: bool) -> anyhow::Result<()> {
    if json {
        let page = TxPage {
            transactions: items.to_vec(),
            next_cursor: next.map(str::to_string),
        };
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<5} {:<10} {:>8} {:<24} parked",
        "GID", "TYPE", "STATUS", "BRANCHES", "CREATED"
    );
    for t in items {
        println!(
            "{:<40} {:<5} {:<10} {:>8} {:<24} {}",
            t.gid,
            t.kind,
            t.status,
            t.branch_count,
            iso(t.created_at_ms),
            t.parked.as_deref().unwrap_or("-")
        );
    }
    if let Some(next) = next {
        println!("more: --cursor {next}");
    }
    Ok(())
}

/// One transaction with its branches, attempts and history.
pub fn show(tx: &TxView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(tx)?);
        return Ok(());
    }
    println!("gid       {}", tx.gid);
    println!("type      {}", tx.kind);
    println!("status    {}", tx.status);
    if let Some(p) = &tx.parked {
        println!("parked    {p}");
    }
    if let Some(r) = &tx.fail_reason {
        println!("reason    {r}");
    }
    if let Some(h) = &tx.heuristic {
        println!("heuristic {h}");
    }
    println!("created   {}", iso(tx.created_at_ms));
    if let Some(f) = tx.finished_at_ms {
        println!(
            "finished  {} ({} ms)",
            iso(f),
            f.saturating_sub(tx.created_at_ms)
        );
    }
    println!("branches");
    for b in &tx.branches {
        println!(
            "  {} {:<16} {:<9} attempts {:<3} {}",
            b.branch_id, b.op, b.status, b.attempts, b.url
        );
        for a in &b.recent {
            println!(
                "      {} {} {} us{}{}",
                iso(a.at_ms),
                a.outcome,
                a.latency_us,
                a.code.map(|c| format!(" HTTP {c}")).unwrap_or_default(),
                a.error
                    .as_ref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            );
        }
    }
    if !tx.history.is_empty() {
        println!("history");
        for h in &tx.history {
            println!("  {} {}: {}", iso(h.at_ms), h.what, h.reason);
        }
    }
    Ok(())
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_795_700_000_123), "2026-11-26T13:33:20.123Z");
    }
}
