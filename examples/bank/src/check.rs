//! The checker: concurrent transfers between the two banks through the coordinator, with
//! randomly injected business failures, then a proof that no money was created or lost.
//!
//! Each client loops until the deadline: a random amount from a random account of one bank
//! to a random account of the other, as a saga, a TCC or an XA transaction; a share of the
//! transfers carry `fail: true` on the debit or on the credit, which then answers FAILURE
//! (a failed credit makes the coordinator undo a debit that did happen); insufficient funds
//! fail naturally. Every
//! transfer is remembered (gid → from, to, amount). Afterwards the checker waits until the
//! coordinator says each transfer ended (`succeed` or `failed`) and compares:
//!
//! - the total of `balance + frozen` over both banks is what it was before;
//! - no balance or frozen amount is negative, and nothing is left frozen;
//! - per transfer, the ledger's net change is exactly `-amount` on the source and `+amount`
//!   on the destination when the coordinator says `succeed`, and zero everywhere when it says
//!   `failed` (fully applied or fully undone; a ledger row is written with each balance
//!   change, in the same local transaction);
//! - per account, the balance before plus this run's ledger changes is the balance after;
//! - no XA branch of this run is left prepared.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_client::{Client, RetryPolicy, TxOptions};

use crate::http::Http;
use crate::store::{Snapshot, StepBody};

/// How a transfer is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Saga,
    Tcc,
    Xa,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Saga => "saga",
            Mode::Tcc => "tcc",
            Mode::Xa => "xa",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The coordinator, `http://host:port`.
    pub coordinator: String,
    /// The two bank services, `http://host:port`.
    pub banks: [String; 2],
    pub mode: Mode,
    pub clients: usize,
    pub duration: Duration,
    /// Accounts per bank, created with `balance` each when missing.
    pub accounts: i64,
    pub balance: i64,
    pub amount_max: i64,
    /// Share of transfers with an injected failure (debit or credit), in percent.
    pub fail_pct: u32,
    /// Longest wait for every transaction to end after the load stops.
    pub settle: Duration,
}

/// (bank index, account id).
type AccountKey = (usize, i64);

/// One transfer as the client asked for it.
#[derive(Debug, Clone)]
struct Transfer {
    gid: String,
    from: AccountKey,
    to: AccountKey,
    amount: i64,
    /// Injected failure: `Some(true)` on the debit, `Some(false)` on the credit.
    injected: Option<bool>,
}

/// The verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub mode: String,
    pub transfers: usize,
    pub succeeded: usize,
    pub rolled_back: usize,
    /// Transfers that asked for an injected failure.
    pub injected: usize,
    /// Transfers not ended (or parked) when the settle time ran out.
    pub unsettled: usize,
    pub elapsed: Duration,
    pub total_before: i64,
    pub total_after: i64,
    /// Every broken invariant, empty when the money checks out.
    pub violations: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.unsettled == 0 && self.transfers > 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "mode {}: {} transfers in {:.1} s ({:.0}/s): {} succeeded, {} rolled back ({} with an injected failure), {} unsettled",
            self.mode,
            self.transfers,
            secs,
            self.transfers as f64 / secs,
            self.succeeded,
            self.rolled_back,
            self.injected,
            self.unsettled
        )?;
        writeln!(
            f,
            "money: total before {}, after {}: {}",
            self.total_before,
            self.total_after,
            if self.ok() { "OK" } else { "BROKEN" }
        )?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  violation: {v}")?;
        }
        if self.violations.len() > 20 {
            writeln!(f, "  ... {} more", self.violations.len() - 20)?;
        }
        Ok(())
    }
}

/// Drops the account and ledger tables of both banks (`POST /admin/teardown`).
pub async fn teardown(banks: &[String; 2]) -> anyhow::Result<()> {
    let http = Http::new();
    for bank in banks {
        let (status, body) = http
            .post(&format!("{bank}/admin/teardown"), Some(&json!({})))
            .await?;
        anyhow::ensure!(status == 200, "teardown of {bank}: {status} {body}");
    }
    Ok(())
}

/// Runs the load, waits for every transaction to end, and checks the money.
pub async fn run(cfg: CheckConfig) -> anyhow::Result<Report> {
    let http = Http::new();
    let tandem = Client::builder(&cfg.coordinator)
        .timeout(Duration::from_secs(40))
        .retry(RetryPolicy {
            attempts_max: 3,
            ..RetryPolicy::default()
        })
        .build()?;
    for bank in &cfg.banks {
        let setup = json!({"accounts": cfg.accounts, "balance": cfg.balance});
        let (status, body) = http
            .post(&format!("{bank}/admin/setup"), Some(&setup))
            .await?;
        anyhow::ensure!(status == 200, "setup of {bank}: {status} {body}");
    }
    let before = snapshots(&http, &cfg).await?;
    let run_id = format!(
        "{}{:x}",
        cfg.mode.as_str(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
            % 0xffff_ffff
    );
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let cfg = Arc::new(cfg);
    let mut clients = Vec::new();
    for client in 0..cfg.clients {
        let (cfg, http, tandem) = (cfg.clone(), http.clone(), tandem.clone());
        let prefix = format!("bk-{run_id}-{client}-");
        clients.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = random_transfer(&cfg, format!("{prefix}{n}"));
                n += 1;
                if let Err(e) = transfer(&tandem, &http, &cfg, &t).await {
                    tracing::debug!(gid = %t.gid, error = %e, "transfer call failed");
                }
                done.push(t);
            }
            done
        }));
    }
    let mut transfers = Vec::new();
    for c in clients {
        transfers.extend(c.await?);
    }
    let elapsed = started.elapsed();
    let outcomes = settle(&tandem, &cfg, &transfers).await;
    let after = snapshots(&http, &cfg).await?;
    Ok(verify(
        &cfg, &transfers, &outcomes, &before, &after, elapsed,
    ))
}

