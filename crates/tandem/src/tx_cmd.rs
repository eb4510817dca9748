//! `tandem tx list|show`: read transactions straight from a data directory.
//!
//! Opens the embedded store (which replays its write-ahead log), so it needs the directory
//! to itself: stop the coordinator first.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use tandem_core::{Transaction, TxKind, TxStatus};
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{ListQuery, Store};

#[derive(Subcommand)]
pub enum TxCmd {
    /// List transactions, newest first.
    List {
        #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
        data_dir: PathBuf,
        /// prepared | submitted | aborting | succeed | failed
        #[arg(long)]
        status: Option<String>,
        /// saga | 2pc | tcc | msg
        #[arg(long)]
        kind: Option<String>,
        /// Only parked transactions.
        #[arg(long)]
        parked: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor printed at the end of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one transaction with its branches, attempts and history.
    Show {
        gid: String,
        #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn open(dir: &std::path::Path) -> anyhow::Result<RedbStore> {
    anyhow::ensure!(dir.is_dir(), "no data directory at {}", dir.display());
    RedbStore::open(dir, RedbConfig::default())
        .with_context(|| format!("opening {}", dir.display()))
}

pub async fn run(cmd: TxCmd) -> anyhow::Result<()> {
    match cmd {
        TxCmd::List {
            data_dir,
            status,
            kind,
            parked,
            limit,
            cursor,
            json,
        } => {
            let store = open(&data_dir)?;
            let q = ListQuery {
                status: status
                    .map(|s| TxStatus::parse(&s).with_context(|| format!("unknown status {s:?}")))
                    .transpose()?,
                kind: kind
                    .map(|k| TxKind::parse(&k).with_context(|| format!("unknown kind {k:?}")))
                    .transpose()?,
                parked: parked.then_some(true),
                cursor,
                limit,
                ..Default::default()
            };
            let page = store.list(&q).await?;
            if json {
                let items: Vec<_> = page.items.iter().map(view).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "transactions": items, "next": page.next })
                    )?
                );
            } else {
                println!(
                    "{:<40} {:<5} {:<10} {:>8} {:<24} parked",
                    "GID", "TYPE", "STATUS", "BRANCHES", "CREATED"
                );
                for tx in &page.items {
                    println!(
                        "{:<40} {:<5} {:<10} {:>8} {:<24} {}",
                        tx.gid,
                        tx.kind.as_str(),
                        tx.status.as_str(),
                        tx.branches.len(),
                        iso(tx.created_at.0),
                        tx.parked.as_deref().unwrap_or("-")
                    );
                }
                if let Some(next) = &page.next {
                    println!("more: --cursor {next}");
                }
            }
            store.close().await?;
        }
        TxCmd::Show {
            gid,
            data_dir,
            json,
        } => {
            let store = open(&data_dir)?;
            let tx = store.get(&gid).await?;
            store.close().await?;
            let tx =
                tx.with_context(|| format!("no transaction {gid:?} in {}", data_dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view(&tx))?);
            } else {
                print_tx(&tx);
            }
        }
    }
    Ok(())
}

fn print_tx(tx: &Transaction) {
    println!("gid       {}", tx.gid);
    println!("type      {}", tx.kind.as_str());
    println!("status    {}", tx.status.as_str());
    if let Some(p) = &tx.parked {
        println!("parked    {p}");
    }
    if let Some(r) = &tx.fail_reason {
        println!("reason    {r}");
    }
    println!("created   {}", iso(tx.created_at.0));
    if let Some(f) = tx.finished_at {
        println!(
            "finished  {} ({} ms)",
            iso(f.0),
            f.0.saturating_sub(tx.created_at.0)
        );
    }
    println!("branches");
    for b in &tx.branches {
        println!(
            "  {} {:<16} {:<9} attempts {:<3} {}",
            b.branch_id,
            b.op.as_str(),
            b.status.as_str(),
            b.attempts,
            b.target
        );
        for a in &b.recent {
            println!(
                "      {} {:?} {} us{}{}",
                iso(a.at.0),
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
            println!("  {} {}: {}", iso(h.at.0), h.what, h.reason);
        }
    }
}

/// A JSON view: payloads as text where they are UTF-8, times as ISO-8601.
pub fn view(tx: &Transaction) -> serde_json::Value {
    let branches: Vec<_> = tx
        .branches
        .iter()
        .map(|b| {
            serde_json::json!({
                "branch_id": b.branch_id, "op": b.op.as_str(), "target": b.target,
                "payload": String::from_utf8(b.payload.clone()).unwrap_or_else(|_| format!("<{} bytes>", b.payload.len())),
                "status": b.status.as_str(), "attempts": b.attempts,
                "recent": b.recent.iter().map(|a| serde_json::json!({
                    "at": iso(a.at.0), "outcome": format!("{:?}", a.outcome), "latency_us": a.latency_us,
                    "code": a.code, "error": a.error })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "gid": tx.gid, "type": tx.kind.as_str(), "status": tx.status.as_str(), "parked": tx.parked,
        "fail_reason": tx.fail_reason, "created_at": iso(tx.created_at.0),
        "finished_at": tx.finished_at.map(|f| iso(f.0)), "version": tx.version, "branches": branches,
        "history": tx.history.iter().map(|h| serde_json::json!({"at": iso(h.at.0), "what": h.what, "reason": h.reason})).collect::<Vec<_>>(),
    })
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
