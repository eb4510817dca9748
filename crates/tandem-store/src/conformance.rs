//! The conformance suite every [`Store`] backend runs: the crate-level promise, as tests.
//!
//! A backend plugs in through [`Backend`] (how to open a store on a directory, and whether
//! what it holds survives a reopen) and runs [`test_all`] from its own integration test.
//! Each check uses its own subdirectory of the base directory, so checks never see each
//! other's data. Durable backends also prove that acknowledged writes survive `close` and a
//! plain `drop` followed by a reopen; the crash test (`tests/t20_crash.rs`) covers real
//! process death. The suite panics on the first broken promise, naming it.
//!
//! Guards against: a topic change lost to a concurrent one (compare-and-set) or to a
//! restart; older snapshots overwriting newer ones after a replay; a sync write that
//! resolves before it is readable; paging that repeats or skips items; writes lost when many
//! tasks write at once; a delta logged before its base (or replayed on the wrong one); an
//! identity that changes once set.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tandem_core::{
    Attempt, AttemptOutcome, Branch, BranchStatus, Identity, Op, Options, Timestamp, Transaction,
    TxKind, TxStatus,
};

use crate::{Claim, Due, ListQuery, Record, Store, StoreError};

/// How the suite opens a backend.
pub trait Backend {
    type S: Store;
    /// Whether a store reopened on the same directory still holds what was written.
    const DURABLE: bool;
    /// Opens (or reopens) a store on `dir`, which exists. Panics on failure.
    fn open(dir: &Path) -> Self::S;
}

/// Runs every check; `base` must be an empty, writable directory. Call it from a
/// multi-threaded tokio runtime.
pub async fn test_all<B: Backend>(base: &Path) {
    round_trip::<B>(&sub(base, "round_trip")).await;
    newest_wins::<B>(&sub(base, "newest_wins")).await;
    sync_write_visible::<B>(&sub(base, "sync_visible")).await;
    unfinished::<B>(&sub(base, "unfinished")).await;
    list_filters::<B>(&sub(base, "list_filters")).await;
    list_paging::<B>(&sub(base, "list_paging")).await;
    list_rejects::<B>(&sub(base, "list_rejects")).await;
    concurrent_writers::<B>(&sub(base, "concurrent")).await;
    closed::<B>(&sub(base, "closed")).await;
    stats::<B>(&sub(base, "stats")).await;
    topics::<B>(&sub(base, "topics")).await;
    identity::<B>(&sub(base, "identity")).await;
    due_index::<B>(&sub(base, "due_index")).await;
    retention::<B>(&sub(base, "retention")).await;
    deltas::<B>(&sub(base, "deltas")).await;
    if B::DURABLE {
        topics_survive_reopen::<B>(&sub(base, "topics_reopen")).await;
        reopen_after_close::<B>(&sub(base, "reopen_close")).await;
        reopen_after_drop::<B>(&sub(base, "reopen_drop")).await;
    }
}

fn sub(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("create {}: {e}", dir.display());
    }
    dir
}

/// A transaction with one ~200-byte branch, in the given shape.
pub fn make_tx(
    gid: &str,
    version: u64,
    kind: TxKind,
    status: TxStatus,
    parked: bool,
    created_ms: u64,
) -> Transaction {
    let mut tx = Transaction::new(gid, kind, Options::default(), Timestamp(created_ms));
    tx.branches.push(Branch::new(
        "01",
        Op::Action,
        "http://bank-a/transfer",
        vec![b'x'; 200],
    ));
    tx.version = version;
    tx.status = status;
    tx.updated_at = Timestamp(created_ms + version);
    if status.is_final() {
        tx.finished_at = Some(tx.updated_at);
    }
    if parked {
        tx.parked = Some("retry limit reached".into());
    }
    tx
}

/// [`make_tx`] as a [`Record`].
pub fn make_rec(
    gid: &str,
    version: u64,
    kind: TxKind,
    status: TxStatus,
    parked: bool,
    created_ms: u64,
) -> Record {
    ok(
        Record::from_tx(&make_tx(gid, version, kind, status, parked, created_ms)),
        "encode",
    )
}

