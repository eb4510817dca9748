//! Unsynced writes (`sync = false`) in `RedbStore`: they wait beside the writer without
//! waking it, so each path that must still pick them up is checked here — the lazy flush
//! while the writer sleeps with nothing else to do, a later sync write, a flush, close, and
//! more of them at once than the side queue holds. Also checks that the log's zero-filling
//! ahead of the write position survives segment rotation and reopening.

use std::time::{Duration, Instant};

use tandem_store::conformance::saga;
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::Store;

fn open(dir: &std::path::Path, cfg: RedbConfig) -> RedbStore {
    match RedbStore::open(dir, cfg) {
        Ok(s) => s,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

async fn version(s: &RedbStore, gid: &str) -> Option<u64> {
    s.get(gid).await.expect("get").map(|t| t.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_writes_alone_become_durable_by_the_lazy_flush() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RedbConfig {
        lazy_flush_ms: 20,
        ..RedbConfig::default()
    };
    let s = open(dir.path(), cfg);
    // Let the writer go to sleep with nothing to sync, so the first write must nudge it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for round in 0..3u64 {
        let gid = format!("lazy-{round}");
        s.write(saga(&gid, 1), false).await.unwrap();
        let t0 = Instant::now();
        while version(&s, &gid).await.is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "an unsynced write never became durable (round {round})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(s.stats().syncs > round, "visible without a sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_write_or_flush_covers_the_unsynced_writes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RedbConfig {
        // Long enough that only the sync write or the flush can explain what is visible.
        lazy_flush_ms: 60_000,
        ..RedbConfig::default()
    };
    let s = open(dir.path(), cfg);
    for i in 0..50 {
        s.write(saga(&format!("u-{i}"), 1), false).await.unwrap();
    }
    s.write(saga("forced", 1), true).await.unwrap();
    for i in 0..50 {
        assert_eq!(version(&s, &format!("u-{i}")).await, Some(1), "u-{i}");
    }
    for i in 0..50 {
        s.write(saga(&format!("v-{i}"), 1), false).await.unwrap();
    }
    s.flush().await.unwrap();
    for i in 0..50 {
        assert_eq!(version(&s, &format!("v-{i}")).await, Some(1), "v-{i}");
    }
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_keeps_unsynced_writes_and_refuses_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RedbConfig {
        lazy_flush_ms: 60_000,
        ..RedbConfig::default()
    };
    {
        let s = open(dir.path(), cfg.clone());
        for i in 0..20 {
            s.write(saga(&format!("c-{i}"), 1), false).await.unwrap();
        }
        s.close().await.unwrap();
        assert!(s.write(saga("late", 1), false).await.is_err());
    }
    let s = open(dir.path(), cfg);
    for i in 0..20 {
        assert_eq!(version(&s, &format!("c-{i}")).await, Some(1), "c-{i}");
    }
    assert_eq!(version(&s, "late").await, None);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_unsynced_writes_than_the_queue_holds_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RedbConfig {
        queue_records_max: 8,
        batch_records_max: 4,
        ..RedbConfig::default()
    };
    let s = std::sync::Arc::new(open(dir.path(), cfg));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                s.write(saga(&format!("q-{t}-{i}"), 1), false)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.flush().await.unwrap();
    for t in 0..4 {
        for i in 0..200 {
            assert_eq!(
                version(&s, &format!("q-{t}-{i}")).await,
                Some(1),
                "q-{t}-{i}"
            );
        }
    }
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_filled_segments_rotate_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Segments smaller than one zero-fill step, and not a multiple of a block.
    let cfg = RedbConfig {
        segment_bytes_max: 100_000,
        ..RedbConfig::default()
    };
    {
        let s = open(dir.path(), cfg.clone());
        for i in 0..2_000u64 {
            s.write(saga(&format!("z-{i}"), 1 + i % 3), i % 4 == 0)
                .await
                .unwrap();
        }
        // Dropped without close: the writer drains and syncs, nothing is checkpointed.
    }
    let s = open(dir.path(), cfg);
    for i in 0..2_000u64 {
        assert_eq!(
            version(&s, &format!("z-{i}")).await,
            Some(1 + i % 3),
            "z-{i}"
        );
    }
    s.close().await.unwrap();
}
