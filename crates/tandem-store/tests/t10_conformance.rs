//! Runs the conformance suite ([`tandem_store::conformance`]) on every backend.

use std::path::Path;

use tandem_store::conformance::{test_all, Backend};
use tandem_store::memory::MemoryStore;
use tandem_store::redb_store::{RedbConfig, RedbStore};

struct Memory;

impl Backend for Memory {
    type S = MemoryStore;
    const DURABLE: bool = false;
    fn open(_dir: &Path) -> MemoryStore {
        MemoryStore::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    test_all::<Memory>(dir.path()).await;
    Ok(())
}

struct Redb;

impl Backend for Redb {
    type S = RedbStore;
    const DURABLE: bool = true;
    fn open(dir: &Path) -> RedbStore {
        match RedbStore::open(dir, RedbConfig::default()) {
            Ok(s) => s,
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_conforms() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    test_all::<Redb>(dir.path()).await;
    Ok(())
}