/// A plain saga record: submitted, created at `1000 + version`-independent time 1000.
pub fn saga(gid: &str, version: u64) -> Record {
    make_rec(
        gid,
        version,
        TxKind::Saga,
        TxStatus::Submitted,
        false,
        1_000,
    )
}

fn ok<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// Every unfinished gid: all of them are due at the end of time (active ones included).
async fn unfinished_gids<S: Store + ?Sized>(s: &S) -> Vec<String> {
    ok(
        s.claim_due(Timestamp(u64::MAX - 1), 1_000_000, true).await,
        "claim_due",
    )
    .into_iter()
    .map(|c| c.tx.gid)
    .collect()
}

async fn version_of<S: Store>(s: &S, gid: &str) -> Option<u64> {
    ok(s.get(gid).await, "get").map(|t| t.version)
}

async fn round_trip<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let tx = make_tx("rt-1", 1, TxKind::Tcc, TxStatus::Prepared, false, 77);
    ok(
        s.write(ok(Record::from_tx(&tx), "encode"), true).await,
        "write",
    );
    assert_eq!(ok(s.get("rt-1").await, "get"), Some(tx), "round trip");
    assert_eq!(ok(s.get("rt-missing").await, "get"), None, "missing gid");
    ok(s.close().await, "close");
}

async fn newest_wins<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    ok(s.write(saga("nw-1", 3), true).await, "write v3");
    ok(s.write(saga("nw-1", 2), true).await, "write v2");
    assert_eq!(
        version_of(&s, "nw-1").await,
        Some(3),
        "an older version written later wins"
    );
    ok(s.write(saga("nw-1", 5), false).await, "write v5");
    ok(s.write(saga("nw-1", 4), false).await, "write v4");
    ok(s.flush().await, "flush");
    assert_eq!(version_of(&s, "nw-1").await, Some(5), "newest after flush");
    ok(s.close().await, "close");
}

async fn sync_write_visible<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    for v in 1..=50 {
        ok(s.write(saga("sv-1", v), v % 2 == 0).await, "write");
        if v % 2 == 0 {
            assert_eq!(
                version_of(&s, "sv-1").await,
                Some(v),
                "sync write not visible"
            );
        }
    }
    ok(s.close().await, "close");
}

async fn unfinished<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let (saga, tcc) = (TxKind::Saga, TxKind::Tcc);
    ok(
        s.write(
            make_rec("un-a", 1, saga, TxStatus::Submitted, false, 1),
            true,
        )
        .await,
        "a",
    );
    ok(
        s.write(
            make_rec("un-b", 1, saga, TxStatus::Succeeded, false, 2),
            true,
        )
        .await,
        "b",
    );
    ok(
        s.write(make_rec("un-c", 1, tcc, TxStatus::Prepared, false, 3), true)
            .await,
        "c1",
    );
    ok(
        s.write(make_rec("un-c", 2, tcc, TxStatus::Failed, false, 3), true)
            .await,
        "c2",
    );
    ok(
        s.write(make_rec("un-d", 1, tcc, TxStatus::Aborting, true, 4), true)
            .await,
        "d",
    );
    let mut gids = unfinished_gids(&s).await;
    gids.sort();
    assert_eq!(
        gids,
        ["un-a", "un-d"],
        "unfinished holds the non-final ones only"
    );
    ok(s.close().await, "close");
}

/// Thirty transactions of every shape; the expected answers come from filtering the list.
fn corpus() -> Vec<Record> {
    let kinds = [TxKind::Saga, TxKind::Tcc, TxKind::TwoPc, TxKind::Msg];
    let statuses = [
        TxStatus::Prepared,
        TxStatus::Submitted,
        TxStatus::Succeeded,
        TxStatus::Failed,
    ];
    (0..30u64)
        .map(|i| {
            let gid = format!("{}-{i:02}", if i % 3 == 0 { "shop" } else { "bank" });
            // Pairs share a creation time, so the gid tie-break matters.
            let created = 10_000 + (i / 2) * 10;
            let (kind, status) = (kinds[i as usize % 4], statuses[(i as usize / 4) % 4]);
            make_rec(
                &gid,
                1 + i % 2,
                kind,
                status,
                i % 5 == 0 && !status.is_final(),
                created,
            )
        })
        .collect()
}

