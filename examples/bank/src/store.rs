//! One bank's accounts in its own database (PostgreSQL or MariaDB/MySQL, chosen by the URL),
//! and the only ways money moves: an [`Effect`] applied through the sub-transaction barrier
//! (saga, TCC) or inside a prepared transaction (XA), always with a ledger row in the same
//! local transaction.
//!
//! Tables are per run (`bank_<tag>_account`, `bank_<tag>_ledger`) so concurrent runs never
//! share accounts; the barrier table is the shared DTM-compatible `dtm_barrier.barrier` (gids
//! are unique per run). The ledger is what lets the checker prove every transfer was applied
//! exactly once or undone exactly: each balance change writes `(gid, account, op, deltas)`
//! with it, atomically.

mod my;
mod pg;

use serde::{Deserialize, Serialize};
use tandem_participant::axum::{BranchCall, BranchError, Reply};
use tandem_participant::xa;

use crate::effect::Effect;

/// A branch call's body: which account, how much, whether to fail on purpose, and how long
/// to hold the local transaction before the work (lets a check provoke a timeout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepBody {
    pub account: i64,
    pub amount: i64,
    #[serde(default)]
    pub fail: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Longest `delay_ms` honoured.
pub const DELAY_MS_MAX: u64 = 5_000;

/// The business rules both databases share: after the update, refuse what would go
/// negative, then fail on request (the work is done first, so the rollback is real).
pub(crate) fn refuse(changed: u64, fail: bool) -> Result<(), BranchError> {
    if changed == 0 {
        return Err(BranchError::failure(
            "insufficient funds or no such account",
        ));
    }
    if fail {
        return Err(BranchError::failure("injected failure"));
    }
    Ok(())
}

/// One account's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub balance: i64,
    pub frozen: i64,
}

/// Net ledger deltas of one transaction on one account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerNet {
    pub gid: String,
    pub account: i64,
    pub balance_delta: i64,
    pub frozen_delta: i64,
}

/// Everything the checker needs from one bank.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub accounts: Vec<Account>,
    pub ledger: Vec<LedgerNet>,
    /// XA branches still prepared whose xid starts with `bk-` (the checker's gids).
    #[serde(default)]
    pub prepared: Vec<String>,
}

/// A bank: its database and its per-run table names.
pub enum Bank {
    Pg(pg::PgBank),
    My(my::MyBank),
}

/// Table names of run `tag` (validated: `[a-z0-9_]`, so safe to splice into SQL).
#[derive(Debug, Clone)]
pub struct Tables {
    pub account: String,
    pub ledger: String,
}

impl Tables {
    pub fn new(tag: &str) -> anyhow::Result<Tables> {
        anyhow::ensure!(
            !tag.is_empty()
                && tag.len() <= 32
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "tag {tag:?} must be 1..=32 of [a-z0-9_]"
        );
        Ok(Tables {
            account: format!("bank_{tag}_account"),
            ledger: format!("bank_{tag}_ledger"),
        })
    }
}

impl Bank {
    /// Connects to `url` (`postgres://...` or `mysql://...`) for run `tag`.
    pub async fn connect(url: &str, tag: &str) -> anyhow::Result<Bank> {
        let tables = Tables::new(tag)?;
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Bank::Pg(pg::PgBank::new(url, tables)))
        } else if url.starts_with("mysql://") {
            Ok(Bank::My(my::MyBank::new(url, tables)?))
        } else {
            anyhow::bail!("unknown database URL {url:?}: expected postgres:// or mysql://")
        }
    }

    /// Creates the tables when missing and `accounts` accounts holding `balance` each (an
    /// existing account is left as it is).
    pub async fn setup(&self, accounts: i64, balance: i64) -> anyhow::Result<()> {
        match self {
            Bank::Pg(b) => b.setup(accounts, balance).await,
            Bank::My(b) => b.setup(accounts, balance).await,
        }
    }

    /// Applies `effect` for the branch `call` through the barrier: once, never after its
    /// compensation, rolled back with the barrier rows on any business error.
    pub async fn apply(&self, call: &BranchCall, effect: Effect, body: &StepBody) -> Reply {
        let fail = body.fail && effect.may_inject_failure;
        let delay = std::time::Duration::from_millis(body.delay_ms.min(DELAY_MS_MAX));
        match self {
            Bank::Pg(b) => b.apply(call, effect, body.account, fail, delay).await,
            Bank::My(b) => b.apply(call, effect, body.account, fail, delay).await,
        }
    }

    /// XA, first phase: applies `effect` inside a transaction prepared under `xid`.
    pub async fn xa_local(
        &self,
        xid: &xa::Xid,
        gid: &str,
        op: &str,
        effect: Effect,
        body: &StepBody,
    ) -> Reply {
        let fail = body.fail && effect.may_inject_failure;
        let result = match self {
            Bank::Pg(b) => b.xa_local(xid, gid, op, effect, body.account, fail).await,
            Bank::My(b) => b.xa_local(xid, gid, op, effect, body.account, fail).await,
        };
        match result {
            Ok(()) => Reply::Success,
            Err(xa::LocalError::Work(e)) => e.into(),
            Err(xa::LocalError::Xa(e)) => Reply::Error(e.to_string()),
        }
    }

    /// XA, second phase: commits or rolls back `xid` (idempotent).
    pub async fn xa_finish(&self, xid: &xa::Xid, op: xa::Op) -> anyhow::Result<()> {
        match self {
            Bank::Pg(b) => b.xa_finish(xid, op).await,
            Bank::My(b) => b.xa_finish(xid, op).await,
        }
    }

    /// Drops this run's account and ledger tables (tests clean up after themselves; the
    /// shared barrier table stays).
    pub async fn drop_tables(&self) -> anyhow::Result<()> {
        match self {
            Bank::Pg(b) => b.drop_tables().await,
            Bank::My(b) => b.drop_tables().await,
        }
    }

    /// What transaction `gid` did here: (balance, frozen) summed over its ledger rows.
    pub async fn effect(&self, gid: &str) -> anyhow::Result<(i64, i64)> {
        match self {
            Bank::Pg(b) => b.effect(gid).await,
            Bank::My(b) => b.effect(gid).await,
        }
    }

    /// Accounts and per-(gid, account) ledger sums.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        match self {
            Bank::Pg(b) => b.snapshot().await,
            Bank::My(b) => b.snapshot().await,
        }
    }
}
