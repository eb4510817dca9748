//! The binary encodings of a transaction, as the log stores it: whole snapshots, and deltas.
//!
//! ```text
//!  snapshot: [format 3][postcard(TxWire)][postcard(Ext)]
//!                                              a branch's payload is written once: an op that
//!                                              shares the previous branch's payload says so
//!  delta:    [format 0x83][postcard(DeltaWire)][postcard(Ext)]
//!                                              the header fields that change, plus only the
//!                                              branches that changed (or are new) since the
//!                                              snapshot of version `base`
//!  format 2, 0x82: the same without the extension (before workflows) — still read
//!  format 1: the snapshot of builds before 2 (no identity, payloads repeated) — still read
//! ```
//!
//! The extension (`Ext`) holds the fields added after format 2 — a workflow's `result` —
//! written whole in snapshots and deltas alike.
//!
//! Why deltas: a snapshot holds every branch, so rewriting it after each answer makes a
//! transaction's log bytes grow with the square of its branches (a 256-branch TCC with 64 KiB
//! payloads did not fit a record at all). A delta is O(what changed), so the log grows
//! linearly; the store keeps whole snapshots for reads and applies deltas only when it replays
//! its log ([`apply_delta`]). [`Shadow`] is what a writer remembers of the last snapshot it
//! logged, to compute the next delta.
//!
//! The version byte comes first so a future format can be read beside these; decoding an
//! unknown version is an error, never a guess. Snapshots are checked ([`Transaction::check`])
//! when written and again when read; a delta is checked after it is applied. Changing a field
//! of [`Options`], [`Attempt`], [`HistoryEntry`] or [`crate::Identity`] changes these formats
//! and needs a new version.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::tx::{
    Attempt, Branch, BranchStatus, HistoryEntry, Op, Options, Timestamp, Transaction, TxKind,
    TxStatus,
};
use crate::Identity;

/// The snapshot format this build writes.
pub const FORMAT_VERSION: u8 = 3;
/// The delta format this build writes.
pub const DELTA_VERSION: u8 = 0x83;
/// The snapshot and delta formats before the extension, still read.
const FORMAT_V2: u8 = 2;
const DELTA_V2: u8 = 0x82;

/// Fields added after format 2, encoded after the snapshot or delta.
#[derive(Serialize, Deserialize, Default)]
struct Ext {
    result: Option<String>,
}

fn ext_of(tx: &Transaction) -> Ext {
    Ext {
        result: tx.result.clone(),
    }
}

/// Reads `T` from a record body: for the current formats followed by the extension, for
/// the older ones alone.
fn with_ext<'a, T: Deserialize<'a>>(body: &'a [u8], has_ext: bool) -> Result<(T, Ext), CodecError> {
    if !has_ext {
        return Ok((postcard::from_bytes(body)?, Ext::default()));
    }
    let (t, rest) = postcard::take_from_bytes(body)?;
    Ok((t, postcard::from_bytes(rest)?))
}
/// A transaction with at least this many branches is logged as deltas after its first
/// snapshot; smaller ones are cheaper as whole snapshots (no shadow kept, one encoding).
pub const DELTA_BRANCHES_MIN: usize = 16;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("empty snapshot")]
    Empty,
    #[error("snapshot format version {0} is not known to this build (it reads 1, 2, {FORMAT_VERSION} and deltas 0x82, {DELTA_VERSION:#x})")]
    UnknownVersion(u8),
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("snapshot breaks an invariant: {0}")]
    Invariant(String),
    #[error("delta of {gid} applies to version {base}, but the stored snapshot is version {have}")]
    DeltaBase { gid: String, base: u64, have: u64 },
    #[error("delta names branch {index} of {gid}, which has {len}")]
    DeltaBranch { gid: String, index: u32, len: usize },
}

#[derive(Serialize)]
struct BranchOut<'a> {
    branch_id: &'a str,
    op: Op,
    target: &'a str,
    /// `None`: the same payload as the previous branch of the list. As bytes (one copy), which
    /// postcard writes exactly as it writes a sequence of u8.
    #[serde(with = "serde_bytes")]
    payload: Option<&'a [u8]>,
    status: BranchStatus,
    attempts: u32,
    streak: u32,
    next_at: Option<Timestamp>,
    recent: &'a [Attempt],
}

