//! # tandem-store: where transactions survive crashes
//!
//! The [`Store`] trait is the whole contract between the engine and a durable log:
//! snapshots of transactions go in ([`Store::write`]), and come back by gid, in pages, or —
//! claimed for a driver — when they are due ([`Store::claim_due`]) or asked for
//! ([`Store::claim`]); beside them, message topics ([`topic`]). Every backend runs the same conformance suite ([`conformance`]).
//!
//! **Open transactions live here, not in memory.** Each record says where its transaction
//! stands for the scheduler ([`Due`]): held by a driver with work in progress (`Active`), or
//! waiting in the store until its next timer or an event (`Idle`). The engine keeps in memory
//! only what is running; a store indexes idle transactions by due time so that the engine can
//! load them when their time comes, and a restart finds what was running without reading
//! anything else. Finished transactions are deleted after the retention period
//! ([`Store::purge_finished`]).
//!
//! The promise, which the engine's correctness rests on:
//! - **Durable before acknowledged.** `write(rec, sync = true)` resolves only after `rec` —
//!   and every write queued before it — is on disk (fsync). `sync = false` resolves once the
//!   write is queued; it becomes durable with the next synced batch (or the periodic flush).
//! - **Durable before visible.** Reads return only what is durable.
//! - **Newest wins.** A record with a lower `version` than the stored one for the same gid is
//!   ignored, so replays after a crash are harmless.
//! - **Bounded.** The write queue has a fixed capacity; a full queue makes `write` wait
//!   (backpressure), and a closed store answers [`StoreError::Closed`].
//! - **In order per gid.** Writes of one gid become durable in the order they were made, so
//!   a [`Record::delta`] (the change since the previous version, which a log may store instead
//!   of the whole snapshot) always finds its base when the log is replayed.
//! - **One identity.** A store remembers the coordinator [`Identity`] it was created for
//!   ([`Store::identity`]); it never changes.
//! - **Fail-stop.** After a write or sync fails, [`Store::failure`] says why and every later
//!   write is refused; what is durable is the truth, read back by the next open.
//! - **Fenced.** A shared store (several coordinators) refuses a write whose [`Record::fence`]
//!   is not the transaction's current one ([`StoreError::Fenced`]): another node took the
//!   transaction over, and the writer must stop driving it. Single-node stores have no other
//!   owner and ignore fences.
//!
//! Backends: [`memory::MemoryStore`] (tests, `--durability off` comparisons) and
//! [`redb_store::RedbStore`] (the embedded default: a group-committed write-ahead log in
//! front of a redb table file).

use async_trait::async_trait;
use tandem_core::codec::{self, CodecError};
use tandem_core::{Identity, Timestamp, Transaction, TxKind, TxStatus};

pub mod conformance;
pub mod hist;
pub mod memory;
mod query;
pub mod redb_store;
pub mod topic;

pub use query::LIST_LIMIT_DEFAULT;
pub use topic::{Subscriber, Topic};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("redb: {0}")]
    Redb(String),
    /// Another process (or another store in this one) has the directory open.
    #[error("{0} is in use by another process (one coordinator per data directory)")]
    InUse(std::path::PathBuf),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the store is closed")]
    Closed,
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A bounded collection is full (e.g. topics).
    #[error("full: {0}")]
    Full(String),
    /// The store stopped accepting writes after a failure it cannot undo (an fsync error
    /// leaves the page cache in an unknown state); reopen it to recover from the log.
    #[error("the store stopped after a failure: {0}")]
    Failed(String),
    /// The store was created for another coordinator than the one opening it.
    #[error("this store belongs to node {stored:?}, not {requested:?}: start with --node-name {stored} (or no node name), or use another data directory")]
    WrongNode { stored: String, requested: String },
    /// A record the store cannot hold (too large, a gid it cannot key).
    #[error("record refused: {0}")]
    Refused(String),
    /// The write's fence is not the transaction's current one: another node owns it now.
    #[error("transaction {gid} is owned by another node now (its fence moved on)")]
    Fenced { gid: String },
    /// A new transaction's gid exists already (created elsewhere meanwhile).
    #[error("transaction {gid} exists already")]
    Exists { gid: String },
    /// Another live node already uses this node name (shared stores).
    #[error(
        "node name {name:?} is in use by a live coordinator; give this one another --node-name"
    )]
    NodeInUse { name: String },
    /// A shared store cannot be reached, or the node's lease on it lapsed: nothing is certain
    /// until it is back (the engine then reloads what it owns).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the same call may succeed if tried again later.
    pub fn retryable(&self) -> bool {
        matches!(self, StoreError::Io(_) | StoreError::Unavailable(_))
    }
}

