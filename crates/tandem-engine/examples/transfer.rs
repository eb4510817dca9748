//! A money transfer between two in-process banks, done as a saga and as a two-phase commit,
//! each once successfully and once with a forced failure that shows the compensation (saga)
//! and the rollback (2PC).
//!
//! Run: `cargo run -p tandem-engine --example transfer`

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tandem_engine::{BranchError, CallRequest, Coordinator, Resource, SagaStep, Vote};

/// A bank with balances, idempotent by `gid/branch/op`. Payload: `account:amount`.
#[derive(Default)]
struct Bank {
    name: &'static str,
    state: Mutex<BankState>,
}

#[derive(Default)]
struct BankState {
    balances: HashMap<String, i64>,
    /// Idempotency: keys of calls already applied.
    done: HashSet<String>,
    /// 2PC: prepared but undecided changes, by gid.
    pending: HashMap<String, (String, i64)>,
    closed: HashSet<String>,
}

fn parse(call: &CallRequest) -> Result<(String, i64), BranchError> {
    let text =
        std::str::from_utf8(&call.payload).map_err(|e| BranchError::Failure(e.to_string()))?;
    let (acct, amount) = text
        .split_once(':')
        .ok_or_else(|| BranchError::Failure(format!("bad payload {text:?}")))?;
    let amount = amount
        .parse()
        .map_err(|_| BranchError::Failure(format!("bad amount in {text:?}")))?;
    Ok((acct.to_string(), amount))
}

impl Bank {
    fn new(name: &'static str, accounts: &[(&str, i64)]) -> Arc<Bank> {
        let bank = Bank {
            name,
            ..Default::default()
        };
        bank.state
            .lock()
            .expect("lock")
            .balances
            .extend(accounts.iter().map(|(a, b)| (a.to_string(), *b)));
        Arc::new(bank)
    }
    fn balances(&self) -> Vec<(String, i64)> {
        let mut v: Vec<_> = self
            .state
            .lock()
            .expect("lock")
            .balances
            .clone()
            .into_iter()
            .collect();
        v.sort();
        v
    }
    /// Applies `amount` unless it would overdraw or the account is closed.
    fn check(s: &BankState, acct: &str, amount: i64) -> Result<(), BranchError> {
        if s.closed.contains(acct) {
            return Err(BranchError::Failure(format!("account {acct} is closed")));
        }
        let bal = s
            .balances
            .get(acct)
            .copied()
            .ok_or_else(|| BranchError::Failure(format!("no account {acct}")))?;
        if bal + amount < 0 {
            return Err(BranchError::Failure(format!(
                "{acct} has {bal}, cannot pay {}",
                -amount
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl SagaStep for Bank {
    async fn action(&self, call: &CallRequest) -> Result<(), BranchError> {
        let (acct, amount) = parse(call)?;
        let mut s = self.state.lock().expect("lock");
        if s.done.contains(&call.idempotency_key()) {
            return Ok(());
        }
        Bank::check(&s, &acct, amount)?;
        *s.balances.entry(acct).or_default() += amount;
        s.done.insert(call.idempotency_key());
        println!("  {}: {} {:+}", self.name, call.op.as_str(), amount);
        Ok(())
    }
    async fn compensate(&self, call: &CallRequest) -> Result<(), BranchError> {
        let (acct, amount) = parse(call)?;
        let mut s = self.state.lock().expect("lock");
        let action_key = format!("{}/{}/action", call.gid, call.branch_id);
        // Undo only what the action did; a compensation of a failed action is a no-op.
        if s.done.contains(&call.idempotency_key()) || !s.done.contains(&action_key) {
            return Ok(());
        }
        *s.balances.entry(acct).or_default() -= amount;
        s.done.insert(call.idempotency_key());
        println!("  {}: compensate {:+}", self.name, -amount);
        Ok(())
    }
}

#[async_trait]
impl Resource for Bank {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        let (acct, amount) = parse(call)?;
        let mut s = self.state.lock().expect("lock");
        Bank::check(&s, &acct, amount)?;
        s.pending.insert(call.gid.to_string(), (acct, amount));
        println!("  {}: prepared {:+}", self.name, amount);
        Ok(Vote::Yes)
    }
    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError> {
        let mut s = self.state.lock().expect("lock");
        if let Some((acct, amount)) = s.pending.remove(&*call.gid) {
            *s.balances.entry(acct).or_default() += amount;
            println!("  {}: committed {:+}", self.name, amount);
        }
        Ok(())
    }
    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError> {
        let mut s = self.state.lock().expect("lock");
        if let Some((_, amount)) = s.pending.remove(&*call.gid) {
            println!("  {}: rolled back {:+}", self.name, amount);
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bank_a = Bank::new("bank-a", &[("alice", 100)]);
    let bank_b = Bank::new("bank-b", &[("bob", 0), ("carol", 0)]);
    bank_b
        .state
        .lock()
        .expect("lock")
        .closed
        .insert("carol".into());

    let c = Coordinator::builder()
        .step("bank-a", bank_a.clone())
        .step("bank-b", bank_b.clone())
        .resource("bank-a-xa", bank_a.clone())
        .resource("bank-b-xa", bank_b.clone())
        .open(dir.path())
        .await?;

    println!("saga: alice pays bob 30");
    let out = c
        .saga("saga-ok")
        .step("bank-a", "alice:-30")
        .step("bank-b", "bob:30")
        .run()
        .await?;
    println!("  -> {}", out.status.as_str());

    println!("saga: alice pays carol 20 (carol's account is closed: the debit is compensated)");
    let out = c
        .saga("saga-fail")
        .step("bank-a", "alice:-20")
        .step("bank-b", "carol:20")
        .run()
        .await?;
    println!(
        "  -> {} ({})",
        out.status.as_str(),
        out.fail_reason.unwrap_or_default()
    );

    println!("2pc: alice pays bob 10");
    let out = c
        .two_phase("2pc-ok")
        .participant("bank-a-xa", "alice:-10")
        .participant("bank-b-xa", "bob:10")
        .run()
        .await?;
    println!("  -> {}", out.status.as_str());

    println!("2pc: alice pays carol 10 (bank-b votes no: bank-a rolls back)");
    let out = c
        .two_phase("2pc-fail")
        .participant("bank-a-xa", "alice:-10")
        .participant("bank-b-xa", "carol:10")
        .run()
        .await?;
    println!(
        "  -> {} ({})",
        out.status.as_str(),
        out.fail_reason.unwrap_or_default()
    );

    if let Some(tx) = c.get("saga-fail").await? {
        println!("saga-fail as logged:");
        for b in &tx.branches {
            println!(
                "  branch {} {:<10} {:<8} attempts {}",
                b.branch_id,
                b.op.as_str(),
                b.status.as_str(),
                b.attempts
            );
        }
    }
    let (a, b) = (bank_a.balances(), bank_b.balances());
    println!("balances: bank-a {a:?}, bank-b {b:?}");
    let total: i64 = a.iter().chain(&b).map(|(_, v)| v).sum();
    assert_eq!(total, 100, "money was created or lost");
    assert_eq!(a, vec![("alice".to_string(), 60)]);
    println!("total is still {total}: no money created or lost");
    c.close().await?;
    Ok(())
}