#[derive(Deserialize)]
struct BranchIn {
    branch_id: String,
    op: Op,
    target: String,
    #[serde(with = "serde_bytes")]
    payload: Option<Vec<u8>>,
    status: BranchStatus,
    attempts: u32,
    streak: u32,
    next_at: Option<Timestamp>,
    recent: Vec<Attempt>,
}

/// The fields of a transaction that change after it is created.
#[derive(Serialize, Deserialize)]
struct Header {
    status: TxStatus,
    parked: Option<String>,
    updated_at: Timestamp,
    status_since: Timestamp,
    finished_at: Option<Timestamp>,
    next_wake: Option<Timestamp>,
    history: Vec<HistoryEntry>,
    version: u64,
    fail_reason: Option<String>,
    heuristic: Option<String>,
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    status: TxStatus,
    parked: &'a Option<String>,
    updated_at: Timestamp,
    status_since: Timestamp,
    finished_at: Option<Timestamp>,
    next_wake: Option<Timestamp>,
    history: &'a [HistoryEntry],
    version: u64,
    fail_reason: &'a Option<String>,
    heuristic: &'a Option<String>,
}

#[derive(Serialize)]
struct TxOut<'a> {
    gid: &'a str,
    kind: TxKind,
    options: &'a Options,
    created_at: Timestamp,
    query_prepared: &'a Option<String>,
    custom_data: &'a Option<String>,
    origin: &'a Option<Identity>,
    nonce: u32,
    header: HeaderOut<'a>,
    branches: Vec<BranchOut<'a>>,
}

#[derive(Deserialize)]
struct TxIn {
    gid: String,
    kind: TxKind,
    options: Options,
    created_at: Timestamp,
    query_prepared: Option<String>,
    custom_data: Option<String>,
    origin: Option<Identity>,
    nonce: u32,
    header: Header,
    branches: Vec<BranchIn>,
}

#[derive(Serialize)]
struct DeltaOut<'a> {
    gid: &'a str,
    base: u64,
    header: HeaderOut<'a>,
    branches: Vec<(u32, BranchOut<'a>)>,
}

#[derive(Deserialize)]
struct DeltaIn {
    gid: String,
    base: u64,
    header: Header,
    branches: Vec<(u32, BranchIn)>,
}

fn header_out(tx: &Transaction) -> HeaderOut<'_> {
    HeaderOut {
        status: tx.status,
        parked: &tx.parked,
        updated_at: tx.updated_at,
        status_since: tx.status_since,
        finished_at: tx.finished_at,
        next_wake: tx.next_wake,
        history: &tx.history,
        version: tx.version,
        fail_reason: &tx.fail_reason,
        heuristic: &tx.heuristic,
    }
}

fn branch_out<'a>(b: &'a Branch, prev: Option<&Branch>) -> BranchOut<'a> {
    let shared =
        prev.is_some_and(|p| Arc::ptr_eq(&p.payload, &b.payload) || p.payload == b.payload);
    BranchOut {
        branch_id: &b.branch_id,
        op: b.op,
        target: &b.target,
        payload: (!shared).then_some(&b.payload[..]),
        status: b.status,
        attempts: b.attempts,
        streak: b.streak,
        next_at: b.next_at,
        recent: &b.recent,
    }
}

/// `prev`: the payload of the previous branch, for a `None` payload.
fn branch_in(b: BranchIn, prev: Option<&Arc<[u8]>>) -> Result<Branch, CodecError> {
    let payload = match (b.payload, prev) {
        (Some(p), _) => p.into(),
        (None, Some(prev)) => prev.clone(),
        (None, None) => {
            return Err(CodecError::Invariant(
                "the first branch refers to a previous payload".into(),
            ))
        }
    };
    let mut out = Branch::new(b.branch_id, b.op, b.target, payload);
    out.status = b.status;
    out.attempts = b.attempts;
    out.streak = b.streak;
    out.next_at = b.next_at;
    out.recent = b.recent;
    Ok(out)
}