async fn list_all<S: Store>(s: &S, q: &ListQuery) -> Vec<(u64, String)> {
    let page = ok(s.list(q).await, "list");
    assert!(page.next.is_none(), "one page expected for {q:?}");
    page.items
        .iter()
        .map(|t| (t.created_at.0, t.gid.clone()))
        .collect()
}

async fn list_filters<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let recs = corpus();
    for r in &recs {
        ok(s.write(r.clone(), false).await, "write");
    }
    ok(s.flush().await, "flush");
    let expect = |f: &dyn Fn(&Record) -> bool| {
        let mut v: Vec<(u64, String)> = recs
            .iter()
            .filter(|r| f(r))
            .map(|r| (r.created_at.0, r.gid.clone()))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    };
    let base = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    assert_eq!(
        list_all(&s, &base).await,
        expect(&|_| true),
        "everything, newest first"
    );
    let q = ListQuery {
        status: Some(TxStatus::Succeeded),
        ..base.clone()
    };
    assert_eq!(
        list_all(&s, &q).await,
        expect(&|r| r.status == TxStatus::Succeeded),
        "status"
    );
    let q = ListQuery {
        kind: Some(TxKind::Tcc),
        ..base.clone()
    };
    assert_eq!(
        list_all(&s, &q).await,
        expect(&|r| r.kind == TxKind::Tcc),
        "kind"
    );
    let q = ListQuery {
        parked: Some(true),
        ..base.clone()
    };
    assert_eq!(list_all(&s, &q).await, expect(&|r| r.parked), "parked");
    let q = ListQuery {
        parked: Some(false),
        ..base.clone()
    };
    assert_eq!(list_all(&s, &q).await, expect(&|r| !r.parked), "not parked");
    let q = ListQuery {
        gid_prefix: Some("shop".into()),
        ..base.clone()
    };
    assert_eq!(
        list_all(&s, &q).await,
        expect(&|r| r.gid.starts_with("shop")),
        "gid prefix"
    );
    let (from, to) = (Timestamp(10_040), Timestamp(10_100));
    let q = ListQuery {
        created_from: Some(from),
        created_to: Some(to),
        ..base.clone()
    };
    let in_range = |r: &Record| r.created_at >= from && r.created_at < to;
    assert_eq!(list_all(&s, &q).await, expect(&in_range), "created range");
    let q = ListQuery {
        kind: Some(TxKind::Saga),
        gid_prefix: Some("bank".into()),
        created_from: Some(from),
        ..base.clone()
    };
    let combo =
        |r: &Record| r.kind == TxKind::Saga && r.gid.starts_with("bank") && r.created_at >= from;
    assert_eq!(list_all(&s, &q).await, expect(&combo), "combined filters");
    // The newest version is what filters see.
    ok(
        s.write(
            make_rec("shop-00", 9, TxKind::Saga, TxStatus::Failed, false, 10_000),
            true,
        )
        .await,
        "w",
    );
    let q = ListQuery {
        status: Some(TxStatus::Failed),
        gid_prefix: Some("shop-00".into()),
        ..base
    };
    assert_eq!(
        list_all(&s, &q).await,
        [(10_000, "shop-00".to_string())],
        "filters see newest"
    );
    ok(s.close().await, "close");
}

