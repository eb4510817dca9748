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
use tandem_participant::barrier::{Barrier, CallError, Outcome};
use tandem_participant::xa;

use crate::effect::Effect;

/// A branch call's body: which account, how much, and whether to fail on purpose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepBody {
    pub account: i64,
    pub amount: i64,
    #[serde(default)]
    pub fail: bool,
}

/// Why the business code refused (answered as FAILURE, HTTP 409) or broke (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum Busi {
    #[error("insufficient funds or no such account")]
    Insufficient,
    #[error("injected failure")]
    Injected,
    #[error("database: {0}")]
    Db(String),
}

/// What a branch call answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Success,
    /// Business failure: HTTP 409 `FAILURE`, the coordinator rolls back.
    Failure(String),
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

    /// Applies `effect` for the branch call `barrier` through the barrier: once, never after
    /// its compensation, rolled back with the barrier rows on any business error.
    pub async fn apply(
        &self,
        barrier: Barrier,
        effect: Effect,
        body: &StepBody,
    ) -> anyhow::Result<Answer> {
        let fail = body.fail && effect.may_inject_failure;
        let result = match self {
            Bank::Pg(b) => b.apply(barrier, effect, body.account, fail).await,
            Bank::My(b) => b.apply(barrier, effect, body.account, fail).await,
        };
        answer(result)
    }

    /// XA, first phase: applies `effect` inside a transaction prepared under `xid`.
    pub async fn xa_local(
        &self,
        xid: &xa::Xid,
        gid: &str,
        op: &str,
        effect: Effect,
        body: &StepBody,
    ) -> anyhow::Result<Answer> {
        let fail = body.fail && effect.may_inject_failure;
        let result = match self {
            Bank::Pg(b) => b.xa_local(xid, gid, op, effect, body.account, fail).await,
            Bank::My(b) => b.xa_local(xid, gid, op, effect, body.account, fail).await,
        };
        match result {
            Ok(()) => Ok(Answer::Success),
            Err(xa::LocalError::Work(Busi::Db(e))) => anyhow::bail!("database: {e}"),
            Err(xa::LocalError::Work(e)) => Ok(Answer::Failure(e.to_string())),
            Err(xa::LocalError::Xa(e)) => Err(e.into()),
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

    /// Accounts and per-(gid, account) ledger sums.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        match self {
            Bank::Pg(b) => b.snapshot().await,
            Bank::My(b) => b.snapshot().await,
        }
    }
}

fn answer(result: Result<Outcome<()>, CallError<Busi>>) -> anyhow::Result<Answer> {
    match result {
        Ok(outcome) if outcome.is_failure() => Ok(Answer::Failure(
            "refused by the barrier: its compensation came first".into(),
        )),
        Ok(_) => Ok(Answer::Success),
        Err(CallError::Business(Busi::Db(e))) => anyhow::bail!("database: {e}"),
        Err(CallError::Business(e)) => Ok(Answer::Failure(e.to_string())),
        Err(CallError::Barrier(e)) => Err(e.into()),
    }
}