fn random_transfer(cfg: &CheckConfig, gid: String) -> Transfer {
    let from_bank = fastrand::usize(0..2);
    Transfer {
        gid,
        from: (from_bank, fastrand::i64(0..cfg.accounts)),
        to: (1 - from_bank, fastrand::i64(0..cfg.accounts)),
        amount: fastrand::i64(1..=cfg.amount_max),
        injected: (fastrand::u32(0..100) < cfg.fail_pct).then(fastrand::bool),
    }
}

/// Drives one transfer through the coordinator: saga and TCC with `tandem_client`, XA with
/// DTM's protocol (which the native client does not speak). The outcome that counts is the
/// coordinator's, read later.
async fn transfer(
    tandem: &Client,
    http: &Http,
    cfg: &CheckConfig,
    t: &Transfer,
) -> anyhow::Result<()> {
    let (from, to) = (&cfg.banks[t.from.0], &cfg.banks[t.to.0]);
    let body = |account, fail| StepBody {
        account,
        amount: t.amount,
        fail,
        delay_ms: 0,
    };
    let debit = body(t.from.1, t.injected == Some(true));
    let credit = body(t.to.1, t.injected == Some(false));
    let options = TxOptions {
        retry_interval_ms: Some(200),
        ..TxOptions::default()
    };
    let gid = &t.gid;
    match cfg.mode {
        Mode::Saga => {
            tandem
                .saga()
                .gid(gid)
                .options(options)
                .step(
                    &format!("{from}/saga/debit"),
                    &format!("{from}/saga/undo-debit"),
                    &debit,
                )
                .step(
                    &format!("{to}/saga/credit"),
                    &format!("{to}/saga/undo-credit"),
                    &credit,
                )
                .submit_and_wait()
                .await?;
        }
        Mode::Tcc => {
            // A try that fails (or never answers) aborts: the coordinator cancels both.
            let _ = tandem
                .tcc_run(Some(gid.clone()), options, true, |tcc| async move {
                    for (branch, bank, side, payload) in [
                        ("debit", from, "debit", &debit),
                        ("credit", to, "credit", &credit),
                    ] {
                        tcc.call_try(
                            branch,
                            &format!("{bank}/tcc/try-{side}"),
                            &format!("{bank}/tcc/confirm-{side}"),
                            &format!("{bank}/tcc/cancel-{side}"),
                            payload,
                        )
                        .await?;
                    }
                    Ok(())
                })
                .await;
        }
        Mode::Xa => {
            let dtm = format!("{}/api/dtmsvr", cfg.coordinator);
            let trans = json!({"gid": gid, "trans_type": "xa", "wait_result": true});
            let (status, body) = http.post(&format!("{dtm}/prepare"), Some(&trans)).await?;
            anyhow::ensure!(status == 200, "xa prepare: {status} {body}");
            let mut all_prepared = true;
            for (branch, bank, side, payload) in
                [("01", from, "debit", &debit), ("02", to, "credit", &credit)]
            {
                let ok = http
                    .post(
                        &format!("{bank}/xa/{side}?gid={gid}&trans_type=xa&branch_id={branch}"),
                        Some(&serde_json::to_value(payload)?),
                    )
                    .await
                    .map(|(s, _)| s == 200)
                    .unwrap_or(false);
                if !ok {
                    all_prepared = false;
                    break;
                }
            }
            let finish = if all_prepared { "submit" } else { "abort" };
            http.post(&format!("{dtm}/{finish}"), Some(&trans)).await?;
        }
    }
    Ok(())
}