async fn list_paging<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let mut want = Vec::new();
    for i in 0..130u64 {
        let gid = format!("pg-{i:03}");
        let created = 50_000 + i / 3; // triples share a creation time
        ok(
            s.write(
                make_rec(&gid, 1, TxKind::Saga, TxStatus::Submitted, false, created),
                i % 7 == 0,
            )
            .await,
            "write",
        );
        want.push((created, gid));
    }
    ok(s.flush().await, "flush");
    want.sort_by(|a, b| b.cmp(a));
    let mut got = Vec::new();
    let mut q = ListQuery {
        limit: 40,
        ..ListQuery::default()
    };
    let mut pages = 0;
    loop {
        let page = ok(s.list(&q).await, "list page");
        pages += 1;
        assert!(page.items.len() <= 40, "page over its limit");
        got.extend(page.items.iter().map(|t| (t.created_at.0, t.gid.clone())));
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 4, "130 items in pages of 40");
    let unique: HashSet<&(u64, String)> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates across pages");
    assert_eq!(
        got, want,
        "pages put together are the whole set, newest first"
    );
    let page = ok(s.list(&ListQuery::default()).await, "default limit");
    assert_eq!(
        page.items.len(),
        crate::LIST_LIMIT_DEFAULT,
        "limit 0 means the default"
    );
    assert!(page.next.is_some(), "more after a default page");
    ok(s.close().await, "close");
}

async fn list_rejects<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    for cursor in ["not a cursor", "", "00ff-zz"] {
        let q = ListQuery {
            cursor: Some(cursor.into()),
            ..ListQuery::default()
        };
        assert!(
            matches!(s.list(&q).await, Err(StoreError::InvalidQuery(_))),
            "cursor {cursor:?}"
        );
    }
    let q = ListQuery {
        limit: crate::LIST_LIMIT_MAX + 1,
        ..ListQuery::default()
    };
    assert!(
        matches!(s.list(&q).await, Err(StoreError::InvalidQuery(_))),
        "limit too high"
    );
    let q = ListQuery {
        limit: crate::LIST_LIMIT_MAX,
        ..ListQuery::default()
    };
    assert!(
        ok(s.list(&q).await, "max limit").items.is_empty(),
        "empty store"
    );
    ok(s.close().await, "close");
}

const TASKS: u64 = 64;
const WRITES_PER_TASK: u64 = 200;
const GIDS_PER_TASK: u64 = 8;

/// Each task writes its own gids with rising versions; the last version of each must win.
async fn concurrent_writes<S: Store>(s: &Arc<S>, prefix: &str) -> BTreeMap<String, u64> {
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let s = Arc::clone(s);
        let prefix = prefix.to_string();
        handles.push(tokio::spawn(async move {
            for w in 0..WRITES_PER_TASK {
                let gid = format!("{prefix}-{t:02}-{}", w % GIDS_PER_TASK);
                let version = 1 + w / GIDS_PER_TASK;
                ok(
                    s.write(saga(&gid, version), w % 3 == 0).await,
                    "concurrent write",
                );
            }
        }));
    }
    for h in handles {
        ok(h.await, "writer task");
    }
    let mut want = BTreeMap::new();
    for t in 0..TASKS {
        for g in 0..GIDS_PER_TASK {
            let last = (0..WRITES_PER_TASK)
                .filter(|w| w % GIDS_PER_TASK == g)
                .max()
                .unwrap_or(0);
            want.insert(format!("{prefix}-{t:02}-{g}"), 1 + last / GIDS_PER_TASK);
        }
    }
    want
}

async fn assert_versions<S: Store>(s: &S, want: &BTreeMap<String, u64>, when: &str) {
    for (gid, v) in want {
        assert_eq!(version_of(s, gid).await, Some(*v), "{gid} {when}");
    }
}

async fn concurrent_writers<B: Backend>(dir: &Path) {
    let s = Arc::new(B::open(dir));
    let want = concurrent_writes(&s, "cw").await;
    ok(s.flush().await, "flush");
    assert_versions(&*s, &want, "after flush").await;
    let listed = ok(
        s.list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await,
        "list",
    );
    assert_eq!(listed.items.len(), want.len(), "every gid listed once");
    assert_eq!(
        unfinished_gids(&*s).await.len(),
        want.len(),
        "all unfinished"
    );
    assert_eq!(
        ok(s.counts().await, "counts").unfinished as usize,
        want.len(),
        "counted"
    );
    ok(s.close().await, "close");
}