/// Where a transaction stands for the scheduler; written with each of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Due {
    /// A driver holds it in memory with work in progress; after a crash it is resumed at once
    /// (every call whose answer is not logged is made again).
    Active,
    /// Nobody holds it in memory: it is loaded at this time (its next timer), or — `None` —
    /// only when an event (a client or an operator) asks for it.
    Idle(Option<Timestamp>),
}

impl Due {
    /// The due time as an index key: `Active` first (0), never-by-time last (`u64::MAX`).
    pub fn key(self) -> u64 {
        match self {
            Due::Active => 0,
            Due::Idle(Some(t)) => t.0.clamp(1, u64::MAX - 1),
            Due::Idle(None) => u64::MAX,
        }
    }

    pub fn from_key(k: u64) -> Due {
        match k {
            0 => Due::Active,
            u64::MAX => Due::Idle(None),
            t => Due::Idle(Some(Timestamp(t))),
        }
    }
}

/// A transaction handed to a driver: with the fence its writes must carry, and whether it
/// must be resumed (a driver held it when it was last written: calls may have been in flight).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub tx: Transaction,
    pub fence: u64,
    pub resume: bool,
}

/// What [`Store::counts`] answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Transactions not final.
    pub unfinished: u64,
    /// Of those, the ones parked for an operator.
    pub parked: u64,
}

/// What [`Store::claim`] found.
#[derive(Debug, Clone)]
pub enum Claim {
    Got(Box<Claimed>),
    /// Another live node drives it right now; ask again shortly.
    Busy {
        owner: String,
    },
    Missing,
}

/// One snapshot ready for the log: the encoded transaction plus the fields the store
/// indexes, so backends never need to decode on the write path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub gid: String,
    pub version: u64,
    pub kind: TxKind,
    pub status: TxStatus,
    pub parked: bool,
    pub created_at: Timestamp,
    /// `tandem_core::codec::encode(tx)`: the whole snapshot, which reads return.
    pub body: Vec<u8>,
    /// `tandem_core::codec::encode_delta`: the change from version `version - 1`, which a log
    /// may store instead of `body` (it is much smaller for a transaction with many branches).
    /// Stores without a log ignore it.
    pub delta: Option<Vec<u8>>,
    /// Set when the transaction is final (retention deletes it this long after).
    pub finished_at: Option<Timestamp>,
    /// Where it stands for the scheduler (ignored once final).
    pub due: Due,
    /// The fence under which the writer drives it (see the crate doc).
    pub fence: u64,
}

impl Record {
    pub fn from_tx(tx: &Transaction) -> Result<Record> {
        Ok(Record {
            gid: tx.gid.clone(),
            version: tx.version,
            kind: tx.kind,
            status: tx.status,
            parked: tx.parked.is_some(),
            created_at: tx.created_at,
            body: codec::encode(tx)?,
            delta: None,
            finished_at: tx.finished_at,
            due: Due::Active,
            fence: 0,
        })
    }

    /// The record of `tx`, with a delta against what `shadow` last logged when the
    /// transaction is large enough for one to pay; `shadow` moves on to `tx`.
    pub fn logged(tx: &Transaction, shadow: &mut Option<codec::Shadow>) -> Result<Record> {
        let mut rec = Record::from_tx(tx)?;
        if tx.branches.len() < codec::DELTA_BRANCHES_MIN {
            *shadow = None;
            return Ok(rec);
        }
        match shadow {
            Some(s) => {
                rec.delta = codec::encode_delta(tx, s)?;
                codec::advance(s, tx);
            }
            None => *shadow = Some(codec::Shadow::of(tx)),
        }
        Ok(rec)
    }

    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    pub fn decode(&self) -> Result<Transaction> {
        Ok(codec::decode(&self.body)?)
    }
}

/// Most transactions one [`Store::list`] call returns.
pub const LIST_LIMIT_MAX: usize = 1000;

/// Filters and paging for [`Store::list`]. Results are newest first (by `created_at`, then
/// gid, both descending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<TxStatus>,
    pub kind: Option<TxKind>,
    /// Only parked (`Some(true)`) or only not parked (`Some(false)`) transactions.
    pub parked: Option<bool>,
    /// Only gids starting with this.
    pub gid_prefix: Option<String>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created before.
    pub created_to: Option<Timestamp>,
    /// The `next` cursor of the previous page; opaque.
    pub cursor: Option<String>,
    /// 1..=[`LIST_LIMIT_MAX`]; 0 means 100.
    pub limit: usize,
}