fn set_header(tx: &mut Transaction, h: Header) {
    tx.status = h.status;
    tx.parked = h.parked;
    tx.updated_at = h.updated_at;
    tx.status_since = h.status_since;
    tx.finished_at = h.finished_at;
    tx.next_wake = h.next_wake;
    tx.history = h.history;
    tx.version = h.version;
    tx.fail_reason = h.fail_reason;
    tx.heuristic = h.heuristic;
}

/// Encodes `tx` as a whole snapshot, after checking its invariants.
pub fn encode(tx: &Transaction) -> Result<Vec<u8>, CodecError> {
    tx.check().map_err(CodecError::Invariant)?;
    let mut prev = None;
    let branches = tx
        .branches
        .iter()
        .map(|b| {
            let out = branch_out(b, prev);
            prev = Some(b);
            out
        })
        .collect();
    let wire = TxOut {
        gid: &tx.gid,
        kind: tx.kind,
        options: &tx.options,
        created_at: tx.created_at,
        query_prepared: &tx.query_prepared,
        custom_data: &tx.custom_data,
        origin: &tx.origin,
        nonce: tx.nonce,
        header: header_out(tx),
        branches,
    };
    // postcard writes a u8 as one byte, so the tuple is exactly `[version][body]`.
    let out = postcard::to_allocvec(&(FORMAT_VERSION, wire))?;
    Ok(postcard::to_extend(&ext_of(tx), out)?)
}

/// Decodes a whole snapshot (format 1, 2 or 3).
pub fn decode(bytes: &[u8]) -> Result<Transaction, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    let tx = match version {
        FORMAT_VERSION | FORMAT_V2 => {
            let (w, ext): (TxIn, Ext) = with_ext(body, version == FORMAT_VERSION)?;
            let mut tx = Transaction::new(w.gid, w.kind, w.options, w.created_at);
            tx.query_prepared = w.query_prepared;
            tx.custom_data = w.custom_data;
            tx.origin = w.origin;
            tx.nonce = w.nonce;
            tx.result = ext.result;
            set_header(&mut tx, w.header);
            for b in w.branches {
                let prev = tx.branches.last().map(|p| p.payload.clone());
                tx.branches.push(branch_in(b, prev.as_ref())?);
            }
            tx
        }
        1 => v1::decode(body)?,
        other => return Err(CodecError::UnknownVersion(other)),
    };
    tx.check().map_err(CodecError::Invariant)?;
    Ok(tx)
}

/// Whether `bytes` is a delta (else a whole snapshot).
pub fn is_delta(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&DELTA_VERSION | &DELTA_V2))
}

/// What a writer remembers of the last record it logged for one transaction: its version and
/// its branches (payloads are shared, not copied), to log only what changed next time.
#[derive(Debug, Clone, Default)]
pub struct Shadow {
    version: u64,
    branches: Vec<Branch>,
}

impl Shadow {
    /// The shadow of a snapshot just logged or loaded.
    pub fn of(tx: &Transaction) -> Shadow {
        Shadow {
            version: tx.version,
            branches: tx.branches.clone(),
        }
    }
}

/// Only the persisted fields (not `in_flight`, `uncertain`).
fn same_persisted(a: &Branch, b: &Branch) -> bool {
    a.status == b.status
        && a.attempts == b.attempts
        && a.streak == b.streak
        && a.next_at == b.next_at
        && a.recent == b.recent
        && a.branch_id == b.branch_id
        && a.op == b.op
        && a.target == b.target
}

