//! Regression: a MariaDB XA branch still attached to the session that prepared it answers
//! `XA COMMIT` from any other session with "unknown XID" — the same answer as for a finished
//! branch. The bank's phase 2 must not take that as done (a 32-client run lost a credit that
//! way: the branch stayed prepared forever); it must answer "call again" until the branch is
//! really committed.

use bank::store::Bank;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tandem_participant::xa::{Op, Xid};

#[tokio::test]
async fn t20_mariadb_phase2_waits_until_the_branch_is_really_gone() {
    let test = "t20_mariadb_phase2_waits_until_the_branch_is_really_gone";
    let Some(url) = tandem_participant::testenv::url("TANDEM_TEST_MYSQL", test) else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let tag = format!("x{}_{}", std::process::id(), nanos % 1_000_000_000);
    let bank = Bank::connect(&url, &tag).await.expect("bank");
    bank.setup(1, 100).await.expect("setup");
    let xid = Xid::new(format!("bk-{tag}-0-0-02")).expect("xid");
    let q = format!("'{}'", xid.as_str());

    // Prepare a branch by hand and keep its session open (attached).
    let mut holder = Conn::new(Opts::from_url(&url).expect("url"))
        .await
        .expect("connect");
    holder.query_drop(format!("XA START {q}")).await.unwrap();
    holder
        .query_drop(format!(
            "UPDATE bank_{tag}_account SET balance = balance + 5 WHERE id = 0"
        ))
        .await
        .unwrap();
    holder.query_drop(format!("XA END {q}")).await.unwrap();
    holder.query_drop(format!("XA PREPARE {q}")).await.unwrap();

    let early = bank.xa_finish(&xid, Op::Commit).await;
    assert!(
        early.is_err(),
        "phase 2 reported success for a branch that is still prepared"
    );

    // Once the preparing session is gone, the commit goes through (retry until the server
    // has processed the disconnect).
    holder.disconnect().await.unwrap();
    let mut committed = false;
    for _ in 0..50 {
        if bank.xa_finish(&xid, Op::Commit).await.is_ok() {
            committed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(committed, "the detached branch was never committed");
    let snap = bank.snapshot().await.expect("snapshot");
    assert_eq!(snap.accounts[0].balance, 105);
    assert!(!snap.prepared.iter().any(|x| x == xid.as_str()));
    bank.drop_tables().await.expect("drop this run's tables");
}