/// One page of [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Transaction>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Counters a store keeps about its own work (monotonic since open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Finished transactions deleted by retention.
    pub purged: u64,
    /// Batches written to the log.
    pub batches: u64,
    /// Records written to the log.
    pub records: u64,
    /// fsync (fdatasync) calls made for the log.
    pub syncs: u64,
    /// Total time spent in those calls, in nanoseconds.
    pub sync_nanos: u64,
    /// Bytes appended to the log.
    pub bytes: u64,
}

/// A durable home for transaction snapshots. See the crate doc for the promise.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues `rec`; with `sync`, resolves only once it (and everything queued before it) is
    /// durable.
    async fn write(&self, rec: Record, sync: bool) -> Result<()>;
    /// The newest durable snapshot of `gid`.
    async fn get(&self, gid: &str) -> Result<Option<Transaction>>;
    /// A page of transactions matching `q`, newest first.
    async fn list(&self, q: &ListQuery) -> Result<Page>;
    /// Takes `gid` to drive it (an event arrived for it): the transaction, the fence to write
    /// with, and whether to resume it. [`Claim::Busy`] when another live node drives it.
    async fn claim(&self, gid: &str) -> Result<Claim>;
    /// Up to `limit` unfinished transactions that need a driver now: idle ones due at or before
    /// `now`, a dead node's (shared stores), and — with `active`, when the engine starts — the
    /// ones a driver held when this node last stopped. Each is claimed for the caller.
    async fn claim_due(&self, now: Timestamp, limit: usize, active: bool) -> Result<Vec<Claimed>>;
    /// When the earliest idle transaction is due, if any (the scheduler sleeps until then).
    async fn next_due(&self) -> Result<Option<Timestamp>>;
    /// How many transactions are unfinished, and how many of those parked — driven or
    /// waiting in the store.
    async fn counts(&self) -> Result<Counts>;
    /// Deletes up to `limit` final transactions that finished before `before`; returns how
    /// many it deleted.
    async fn purge_finished(&self, before: Timestamp, limit: usize) -> Result<usize>;
    /// Makes every queued write durable.
    async fn flush(&self) -> Result<()>;
    /// Every message topic, by name.
    async fn topics(&self) -> Result<Vec<Topic>>;
    /// The topic `name`, if it exists.
    async fn topic(&self, name: &str) -> Result<Option<Topic>>;
    /// Stores `topic` durably if the stored topic of that name has version `expected` (0:
    /// none exists yet); `Ok(false)` changes nothing (someone else changed it: read again).
    /// [`StoreError::Full`] past [`topic::TOPICS_MAX`] topics.
    async fn put_topic(&self, topic: &Topic, expected: u64) -> Result<bool>;
    /// Removes the topic `name` durably; `Ok(false)` when there was none.
    async fn delete_topic(&self, name: &str) -> Result<bool>;
    /// Flushes and stops the writer; later calls answer [`StoreError::Closed`].
    async fn close(&self) -> Result<()>;
    fn stats(&self) -> StoreStats;
    /// Distributions of the log's work, for `/metrics` (a store without a log has none).
    fn log_histograms(&self) -> Option<LogHistograms> {
        None
    }
    /// The identity this store was created for, written by [`Store::init_identity`].
    async fn identity(&self) -> Result<Option<Identity>>;
    /// Records `id` as this store's identity if it has none (durably), and returns the
    /// identity the store holds afterwards — `id`, or the one recorded before.
    async fn init_identity(&self, id: Identity) -> Result<Identity>;
    /// Why the store stopped accepting writes, once it has (fail-stop); `None` while healthy.
    fn failure(&self) -> Option<String> {
        None
    }
    /// Whether this node may act for what it owns right now: a shared store answers `false`
    /// from the moment the node's lease may have lapsed (it then stops calling participants on
    /// its own) until it was renewed. Single-node stores: always.
    fn lease_valid(&self) -> bool {
        true
    }
    /// Counts the times the store lost and regained the node's lease (or its connection): a
    /// change means another node may have taken over anything, so the engine drops what it
    /// holds in memory and claims again. Single-node stores: always 0.
    fn epoch(&self) -> u64 {
        0
    }
}

/// How the log's batches and fsyncs are distributed.
#[derive(Debug, Clone)]
pub struct LogHistograms {
    /// Records per written batch.
    pub batch_records: hist::HistogramSnapshot,
    /// fdatasync duration, nanoseconds.
    pub fsync_ns: hist::HistogramSnapshot,
}