/// The delta from what `shadow` last logged to `tx`, and the shadow after it. `None` when a
/// delta does not apply (the shadow is of another version, or branches were removed): log a
/// snapshot then.
pub fn encode_delta(tx: &Transaction, shadow: &Shadow) -> Result<Option<Vec<u8>>, CodecError> {
    if tx.version != shadow.version + 1 || tx.branches.len() < shadow.branches.len() {
        return Ok(None);
    }
    tx.check().map_err(CodecError::Invariant)?;
    let mut branches = Vec::new();
    for (i, b) in tx.branches.iter().enumerate() {
        let changed = shadow
            .branches
            .get(i)
            .is_none_or(|old| !same_persisted(old, b));
        if changed {
            // An existing branch keeps the payload its base has; a new one may share the
            // payload of the branch before it (which the replay has by then, new or not).
            let prev = match shadow.branches.get(i) {
                Some(old) => Some(old),
                None => i.checked_sub(1).map(|j| &tx.branches[j]),
            };
            branches.push((i as u32, branch_out(b, prev)));
        }
    }
    let wire = DeltaOut {
        gid: &tx.gid,
        base: shadow.version,
        header: header_out(tx),
        branches,
    };
    let out = postcard::to_allocvec(&(DELTA_VERSION, wire))?;
    Ok(Some(postcard::to_extend(&ext_of(tx), out)?))
}

/// Updates `shadow` after `tx` was logged (as a delta or a snapshot).
pub fn advance(shadow: &mut Shadow, tx: &Transaction) {
    shadow.version = tx.version;
    for (i, b) in tx.branches.iter().enumerate() {
        match shadow.branches.get_mut(i) {
            Some(old) if same_persisted(old, b) => {}
            Some(old) => *old = b.clone(),
            None => shadow.branches.push(b.clone()),
        }
    }
}

/// Applies a delta to `base`, which must be the snapshot of the delta's base version. A delta
/// older than `base` (its version is not above `base.version`) changes nothing: replays are
/// harmless. Returns whether `base` changed.
pub fn apply_delta(base: &mut Transaction, bytes: &[u8]) -> Result<bool, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != DELTA_VERSION && version != DELTA_V2 {
        return Err(CodecError::UnknownVersion(version));
    }
    let (d, ext): (DeltaIn, Ext) = with_ext(body, version == DELTA_VERSION)?;
    if d.header.version <= base.version {
        return Ok(false);
    }
    if d.base != base.version || d.gid != base.gid {
        return Err(CodecError::DeltaBase {
            gid: d.gid,
            base: d.base,
            have: base.version,
        });
    }
    for (index, b) in d.branches {
        let i = index as usize;
        if i > base.branches.len() {
            return Err(CodecError::DeltaBranch {
                gid: base.gid.clone(),
                index,
                len: base.branches.len(),
            });
        }
        // An existing branch keeps its payload; a new one may share its predecessor's.
        let prev = if i < base.branches.len() {
            Some(base.branches[i].payload.clone())
        } else {
            base.branches.last().map(|p| p.payload.clone())
        };
        let branch = branch_in(b, prev.as_ref())?;
        if i < base.branches.len() {
            base.branches[i] = branch;
        } else {
            base.branches.push(branch);
        }
    }
    set_header(base, d.header);
    base.result = ext.result;
    base.check().map_err(CodecError::Invariant)?;
    Ok(true)
}

/// The version a delta produces, without decoding all of it (for stores that index it).
pub fn delta_version(bytes: &[u8]) -> Result<(String, u64), CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != DELTA_VERSION && version != DELTA_V2 {
        return Err(CodecError::UnknownVersion(version));
    }
    // The extension follows the delta; the delta alone answers this.
    let (d, _): (DeltaIn, &[u8]) = postcard::take_from_bytes(body)?;
    Ok((d.gid, d.header.version))
}

/// Format 1: the whole `Transaction` as postcard wrote it before identities and shared
/// payloads. Read only.
mod v1 {
    use serde::Deserialize;

    use super::CodecError;
    use crate::tx::{
        Attempt, Branch, BranchStatus, HistoryEntry, Op, Options, Timestamp, Transaction, TxKind,
        TxStatus,
    };

    #[derive(Deserialize)]
    struct BranchV1 {
        branch_id: String,
        op: Op,
        target: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        status: BranchStatus,
        attempts: u32,
        streak: u32,
        next_at: Option<Timestamp>,
        recent: Vec<Attempt>,
    }