async fn closed<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    ok(s.write(saga("cl-1", 1), true).await, "write");
    ok(s.close().await, "close");
    assert!(
        matches!(
            s.write(saga("cl-1", 2), true).await,
            Err(StoreError::Closed)
        ),
        "write"
    );
    assert!(
        matches!(
            s.write(saga("cl-1", 2), false).await,
            Err(StoreError::Closed)
        ),
        "write"
    );
    assert!(
        matches!(s.get("cl-1").await, Err(StoreError::Closed)),
        "get after close"
    );
    assert!(
        matches!(s.flush().await, Err(StoreError::Closed)),
        "flush after close"
    );
}

async fn stats<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let before = s.stats();
    for v in 1..=10 {
        ok(s.write(saga("st-1", v), v == 10).await, "write");
    }
    ok(s.flush().await, "flush");
    let after = s.stats();
    assert!(
        after.records >= before.records + 10,
        "records counted: {after:?}"
    );
    assert!(after.bytes > before.bytes, "bytes counted: {after:?}");
    assert!(after.batches > before.batches, "batches counted: {after:?}");
    if B::DURABLE {
        assert!(after.syncs > before.syncs, "syncs counted: {after:?}");
    }
    ok(s.close().await, "close");
}

async fn reopen_after_close<B: Backend>(dir: &Path) {
    let s = Arc::new(B::open(dir));
    let want = concurrent_writes(&s, "rc").await;
    ok(
        s.write(
            make_rec("rc-final", 2, TxKind::Saga, TxStatus::Succeeded, false, 5),
            true,
        )
        .await,
        "w",
    );
    ok(s.close().await, "close");
    drop(s);
    let s = B::open(dir);
    assert_versions(&s, &want, "after close and reopen").await;
    assert_eq!(
        version_of(&s, "rc-final").await,
        Some(2),
        "final one after reopen"
    );
    let unfinished = unfinished_gids(&s).await;
    assert_eq!(unfinished.len(), want.len(), "unfinished after reopen");
    // Reopened stores keep accepting writes, and the newest still wins.
    ok(s.write(saga("rc-00-0", 1), true).await, "older write");
    ok(s.write(saga("rc-00-1", 1_000), true).await, "newer write");
    ok(s.close().await, "close again");
    drop(s);
    let s = B::open(dir);
    assert_eq!(
        version_of(&s, "rc-00-0").await,
        want.get("rc-00-0").copied(),
        "older ignored"
    );
    assert_eq!(
        version_of(&s, "rc-00-1").await,
        Some(1_000),
        "newer after second reopen"
    );
    ok(s.close().await, "close");
}

async fn reopen_after_drop<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let mut acked = Vec::new();
    for i in 0..300u64 {
        let gid = format!("rd-{}", i % 50);
        let sync = i % 4 == 0;
        ok(s.write(saga(&gid, 1 + i / 50), sync).await, "write");
        if sync {
            acked.push((gid, 1 + i / 50));
        }
    }
    drop(s);
    let s = B::open(dir);
    for (gid, v) in &acked {
        let got = version_of(&s, gid).await;
        assert!(
            got >= Some(*v),
            "{gid}: acknowledged v{v}, found {got:?} after drop and reopen"
        );
    }
    ok(s.close().await, "close");
}

fn topic(name: &str, urls: &[&str], version: u64) -> crate::Topic {
    crate::Topic {
        name: name.into(),
        subscribers: urls
            .iter()
            .map(|u| crate::Subscriber {
                url: (*u).into(),
                remark: format!("remark of {u}"),
            })
            .collect(),
        version,
        created_at: Timestamp(1),
        updated_at: Timestamp(version),
    }
}

