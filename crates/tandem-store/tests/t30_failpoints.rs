//! Failpoint tests of `RedbStore` (run with `--features failpoints`).
//!
//! Guards against: acknowledging or showing a write whose fsync failed, and accepting more
//! writes after it (fail-stop: after an fsync error the page cache state is unknown).
#![cfg(feature = "failpoints")]

use tandem_store::conformance::saga;
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_fails_the_batch_and_stops_the_store() -> anyhow::Result<()> {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open(dir.path(), RedbConfig::default())?;
    store.write(saga("fp-1", 1), true).await?;

    fail::cfg("store-before-sync", "return").map_err(anyhow::Error::msg)?;
    assert!(
        store.write(saga("fp-2", 1), true).await.is_err(),
        "the failed batch errs"
    );
    fail::remove("store-before-sync");
    assert!(
        store.get("fp-2").await?.is_none(),
        "not visible: never durable"
    );
    let refused = store.write(saga("fp-3", 1), true).await;
    assert!(
        matches!(refused, Err(StoreError::Failed(_))),
        "fail-stop: {refused:?}"
    );
    assert!(
        matches!(store.flush().await, Err(StoreError::Failed(_))),
        "flush refused too"
    );
    assert_eq!(
        store.get("fp-1").await?.map(|t| t.version),
        Some(1),
        "reads still work"
    );
    drop(store);

    let store = RedbStore::open(dir.path(), RedbConfig::default())?;
    assert_eq!(
        store.get("fp-1").await?.map(|t| t.version),
        Some(1),
        "kept across reopen"
    );
    assert!(
        store.get("fp-3").await?.is_none(),
        "a refused write never lands"
    );
    store.write(saga("fp-4", 1), true).await?;
    assert_eq!(
        store.get("fp-4").await?.map(|t| t.version),
        Some(1),
        "writes after reopen"
    );
    store.close().await?;
    scenario.teardown();
    Ok(())
}