    #[derive(Deserialize)]
    struct TxV1 {
        gid: String,
        kind: TxKind,
        status: TxStatus,
        parked: Option<String>,
        branches: Vec<BranchV1>,
        options: Options,
        created_at: Timestamp,
        updated_at: Timestamp,
        finished_at: Option<Timestamp>,
        next_wake: Option<Timestamp>,
        query_prepared: Option<String>,
        custom_data: Option<String>,
        history: Vec<HistoryEntry>,
        version: u64,
        fail_reason: Option<String>,
    }

    pub(super) fn decode(body: &[u8]) -> Result<Transaction, CodecError> {
        let w: TxV1 = postcard::from_bytes(body)?;
        let mut tx = Transaction::new(w.gid, w.kind, w.options, w.created_at);
        tx.status = w.status;
        tx.parked = w.parked;
        tx.updated_at = w.updated_at;
        tx.status_since = w.updated_at;
        tx.finished_at = w.finished_at;
        tx.next_wake = w.next_wake;
        tx.query_prepared = w.query_prepared;
        tx.custom_data = w.custom_data;
        tx.history = w.history;
        tx.version = w.version;
        tx.fail_reason = w.fail_reason;
        for b in w.branches {
            let mut out = Branch::new(b.branch_id, b.op, b.target, b.payload);
            out.status = b.status;
            out.attempts = b.attempts;
            out.streak = b.streak;
            out.next_at = b.next_at;
            out.recent = b.recent;
            tx.branches.push(out);
        }
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Attempt, AttemptOutcome, Op};

    fn tcc(n: usize, payload: usize) -> Transaction {
        let mut tx = Transaction::new("g1", TxKind::Tcc, Options::default(), Timestamp(5));
        tx.origin = Some(Identity::new("n", 3).unwrap());
        tx.nonce = 9;
        for k in 0..n {
            let p: Arc<[u8]> = vec![k as u8; payload].into();
            for op in [Op::Confirm, Op::Cancel] {
                tx.branches
                    .push(Branch::new(format!("b{k}"), op, "t", p.clone()));
            }
        }
        tx
    }