/// Topics: compare-and-set on the version, listing by name, deletion.
async fn topics<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let ok = |r: crate::Result<bool>, what: &str| match r {
        Ok(b) => b,
        Err(e) => panic!("{what}: {e}"),
    };
    assert!(
        ok(s.topics().await.map(|t| t.is_empty()), "topics"),
        "no topics yet"
    );
    let t1 = topic("orders", &["http://a/1"], 1);
    assert!(
        ok(s.put_topic(&t1, 0).await, "create"),
        "create with expected 0"
    );
    assert!(
        !ok(
            s.put_topic(&topic("orders", &["http://b/1"], 1), 0).await,
            "create again"
        ),
        "a second create must lose, not overwrite"
    );
    let t2 = topic("orders", &["http://a/1", "http://a/2"], 2);
    assert!(ok(s.put_topic(&t2, 1).await, "update"));
    assert!(
        !ok(
            s.put_topic(&topic("orders", &[], 2), 1).await,
            "stale update"
        ),
        "an update from a stale read must lose"
    );
    assert_eq!(s.topic("orders").await.ok().flatten(), Some(t2.clone()));
    assert_eq!(s.topic("none").await.ok().flatten(), None);
    assert!(ok(
        s.put_topic(&topic("audit", &["http://c/1"], 1), 0).await,
        "second"
    ));
    let names: Vec<String> = match s.topics().await {
        Ok(t) => t.into_iter().map(|t| t.name).collect(),
        Err(e) => panic!("topics: {e}"),
    };
    assert_eq!(
        names,
        vec!["audit".to_string(), "orders".to_string()],
        "by name"
    );
    assert!(ok(s.delete_topic("audit").await, "delete"));
    assert!(!ok(s.delete_topic("audit").await, "delete again"));
    assert_eq!(s.topic("audit").await.ok().flatten(), None);
    assert!(
        s.put_topic(&topic("", &[], 1), 0).await.is_err(),
        "a nameless topic"
    );
    if let Err(e) = s.close().await {
        panic!("close: {e}");
    }
    assert!(matches!(s.topics().await, Err(StoreError::Closed)));
    assert!(matches!(
        s.put_topic(&topic("late", &[], 1), 0).await,
        Err(StoreError::Closed)
    ));
}

/// An acknowledged topic change survives a close and a drop.
async fn topics_survive_reopen<B: Backend>(dir: &Path) {
    {
        let s = B::open(dir);
        assert!(matches!(
            s.put_topic(&topic("keep", &["http://a/1"], 1), 0).await,
            Ok(true)
        ));
        assert!(matches!(
            s.put_topic(&topic("gone", &["http://a/1"], 1), 0).await,
            Ok(true)
        ));
        assert!(matches!(s.delete_topic("gone").await, Ok(true)));
        if let Err(e) = s.close().await {
            panic!("close: {e}");
        }
    }
    {
        let s = B::open(dir);
        assert_eq!(
            s.topic("keep").await.ok().flatten(),
            Some(topic("keep", &["http://a/1"], 1))
        );
        assert_eq!(s.topic("gone").await.ok().flatten(), None);
        assert!(matches!(
            s.put_topic(&topic("keep", &["http://a/1", "http://a/2"], 2), 1)
                .await,
            Ok(true)
        ));
        drop(s);
    }
    let s = B::open(dir);
    assert_eq!(
        s.topic("keep").await.ok().flatten().map(|t| t.version),
        Some(2),
        "kept after a plain drop"
    );
}

async fn identity<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    assert_eq!(
        ok(s.identity().await, "identity"),
        None,
        "a new store has none"
    );
    let a = ok(Identity::new("node-a", 0x1234_5678), "identity");
    let b = ok(Identity::new("node-b", 9), "identity");
    assert_eq!(
        ok(s.init_identity(a.clone()).await, "init"),
        a,
        "first init sets it"
    );
    assert_eq!(
        ok(s.init_identity(b).await, "init again"),
        a,
        "never replaced"
    );
    assert_eq!(ok(s.identity().await, "identity"), Some(a.clone()));
    ok(s.close().await, "close");
    drop(s);
    if B::DURABLE {
        let s = B::open(dir);
        assert_eq!(
            ok(s.identity().await, "identity"),
            Some(a),
            "durable across reopen"
        );
        ok(s.close().await, "close");
    }
}

/// A transaction with `n` TCC-shaped branches (payload shared by each pair).
fn wide_tx(gid: &str, n: usize) -> Transaction {
    let mut tx = Transaction::new(gid, TxKind::Tcc, Options::default(), Timestamp(50));
    for k in 0..n {
        let p: Arc<[u8]> = vec![k as u8; 300].into();
        for op in [Op::Confirm, Op::Cancel] {
            tx.branches
                .push(Branch::new(format!("b{k}"), op, "http://x/y", p.clone()));
        }
    }
    tx
}

