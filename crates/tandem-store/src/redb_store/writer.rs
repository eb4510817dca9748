//! The writer thread: the only owner of the open log segment, and the group commit.
//!
//! It blocks for one request, drains whatever else is queued (up to `batch_records_max`)
//! plus the unsynced writes waiting in [`super::Lazy`], encodes them into one buffer, and
//! when any request needs durability (a sync write, a barrier, a stop), unsynced data has
//! waited `lazy_flush_ms`, or the segment is full, writes the buffer with one `write_all`
//! and fsyncs once. Only after that fsync does it publish the records (overlay, then
//! applier) and answer the waiting callers, so no caller ever hears "durable" early.
//! Unsynced records stay private (in the buffer, at most [`WRITE_AHEAD_BYTES`], or in the
//! page cache) until some later fsync covers them; they cost neither a wake-up nor a system
//! call of their own. A failed write or fsync answers every caller in the batch with the
//! error and puts the store in fail-stop. It is a plain OS thread so that blocking file I/O
//! never stalls the async runtime.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::apply::ApplyMsg;
use super::{wal, RedbConfig, Req, Shared};
use crate::{Record, Result, StoreError};

type Ack = oneshot::Sender<Result<()>>;

/// How long the writer polls for the next request before it sleeps.
const SPIN: Duration = Duration::from_micros(50);
/// Spinning stops after this many more misses than hits (two per hit)...
const SPIN_SCORE_MAX: u32 = 8;
/// ...and is then tried again on every this many waits.
const SPIN_PROBE_EVERY: u64 = 32;
/// Encoded but unsynced records are written out (without a sync) once this many bytes
/// wait, which bounds the buffer between syncs.
const WRITE_AHEAD_BYTES: usize = 1 << 20;

/// The segment is zero-filled ahead of the write position in steps of this size.
const ZERO_STEP: usize = 256 << 10;
static ZEROS: [u8; ZERO_STEP] = [0; ZERO_STEP];

#[cfg(unix)]
fn write_zeros_at(file: &File, n: usize, at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, &ZEROS[..n], at)
}

#[cfg(not(unix))]
fn write_zeros_at(_file: &File, _n: usize, _at: u64) -> io::Result<()> {
    Ok(())
}

/// Why [`Writer::wait`] returned.
enum Woke {
    Req(Req),
    /// The lazy-flush deadline passed.
    Due,
    /// Every sender is gone.
    Closed,
}

pub(crate) struct Writer {
    rx: mpsc::Receiver<Req>,
    file: File,
    segment_bytes: u64,
    /// The segment's blocks are allocated (zero-filled) up to here; see `zero_ahead`.
    zeroed_to: u64,
    wal_dir: PathBuf,
    next_lsn: u64,
    cfg: RedbConfig,
    shared: Arc<Shared>,
    to_applier: SyncSender<ApplyMsg>,
    buf: Vec<u8>,
    /// Written to the log, not yet covered by an fsync (nor visible).
    unsynced: Vec<Arc<Record>>,
    unsynced_since: Option<Instant>,
    unsynced_bytes: u64,
    /// Records encoded into `buf` since it was last written (one batch, for the counters).
    buffered_records: u64,
    /// The other half of the swap with [`super::Lazy::recs`] (keeps both allocations).
    lazy_spare: Vec<Record>,
    /// Whether spinning has been catching requests lately (see [`Writer::spin`]).
    spin_score: u32,
    waits: u64,
    failed: bool,
}

fn copy_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io(io) => StoreError::Io(io::Error::new(io.kind(), io.to_string())),
        other => StoreError::Failed(other.to_string()),
    }
}

fn fsync(file: &File, really: bool) -> io::Result<()> {
    fail::fail_point!("store-before-sync", |_| Err(io::Error::other(
        "failpoint store-before-sync"
    )));
    if really {
        file.sync_data()?;
    }
    fail::fail_point!("store-after-sync", |_| Err(io::Error::other(
        "failpoint store-after-sync"
    )));
    Ok(())
}

impl Writer {
    pub fn new(
        rx: mpsc::Receiver<Req>,
        file: File,
        wal_dir: PathBuf,
        next_lsn: u64,
        cfg: RedbConfig,
        shared: Arc<Shared>,
        to_applier: SyncSender<ApplyMsg>,
    ) -> Writer {
        Writer {
            rx,
            file,
            segment_bytes: wal::SEGMENT_HEADER_BYTES as u64,
            zeroed_to: wal::SEGMENT_HEADER_BYTES as u64,
            wal_dir,
            next_lsn,
            buf: Vec::with_capacity(1 << 20),
            unsynced: Vec::new(),
            unsynced_since: None,
            unsynced_bytes: 0,
            buffered_records: 0,
            lazy_spare: Vec::new(),
            spin_score: SPIN_SCORE_MAX,
            waits: 0,
            failed: false,
            cfg,
            shared,
            to_applier,
        }
    }

