//! The writer thread: the only owner of the open log segment, and the group commit.
//!
//! It blocks for one request, drains whatever else is queued (up to `batch_records_max`),
//! encodes the batch into one buffer, writes it with one `write_all`, and fsyncs once if any
//! request in it needs durability (a sync write, a barrier, a stop), if unsynced data has
//! waited `lazy_flush_ms`, or if the segment is full. Only after that fsync does it publish
//! the records (overlay, then applier) and answer the waiting callers, so no caller ever
//! hears "durable" early. Unsynced records stay private until some later fsync covers them.
//! A failed write or fsync answers every caller in the batch with the error and puts the
//! store in fail-stop. It is a plain OS thread so that blocking file I/O never stalls the
//! async runtime.

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

pub(crate) struct Writer {
    rx: mpsc::Receiver<Req>,
    file: File,
    segment_bytes: u64,
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
            wal_dir,
            next_lsn,
            buf: Vec::with_capacity(1 << 20),
            unsynced: Vec::new(),
            unsynced_since: None,
            unsynced_bytes: 0,
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
            // A caller usually sends its next record a few microseconds after its ack (the
            // next step of the same transaction); waiting for it briefly, yielding the CPU,
            // saves a sleep and a wake-up (tens of microseconds on this path) per record.
            let mut spun = None;
            let spin_until = Instant::now() + SPIN;
            while Instant::now() < spin_until {
                match self.rx.try_recv() {
                    Ok(req) => {
                        spun = Some(req);
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            let first = match (spun, self.lazy_deadline()) {
                (Some(req), _) => Some(req),
                (None, None) => self.rx.blocking_recv(),
                (None, Some(deadline)) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let rx = &mut self.rx;
                    match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                        Ok(req) => req,
                        Err(_) => {
                            self.commit(Vec::new(), true);
                            continue;
                        }
                    }
                }
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < self.cfg.batch_records_max {
                match self.rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            let acks = self.encode(&mut batch, &mut stop);
            let force = !acks.is_empty() || stop.is_some();
            self.commit(acks, force);
            if stop.is_some() {
                // Refuse new requests but still serve those already queued.
                self.rx.close();
            }
        }
        // The queue is closed and drained: make the rest durable and stop the applier.
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

    fn lazy_deadline(&self) -> Option<Instant> {
        self.unsynced_since
            .map(|t| t + Duration::from_millis(self.cfg.lazy_flush_ms))
    }

    /// Encodes the batch into `buf`; returns the callers to answer after the fsync.
    fn encode(&mut self, batch: &mut Vec<Req>, stop: &mut Option<Ack>) -> Vec<Ack> {
        let mut acks = Vec::new();
        let records_before = self.unsynced.len();
        for req in batch.drain(..) {
            match req {
                Req::Write { rec, ack } => {
                    if self.failed {
                        if let Some(ack) = ack {
                            let _ = ack.send(self.shared.check_failed());
                        }
                        continue;
                    }
                    wal::encode_frame(self.next_lsn, &rec, &mut self.buf);
                    self.next_lsn += 1;
                    self.unsynced.push(Arc::new(rec));
                    acks.extend(ack);
                }
                Req::Barrier(ack) => acks.push(ack),
                Req::Stop(ack) => *stop = Some(ack),
            }
        }
        let n = (self.unsynced.len() - records_before) as u64;
        self.shared.counters.records.fetch_add(n, Relaxed);
        if n > 0 {
            self.shared.counters.batch_records.observe(n);
        }
        acks
    }

    /// Writes `buf`, fsyncs if `force` (and something is unsynced) or the lazy deadline or
    /// segment size says so, then publishes and answers `acks`.
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

    fn write_and_sync(&mut self, force: bool) -> Result<()> {
        if self.failed {
            return self.shared.check_failed();
        }
        let c = &self.shared.counters;
        if !self.buf.is_empty() {
            let write = self.file.write_all(&self.buf);
            let n = self.buf.len() as u64;
            self.buf.clear();
            write?;
            c.batches.fetch_add(1, Relaxed);
            c.bytes.fetch_add(n, Relaxed);
            self.segment_bytes += n;
            self.unsynced_bytes += n;
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
        let Some(since) = self.unsynced_since else {
            return Ok(());
        };
        let full = self.segment_bytes >= self.cfg.segment_bytes_max;
        let lazy_due = since.elapsed() >= Duration::from_millis(self.cfg.lazy_flush_ms);
        if !(force || full || lazy_due) {
            return Ok(());
        }
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