/// Waits until the coordinator reports every transfer ended; `gid → status` (`succeed`,
/// `failed`, or the last status seen when the settle time ran out).
async fn settle(
    tandem: &Client,
    cfg: &CheckConfig,
    transfers: &[Transfer],
) -> HashMap<String, String> {
    let deadline = Instant::now() + cfg.settle;
    let mut outcomes = HashMap::new();
    for t in transfers {
        loop {
            let status = match tandem.get(&t.gid).await {
                Ok(tx) if tx.parked.is_none() => tx.status,
                Ok(tx) => format!("parked: {}", tx.parked.unwrap_or_default()),
                Err(e) if e.is_not_found() => "never created".to_owned(),
                Err(e) => e.to_string(),
            };
            let ended = matches!(status.as_str(), "succeed" | "failed" | "never created");
            if ended || Instant::now() >= deadline {
                outcomes.insert(t.gid.clone(), status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    outcomes
}

async fn snapshots(http: &Http, cfg: &CheckConfig) -> anyhow::Result<[Snapshot; 2]> {
    let mut out: [Snapshot; 2] = Default::default();
    for (i, bank) in cfg.banks.iter().enumerate() {
        let (status, body) = http.get(&format!("{bank}/admin/snapshot")).await?;
        anyhow::ensure!(status == 200, "snapshot of {bank}: {status} {body}");
        out[i] = serde_json::from_value(body)?;
    }
    Ok(out)
}

fn total(s: &[Snapshot; 2]) -> i64 {
    s.iter()
        .flat_map(|b| &b.accounts)
        .map(|a| a.balance + a.frozen)
        .sum()
}

fn verify(
    cfg: &CheckConfig,
    transfers: &[Transfer],
    outcomes: &HashMap<String, String>,
    before: &[Snapshot; 2],
    after: &[Snapshot; 2],
    elapsed: Duration,
) -> Report {
    let mut r = Report {
        mode: cfg.mode.as_str().to_owned(),
        transfers: transfers.len(),
        elapsed,
        total_before: total(before),
        total_after: total(after),
        injected: transfers.iter().filter(|t| t.injected.is_some()).count(),
        ..Report::default()
    };
    let v = &mut r.violations;
    if r.total_before != r.total_after {
        v.push(format!(
            "total changed: {} -> {}",
            r.total_before, r.total_after
        ));
    }
    for (bank, snap) in after.iter().enumerate() {
        for a in &snap.accounts {
            if a.balance < 0 || a.frozen < 0 {
                v.push(format!("bank {bank} account {} is negative: {a:?}", a.id));
            }
            if a.frozen != 0 {
                v.push(format!(
                    "bank {bank} account {} still has {} frozen",
                    a.id, a.frozen
                ));
            }
        }
    }
    // No XA branch of this run may stay prepared (it would hold locks and money forever).
    for (bank, snap) in after.iter().enumerate() {
        for xid in &snap.prepared {
            let gid = xid.rsplit_once('-').map_or(xid.as_str(), |(g, _)| g);
            if transfers.iter().any(|t| t.gid == gid) {
                v.push(format!("bank {bank}: XA branch {xid} is still prepared"));
            }
        }
    }
    // This run's ledger: (gid, (bank, account)) → (balance, frozen) net.
    let ours: HashMap<&str, &Transfer> = transfers.iter().map(|t| (t.gid.as_str(), t)).collect();
    let mut ledger: BTreeMap<(&str, AccountKey), (i64, i64)> = BTreeMap::new();
    let mut per_account: HashMap<AccountKey, i64> = HashMap::new();
    for (bank, snap) in after.iter().enumerate() {
        for l in &snap.ledger {
            if !ours.contains_key(l.gid.as_str()) {
                continue; // an earlier run on the same tables
            }
            let e = ledger.entry((&l.gid, (bank, l.account))).or_default();
            e.0 += l.balance_delta;
            e.1 += l.frozen_delta;
            *per_account.entry((bank, l.account)).or_default() += l.balance_delta + l.frozen_delta;
        }
    }
    for t in transfers {
        let status = outcomes
            .get(&t.gid)
            .map(String::as_str)
            .unwrap_or("unknown");
        let net = |acct| {
            ledger
                .get(&(t.gid.as_str(), acct))
                .copied()
                .unwrap_or((0, 0))
        };
        let (f, to) = (net(t.from), net(t.to));
        match status {
            "succeed" => {
                r.succeeded += 1;
                if f != (-t.amount, 0) || to != (t.amount, 0) {
                    v.push(format!(
                        "{} succeeded but moved {f:?} from {:?} and {to:?} to {:?} (amount {})",
                        t.gid, t.from, t.to, t.amount
                    ));
                }
            }
            "failed" | "never created" => {
                r.rolled_back += 1;
                if f != (0, 0) || to != (0, 0) {
                    v.push(format!(
                        "{} rolled back but left {f:?} on {:?} and {to:?} on {:?}",
                        t.gid, t.from, t.to
                    ));
                }
            }
            other => {
                r.unsettled += 1;
                v.push(format!("{} did not end: {other}", t.gid));
            }
        }
    }
    for (bank, snap) in after.iter().enumerate() {
        for a in &snap.accounts {
            let was = before[bank]
                .accounts
                .iter()
                .find(|b| b.id == a.id)
                .map(|b| b.balance + b.frozen)
                .unwrap_or(0);
            let moved = per_account.get(&(bank, a.id)).copied().unwrap_or(0);
            if was + moved != a.balance + a.frozen {
                v.push(format!(
                    "bank {bank} account {}: {was} before + {moved} in the ledger != {} after",
                    a.id,
                    a.balance + a.frozen
                ));
            }
        }
    }
    r
}