    pub fn run(mut self) {
        // A tiny runtime only to wait on the queue with a timeout (the lazy flush).
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return self.shared.fail(format!("writer runtime: {e}")),
        };
        let mut batch = Vec::with_capacity(self.cfg.batch_records_max);
        let mut stop: Option<Ack> = None;
        loop {
            let first = match self.spin() {
                Some(req) => req,
                None => match self.wait(&rt) {
                    Woke::Req(req) => req,
                    Woke::Due => {
                        self.take_lazy(false);
                        self.commit(Vec::new(), true);
                        continue;
                    }
                    Woke::Closed => break,
                },
            };
            batch.push(first);
            while batch.len() < self.cfg.batch_records_max {
                match self.rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            // Unsynced writes made before these requests go first, so one gid's records
            // reach the log in the order they were made (a delta must follow its base). Any
            // made before a request in `batch` is in `Lazy` by now.
            let stopping = batch.iter().any(|r| matches!(r, Req::Stop(_)));
            self.take_lazy(stopping);
            let acks = self.encode(&mut batch, &mut stop);
            let force = !acks.is_empty() || stop.is_some();
            self.commit(acks, force);
            if stop.is_some() {
                // Refuse new requests but still serve those already queued.
                self.rx.close();
            }
        }
        // The queue is closed and drained: make the rest durable and stop the applier.
        self.take_lazy(true);
        self.commit(Vec::new(), true);
        let (reply, applied) = std::sync::mpsc::sync_channel(1);
        let result = match self.to_applier.send(ApplyMsg::Stop(reply)) {
            Ok(()) => applied
                .recv()
                .unwrap_or_else(|_| Err(StoreError::Failed("applier gone".into()))),
            Err(_) => Err(StoreError::Failed("applier gone".into())),
        };
        let result = match (self.shared.check_failed(), result) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        };
        if let Some(ack) = stop {
            let _ = ack.send(result);
        }
    }

    /// A caller usually sends its next record a few microseconds after its ack (the next
    /// step of the same transaction); waiting for it briefly, yielding the CPU, saves a
    /// sleep and a wake-up (tens of microseconds on this path) per record.
    ///
    /// Spinning pays only while requests come that close together; when they do not (few
    /// transactions, each waiting on slow participants), the yields would only take CPU
    /// from others. So the writer spins while recent spins caught something, and after a
    /// run of misses only probes every [`SPIN_PROBE_EVERY`]th time.
    fn spin(&mut self) -> Option<Req> {
        self.waits = self.waits.wrapping_add(1);
        if self.spin_score == 0 && !self.waits.is_multiple_of(SPIN_PROBE_EVERY) {
            return self.rx.try_recv().ok();
        }
        let spin_until = Instant::now() + SPIN;
        while Instant::now() < spin_until {
            match self.rx.try_recv() {
                Ok(req) => {
                    self.spin_score = (self.spin_score + 2).min(SPIN_SCORE_MAX);
                    return Some(req);
                }
                Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        self.spin_score = self.spin_score.saturating_sub(1);
        None
    }

    /// Sleeps until a request arrives, or until the lazy-flush deadline if anything is
    /// unsynced. With nothing unsynced it tells writers of unsynced records to nudge it.
    fn wait(&mut self, rt: &tokio::runtime::Runtime) -> Woke {
        self.take_lazy(false);
        let Some(deadline) = self.lazy_deadline() else {
            // take_lazy saw the vector empty and, nothing being unsynced, set writer_idle.
            let req = self.rx.blocking_recv();
            self.shared.lazy().writer_idle = false;
            return req.map_or(Woke::Closed, Woke::Req);
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        let rx = &mut self.rx;
        match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
            Ok(Some(req)) => Woke::Req(req),
            Ok(None) => Woke::Closed,
            Err(_) => Woke::Due,
        }
    }

    /// Encodes the unsynced records waiting in [`super::Lazy`]; if there are none and
    /// nothing else is unsynced, marks the writer idle (so the next one nudges it). With
    /// `close`, later unsynced writes are refused.
    fn take_lazy(&mut self, close: bool) {
        {
            let mut lazy = self.shared.lazy();
            lazy.closed |= close;
            if lazy.recs.is_empty() {
                if self.unsynced_since.is_none() && !close {
                    lazy.writer_idle = true;
                }
                return;
            }
            std::mem::swap(&mut lazy.recs, &mut self.lazy_spare);
        }
        let mut recs = std::mem::take(&mut self.lazy_spare);
        if !self.failed {
            for rec in recs.drain(..) {
                self.push_record(rec);
            }
        }
        recs.clear();
        self.lazy_spare = recs;
    }

    fn lazy_deadline(&self) -> Option<Instant> {
        self.unsynced_since
            .map(|t| t + Duration::from_millis(self.cfg.lazy_flush_ms))
    }

    fn push_record(&mut self, mut rec: Record) {
        wal::encode_frame(self.next_lsn, &rec, &mut self.buf);
        // Readers get the snapshot; the delta was only for the log.
        rec.delta = None;
        self.next_lsn += 1;
        self.unsynced.push(Arc::new(rec));
        self.buffered_records += 1;
        self.unsynced_since.get_or_insert_with(Instant::now);
    }

    /// Encodes the batch into `buf`; returns the callers to answer after the fsync.
    fn encode(&mut self, batch: &mut Vec<Req>, stop: &mut Option<Ack>) -> Vec<Ack> {
        let mut acks = Vec::new();
        for req in batch.drain(..) {
            match req {
                Req::Write { rec, ack } => {
                    if self.failed {
                        if let Some(ack) = ack {
                            let _ = ack.send(self.shared.check_failed());
                        }
                        continue;
                    }
                    self.push_record(rec);
                    acks.extend(ack);
                }
                Req::Barrier(ack) => acks.push(ack),
                Req::Stop(ack) => *stop = Some(ack),
                Req::Nudge => {}
            }
        }
        acks
    }

    /// Answers `acks` after writing and (if needed) syncing; see [`Self::write_and_sync`].
    fn commit(&mut self, acks: Vec<Ack>, force: bool) {
        let result = self.write_and_sync(force);
        for ack in acks {
            let _ = ack.send(match &result {
                Ok(()) => self.shared.check_failed(),
                Err(e) => Err(copy_err(e)),
            });
        }
        if let Err(e) = result {
            self.failed = true;
            self.unsynced.clear();
            self.shared.fail(format!("log write failed: {e}"));
        }
    }

    /// Syncs if `force` (and something is unsynced), if the lazy deadline passed or if the
    /// segment is full; writes `buf` out only then (or when it grew large), so unsynced
    /// records cost no system call of their own. After a sync, publishes.
    fn write_and_sync(&mut self, force: bool) -> Result<()> {
        if self.failed {
            return self.shared.check_failed();
        }
        let Some(since) = self.unsynced_since else {
            return Ok(());
        };
        let full = self.segment_bytes + self.buf.len() as u64 >= self.cfg.segment_bytes_max;
        let lazy_due = since.elapsed() >= Duration::from_millis(self.cfg.lazy_flush_ms);
        let sync = force || full || lazy_due;
        if sync || self.buf.len() >= WRITE_AHEAD_BYTES {
            self.write_buf()?;
        }
        if !sync {
            return Ok(());
        }
        let c = &self.shared.counters;
        let t = Instant::now();
        fsync(&self.file, self.cfg.fsync)?;
        if self.cfg.fsync {
            let ns = t.elapsed().as_nanos() as u64;
            c.syncs.fetch_add(1, Relaxed);
            c.sync_nanos.fetch_add(ns, Relaxed);
            c.fsync_ns.observe(ns);
        }
        self.publish()?;
        if full {
            self.file = wal::create_segment(
                &self.wal_dir,
                self.next_lsn,
                self.cfg.fsync,
                self.cfg.segment_bytes_max,
            )?;
            self.segment_bytes = wal::SEGMENT_HEADER_BYTES as u64;
            self.zeroed_to = self.segment_bytes;
        }
        Ok(())
    }

    fn write_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.zero_ahead(self.segment_bytes + self.buf.len() as u64)?;
        let write = self.file.write_all(&self.buf);
        let n = self.buf.len() as u64;
        self.buf.clear();
        let records = std::mem::take(&mut self.buffered_records);
        write?;
        let c = &self.shared.counters;
        c.batches.fetch_add(1, Relaxed);
        c.records.fetch_add(records, Relaxed);
        c.batch_records.observe(records);
        c.bytes.fetch_add(n, Relaxed);
        self.segment_bytes += n;
        self.unsynced_bytes += n;
        Ok(())
    }

    /// Makes sure the segment's blocks up to `end` are allocated, by writing zeros over
    /// them (the segment is a sparse file) a [`ZERO_STEP`] at a time. Appending into a
    /// hole allocates a block, which makes every `fdatasync` that covers a fresh block
    /// also write the inode synchronously (measured here: a tenth to a fifth more time and
    /// CPU per sync); allocating ahead moves that to one sync per step. The zeros are what an
    /// unwritten part of a segment holds anyway, so recovery reads them as the end.
    fn zero_ahead(&mut self, end: u64) -> io::Result<()> {
        if !self.cfg.fsync {
            return Ok(());
        }
        let end = end.min(self.cfg.segment_bytes_max);
        while self.zeroed_to < end {
            let n = (self.cfg.segment_bytes_max - self.zeroed_to).min(ZERO_STEP as u64);
            write_zeros_at(&self.file, n as usize, self.zeroed_to)?;
            self.zeroed_to += n;
        }
        Ok(())
    }

    /// Makes the just-synced records visible and hands them to the applier.
    fn publish(&mut self) -> Result<()> {
        let recs = std::mem::take(&mut self.unsynced);
        let bytes = std::mem::take(&mut self.unsynced_bytes);
        self.unsynced_since = None;
        {
            let mut overlay = self.shared.overlay();
            for rec in &recs {
                match overlay.get(&rec.gid) {
                    Some(old) if old.version >= rec.version => {}
                    _ => {
                        overlay.insert(rec.gid.clone(), Arc::clone(rec));
                    }
                }
            }
        }
        let msg = ApplyMsg::Batch {
            recs,
            last_lsn: self.next_lsn - 1,
            bytes,
        };
        self.to_applier
            .send(msg)
            .map_err(|_| StoreError::Failed("the applier thread stopped".into()))
    }
}