/// Many versions of a wide transaction, written as a snapshot then deltas (unsynced and
/// synced mixed, more unsynced ones than a queue holds), read back whole — and, for durable
/// stores, after a reopen that replays the deltas.
async fn deltas<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let mut tx = wide_tx("delta-1", 20);
    let mut shadow = None;
    let mut logged_delta = 0;
    for v in 1..=300u64 {
        tx.version = v;
        let i = (v as usize * 7) % tx.branches.len();
        tx.branches[i].attempts += 1;
        tx.branches[i].status = BranchStatus::Running;
        tx.branches[i].record_attempt(Attempt {
            at: Timestamp(v),
            latency_us: v,
            outcome: AttemptOutcome::Error,
            code: Some(503),
            error: Some(format!("attempt {v}")),
        });
        if v.is_multiple_of(50) {
            tx.branches.push(Branch::new(
                format!("late{v}"),
                Op::Confirm,
                "u",
                vec![1u8; 10],
            ));
        }
        let rec = ok(Record::logged(&tx, &mut shadow), "encode");
        logged_delta += usize::from(rec.delta.is_some());
        ok(s.write(rec, v.is_multiple_of(97)).await, "write");
    }
    assert!(
        logged_delta >= 299,
        "a wide transaction is logged as deltas"
    );
    ok(s.flush().await, "flush");
    assert_eq!(
        ok(s.get("delta-1").await, "get"),
        Some(tx.clone()),
        "read whole"
    );
    ok(s.close().await, "close");
    drop(s);
    if B::DURABLE {
        let s = B::open(dir);
        assert_eq!(
            ok(s.get("delta-1").await, "get"),
            Some(tx.clone()),
            "replayed"
        );
        // Writing on after the reopen chains deltas from the replayed state.
        let mut shadow = Some(tandem_core::codec::Shadow::of(&tx));
        tx.version += 1;
        tx.status = TxStatus::Submitted;
        ok(
            s.write(ok(Record::logged(&tx, &mut shadow), "encode"), true)
                .await,
            "write",
        );
        drop(s);
        let s = B::open(dir);
        assert_eq!(
            ok(s.get("delta-1").await, "get"),
            Some(tx),
            "after drop and reopen"
        );
        ok(s.close().await, "close");
    }
}

fn with_due(mut rec: Record, due: Due) -> Record {
    rec.due = due;
    rec
}

