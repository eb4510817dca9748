//! Log segments the disk left in odd states.
//!
//! Guards against bug 6: a new segment that a power cut left as zeros (its size durable
//! before its header) stopped the coordinator from starting until someone deleted a file by
//! hand. Now segments are created under a temporary name and renamed once their header is
//! durable; a newest segment that is still blank (an older build, an odd file system) is read
//! as empty; any other unreadable segment refuses the open and names the file and offset.

use std::path::{Path, PathBuf};

use tandem_store::conformance::saga;
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{Store, StoreError};

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .collect();
    s.sort();
    s
}

/// A store holding `n` acknowledged sagas, closed; returns the next segment's name.
async fn store_with(dir: &Path, n: u64) -> anyhow::Result<PathBuf> {
    let s = RedbStore::open(dir, RedbConfig::default())?;
    for i in 0..n {
        s.write(saga(&format!("g{i}"), 1), true).await?;
    }
    s.close().await?;
    Ok(dir.join("wal").join(format!("{:020}.log", 1_000_000u64)))
}

#[tokio::test]
async fn a_blank_newest_segment_is_read_as_empty() -> anyhow::Result<()> {
    for len in [0usize, 10, 4096, 64 << 10] {
        let dir = tempfile::tempdir()?;
        let blank = store_with(dir.path(), 5).await?;
        std::fs::write(&blank, vec![0u8; len])?;
        let s = RedbStore::open(dir.path(), RedbConfig::default())
            .map_err(|e| anyhow::anyhow!("a blank newest segment of {len} bytes: {e}"))?;
        for i in 0..5 {
            assert_eq!(s.get(&format!("g{i}")).await?.map(|t| t.version), Some(1));
        }
        s.write(saga("after", 1), true).await?;
        s.close().await?;
        drop(s);
        let s = RedbStore::open(dir.path(), RedbConfig::default())?;
        assert!(s.get("after").await?.is_some());
        s.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn other_corruption_still_refuses_and_names_file_and_offset() -> anyhow::Result<()> {
    // Garbage where the header should be.
    let dir = tempfile::tempdir()?;
    let bad = store_with(dir.path(), 3).await?;
    std::fs::write(&bad, b"definitely not a segment header, nor zeros")?;
    match RedbStore::open(dir.path(), RedbConfig::default()) {
        Err(StoreError::Corrupt(m)) => {
            assert!(
                m.contains(&bad.display().to_string()) && m.contains("byte 0"),
                "{m}"
            );
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // A blank segment with a newer one after it: not the crash case, refused.
    let dir = tempfile::tempdir()?;
    store_with(dir.path(), 3).await?;
    assert!(
        !segments(dir.path()).is_empty(),
        "close keeps the newest segment"
    );
    std::fs::write(
        dir.path().join("wal").join(format!("{:020}.log", 0u64)),
        [0u8; 100],
    )?;
    match RedbStore::open(dir.path(), RedbConfig::default()) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("newer segments follow"), "{m}"),
        other => panic!("expected corruption, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_half_created_segment_leaves_no_trace() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    store_with(dir.path(), 2).await?;
    let tmp = dir.path().join("wal").join(format!("{:020}.tmp", 99u64));
    std::fs::write(&tmp, [0u8; 24])?;
    let s = RedbStore::open(dir.path(), RedbConfig::default())?;
    assert!(!tmp.exists(), "temporaries are removed at open");
    assert!(segments(dir.path())
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "log")));
    s.close().await?;
    Ok(())
}