    #[test]
    fn round_trip_version_check_and_payloads_once() {
        let tx = tcc(3, 1000);
        let bytes = encode(&tx).expect("encode");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert!(
            bytes.len() < 3 * 1000 + 500,
            "each payload once: {}",
            bytes.len()
        );
        let back = decode(&bytes).expect("decode");
        assert_eq!(back, tx);
        assert!(Arc::ptr_eq(
            &back.branches[0].payload,
            &back.branches[1].payload
        ));
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            decode(&future),
            Err(CodecError::UnknownVersion(99))
        ));
        assert!(matches!(decode(&[]), Err(CodecError::Empty)));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A store written by a build before format 2 still opens.
    #[test]
    fn format_1_is_still_read() {
        // Field for field what format 1 wrote (postcard of the old `Transaction`).
        #[derive(Serialize)]
        struct OldBranch<'a> {
            branch_id: &'a str,
            op: Op,
            target: &'a str,
            payload: &'a [u8],
            status: BranchStatus,
            attempts: u32,
            streak: u32,
            next_at: Option<Timestamp>,
            recent: &'a [Attempt],
        }
        #[derive(Serialize)]
        struct OldTx<'a> {
            gid: &'a str,
            kind: TxKind,
            status: TxStatus,
            parked: Option<String>,
            branches: Vec<OldBranch<'a>>,
            options: Options,
            created_at: Timestamp,
            updated_at: Timestamp,
            finished_at: Option<Timestamp>,
            next_wake: Option<Timestamp>,
            query_prepared: Option<String>,
            custom_data: Option<String>,
            history: Vec<HistoryEntry>,
            version: u64,
            fail_reason: Option<String>,
        }
        let old = OldTx {
            gid: "old",
            kind: TxKind::Saga,
            status: TxStatus::Submitted,
            parked: None,
            branches: vec![OldBranch {
                branch_id: "01",
                op: Op::Action,
                target: "a",
                payload: b"{}",
                status: BranchStatus::Running,
                attempts: 1,
                streak: 0,
                next_at: None,
                recent: &[],
            }],
            options: Options::default(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            finished_at: None,
            next_wake: None,
            query_prepared: None,
            custom_data: None,
            history: Vec::new(),
            version: 3,
            fail_reason: None,
        };
        let bytes = postcard::to_allocvec(&(1u8, old)).unwrap();
        let tx = decode(&bytes).expect("format 1");
        assert_eq!(
            (tx.gid.as_str(), tx.version, tx.origin.clone()),
            ("old", 3, None)
        );
        assert_eq!(&tx.branches[0].payload[..], b"{}");
        assert_eq!(tx.branches[0].status, BranchStatus::Running);
    }

    /// Guards against bug 7: log bytes per answer must not grow with the branch count.
    #[test]
    fn deltas_carry_only_what_changed_and_replay_exactly() {
        let mut tx = tcc(64, 4096);
        tx.version = 1;
        let snapshot = encode(&tx).unwrap();
        let mut shadow = Shadow::of(&tx);
        let mut replayed = decode(&snapshot).unwrap();
        let mut delta_bytes = Vec::new();
        for i in [0usize, 5, 5, 127] {
            tx.version += 1;
            tx.status = TxStatus::Submitted;
            tx.branches[i].status = BranchStatus::Running;
            tx.branches[i].attempts += 1;
            tx.branches[i].record_attempt(Attempt {
                at: Timestamp(9),
                latency_us: 1,
                outcome: AttemptOutcome::Error,
                code: None,
                error: Some("x".into()),
            });
            let d = encode_delta(&tx, &shadow).unwrap().expect("a delta");
            assert!(is_delta(&d));
            delta_bytes.push(d.len());
            advance(&mut shadow, &tx);
            assert!(apply_delta(&mut replayed, &d).unwrap());
            assert_eq!(replayed, tx);
            assert!(
                !apply_delta(&mut replayed, &d).unwrap(),
                "a replay changes nothing"
            );
        }
        assert!(
            delta_bytes.iter().all(|&n| n < 200),
            "{delta_bytes:?} vs {}",
            snapshot.len()
        );
        // New branches arrive in a delta with their payload once.
        tx.version += 1;
        let p: Arc<[u8]> = vec![7u8; 5000].into();
        for op in [Op::Confirm, Op::Cancel] {
            tx.branches.push(Branch::new("new", op, "t", p.clone()));
        }
        let d = encode_delta(&tx, &shadow).unwrap().unwrap();
        assert!(d.len() > 5000 && d.len() < 5300, "{}", d.len());
        apply_delta(&mut replayed, &d).unwrap();
        assert_eq!(replayed, tx);
        // A delta on the wrong base is refused, not guessed.
        let mut stale = decode(&snapshot).unwrap();
        assert!(matches!(
            apply_delta(&mut stale, &d),
            Err(CodecError::DeltaBase { .. })
        ));
        // A gap in versions means no delta.
        tx.version += 5;
        assert!(encode_delta(&tx, &shadow).unwrap().is_none());
    }

    /// Guards against losing a workflow's result on restart (snapshot or delta), and
    /// against no longer reading format 2 records written before the extension.
    #[test]
    fn the_extension_carries_the_result_and_format_2_still_decodes() {
        let mut tx = tcc(20, 8);
        tx.result = Some("aGk=".into());
        let snap = encode(&tx).expect("encode");
        assert_eq!(
            decode(&snap).expect("decode").result.as_deref(),
            Some("aGk=")
        );
        let shadow = Shadow::of(&tx);
        let mut next = tx.clone();
        next.version += 1;
        next.result = Some("Ynll".into());
        let delta = encode_delta(&next, &shadow)
            .expect("delta")
            .expect("applies");
        let mut base = decode(&snap).expect("decode");
        assert!(apply_delta(&mut base, &delta).expect("apply"));
        assert_eq!(base.result.as_deref(), Some("Ynll"));
        assert_eq!(
            delta_version(&delta).expect("version"),
            ("g1".to_string(), next.version)
        );
        // Format 2: the same bytes without the extension (one byte: `None`).
        tx.result = None;
        let mut v2 = encode(&tx).expect("encode");
        assert_eq!(v2.pop(), Some(0));
        v2[0] = FORMAT_V2;
        assert_eq!(decode(&v2).expect("format 2 decodes"), tx);
    }
}
