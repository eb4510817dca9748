//! The bank example end to end, against the real PostgreSQL (`TANDEM_TEST_PG`) and MariaDB
//! (`TANDEM_TEST_MYSQL`), with the coordinator in-process: each mode briefly (8 clients,
//! 5 s) with injected failures, and the checker's verdict must be that the money adds up.
//! Guards against a transfer applied twice, half-applied, or left half-undone.

use std::time::Duration;

use bank::check::{self, CheckConfig, Mode};
use bank::demo::Demo;
use bank::store::Bank;

async fn run_mode(mode: Mode, test: &str) {
    let Some(pg) = tandem_participant::testenv::url("TANDEM_TEST_PG", test) else {
        return;
    };
    let Some(mysql) = tandem_participant::testenv::url("TANDEM_TEST_MYSQL", test) else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let tag = format!("t{}_{}", std::process::id(), nanos % 1_000_000_000);
    let demo = Demo::start(&pg, &mysql, &tag).await.expect("demo starts");
    let report = check::run(CheckConfig {
        coordinator: demo.coordinator.clone(),
        banks: demo.banks.clone(),
        mode,
        clients: 8,
        duration: Duration::from_secs(5),
        accounts: 6,
        balance: 500,
        amount_max: 300,
        fail_pct: 15,
        settle: Duration::from_secs(40),
    })
    .await
    .expect("checker runs");
    println!("{report}");
    if !report.ok() {
        demo.stop().await;
        panic!("{report}"); // the tables stay, for a look
    }
    assert!(report.succeeded > 0, "no transfer succeeded: {report}");
    assert!(report.rolled_back > 0, "no transfer rolled back: {report}");
    // Passed: the tables go, the way `bank demo` and `bank check` drop them.
    check::teardown(&demo.banks).await.expect("teardown");
    demo.stop().await;
    for url in [&pg, &mysql] {
        let bank = Bank::connect(url, &tag).await.expect("connect");
        assert!(
            bank.snapshot().await.is_err(),
            "the tables of {tag} are still there after teardown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t10_saga_transfers_keep_the_money() {
    run_mode(Mode::Saga, "t10_saga_transfers_keep_the_money").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t11_tcc_transfers_keep_the_money() {
    run_mode(Mode::Tcc, "t11_tcc_transfers_keep_the_money").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t12_xa_transfers_keep_the_money() {
    run_mode(Mode::Xa, "t12_xa_transfers_keep_the_money").await;
}