/// Open transactions wait in the store: idle ones come back when due (earliest first), active
/// ones only when asked for (a restart), final ones never; `claim` finds any of them.
async fn due_index<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    let tcc = TxKind::Tcc;
    let rec = |gid: &str, v: u64, status: TxStatus| make_rec(gid, v, tcc, status, false, 10);
    let writes = [
        with_due(rec("d-active", 1, TxStatus::Prepared), Due::Active),
        with_due(
            rec("d-100", 1, TxStatus::Prepared),
            Due::Idle(Some(Timestamp(100))),
        ),
        with_due(
            rec("d-50", 1, TxStatus::Submitted),
            Due::Idle(Some(Timestamp(50))),
        ),
        with_due(rec("d-never", 1, TxStatus::Prepared), Due::Idle(None)),
        with_due(
            rec("d-done", 1, TxStatus::Succeeded),
            Due::Idle(Some(Timestamp(1))),
        ),
        with_due(
            make_rec("d-parked", 1, tcc, TxStatus::Submitted, true, 10),
            Due::Idle(None),
        ),
    ];
    for w in writes {
        ok(s.write(w, true).await, "write");
    }
    let gids = |c: Vec<crate::Claimed>| c.into_iter().map(|c| c.tx.gid).collect::<Vec<_>>();
    assert_eq!(ok(s.next_due().await, "next_due"), Some(Timestamp(50)));
    assert_eq!(
        gids(ok(s.claim_due(Timestamp(49), 10, false).await, "due")),
        Vec::<String>::new(),
        "nothing due yet"
    );
    assert_eq!(
        gids(ok(s.claim_due(Timestamp(100), 10, false).await, "due")),
        ["d-50", "d-100"],
        "due ones, earliest first; never the active or the final one"
    );
    assert_eq!(
        gids(ok(s.claim_due(Timestamp(100), 1, false).await, "due")),
        ["d-50"],
        "bounded"
    );
    let at_start = ok(s.claim_due(Timestamp(100), 10, true).await, "due");
    assert_eq!(gids(at_start.clone()), ["d-active", "d-50", "d-100"]);
    assert!(
        at_start[0].resume && !at_start[1].resume,
        "active ones are resumed"
    );
    assert_eq!(
        ok(s.counts().await, "counts"),
        crate::Counts {
            unfinished: 5,
            parked: 1
        }
    );
    // A newer version moves it in the index; ending it takes it out.
    ok(
        s.write(
            with_due(
                rec("d-50", 2, TxStatus::Submitted),
                Due::Idle(Some(Timestamp(500))),
            ),
            true,
        )
        .await,
        "move",
    );
    let mut fin = make_tx("d-100", 2, tcc, TxStatus::Succeeded, false, 10);
    fin.finished_at = Some(Timestamp(60));
    ok(
        s.write(ok(Record::from_tx(&fin), "encode"), true).await,
        "end",
    );
    assert_eq!(
        gids(ok(s.claim_due(Timestamp(499), 10, false).await, "due")),
        Vec::<String>::new()
    );
    assert_eq!(ok(s.next_due().await, "next_due"), Some(Timestamp(500)));
    assert_eq!(ok(s.counts().await, "counts").unfinished, 4);
    match ok(s.claim("d-never").await, "claim") {
        Claim::Got(c) => assert!(!c.resume && c.tx.gid == "d-never"),
        other => panic!("claim d-never: {other:?}"),
    }
    match ok(s.claim("d-active").await, "claim") {
        Claim::Got(c) => assert!(c.resume, "an active record is resumed"),
        other => panic!("claim d-active: {other:?}"),
    }
    assert!(matches!(
        ok(s.claim("d-missing").await, "claim"),
        Claim::Missing
    ));
    ok(s.close().await, "close");
    drop(s);
    if B::DURABLE {
        let s = B::open(dir);
        assert_eq!(
            ok(s.next_due().await, "next_due"),
            Some(Timestamp(500)),
            "after reopen"
        );
        assert_eq!(
            ok(s.counts().await, "counts"),
            crate::Counts {
                unfinished: 4,
                parked: 1
            },
            "after reopen"
        );
        ok(s.close().await, "close");
    }
}

/// Finished transactions older than the cut are deleted, in bounded batches; nothing else.
async fn retention<B: Backend>(dir: &Path) {
    let s = B::open(dir);
    for i in 0..25u64 {
        let mut tx = make_tx(
            &format!("r-{i:02}"),
            1,
            TxKind::Saga,
            TxStatus::Succeeded,
            false,
            i,
        );
        tx.finished_at = Some(Timestamp(1_000 + i));
        ok(
            s.write(ok(Record::from_tx(&tx), "encode"), false).await,
            "write",
        );
    }
    ok(s.write(saga("r-open", 1), true).await, "open one");
    ok(s.flush().await, "flush");
    // A store may index final records a moment after they are durable: allow it a second.
    let mut first = 0;
    for _ in 0..100 {
        first = ok(s.purge_finished(Timestamp(1_020), 8).await, "purge");
        if first > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(first, 8, "a bounded batch");
    let mut purged = 8;
    loop {
        let n = ok(s.purge_finished(Timestamp(1_020), 8).await, "purge");
        if n == 0 {
            break;
        }
        purged += n;
    }
    assert_eq!(purged, 20, "every one that finished before the cut, once");
    for i in 0..25u64 {
        let gid = format!("r-{i:02}");
        assert_eq!(
            version_of(&s, &gid).await.is_some(),
            i >= 20,
            "{gid} after retention"
        );
    }
    assert_eq!(
        version_of(&s, "r-open").await,
        Some(1),
        "unfinished ones stay"
    );
    assert_eq!(s.stats().purged, 20);
    ok(s.close().await, "close");
}
