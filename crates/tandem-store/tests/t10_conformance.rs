//! Runs the conformance suite ([`tandem_store::conformance`]) on every backend.

use std::path::Path;

use tandem_store::conformance::{test_all, Backend};
use tandem_store::memory::MemoryStore;

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
