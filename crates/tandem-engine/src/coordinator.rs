//! The coordinator: opens the log, resumes what a crash interrupted, starts transactions and
//! answers questions about them.
//!
//! Recovery on open: every transaction the store lists as unfinished gets a driver fed
//! [`Event::Resume`] — sagas continue or compensate, a 2PC with a durable commit decision
//! commits, one without it rolls back (presumed abort), TCC and messages carry on.
//!
//! Starting a transaction claims its gid in the registry (one driver per gid), checks the
//! log for an earlier transaction with that gid (same content: the old one is answered;
//! different: refused), stamps it with the store's identity and a random nonce (its xids'
//! ingredients), then spawns its driver and waits for the first record to be durable (and,
//! if asked, for the outcome).
//!
//! Identity on open: the store's recorded [`Identity`] is used; a new store records the
//! configured node name (or `tandem`) with a random incarnation; a configured name that
//! differs from the stored one is refused ([`StoreError::WrongNode`]).
//!
//! Fail-stop (see [`crate::shared`]): once the log failed, every call here answers
//! [`EngineError::Failed`], [`Coordinator::failed`] resolves, and nothing acts any more.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tandem_core::{validate_gid, Event, Identity, Timestamp, Transaction};
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{ListQuery, Page, Store, StoreError, StoreStats, Topic};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;

use crate::alert::ParkedAlert;
use crate::clock::{Clock, OsRng, Rng, SystemClock};
use crate::config::EngineConfig;
use crate::driver::{span_of, Driver};
use crate::error::{EngineError, Result};
use crate::metrics::{EngineMetrics, RecoveryAction};
use crate::outcome::Outcome;
use crate::participant::{Resource, SagaStep};
use crate::recovery::{self, InDoubt, InDoubtConfig, InDoubtSet, RecoveryStats};
use crate::registry::{Claim, Control, INBOX_MAX};
use crate::shared::{Parts, Phase, Shared};

/// How long an event waits for another live node to let go of a transaction it drives.
const BUSY_WAIT: Duration = Duration::from_secs(3);
use crate::transport::{InProcess, Local, Transport};

/// A snapshot of the engine's counters (monotonic since open; totals over
/// [`EngineMetrics`], which keeps them by type, op and outcome).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub parked: u64,
    pub calls: u64,
    pub call_retries: u64,
    pub recovered: u64,
    /// Transactions driven in memory right now (bounded by `active_max`); the unfinished ones
    /// and the parked ones, most of which wait in the store, are [`Coordinator::counts`].
    pub running: usize,
    pub store: StoreStats,
}

/// How many transactions are where: [`Coordinator::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Not final: running in memory or waiting in the store.
    pub unfinished: u64,
    /// Of those, parked for an operator.
    pub parked: u64,
    /// Driven in memory right now (bounded by `active_max`).
    pub running: u64,
}

/// Called with every transaction as it ends (e.g. to export its trace span). Must be quick:
/// it runs on the transaction's driver.
pub type EndHook = Arc<dyn Fn(&Transaction) + Send + Sync>;

/// Builds a [`Coordinator`]: where the log lives, which participants exist, which clock
/// and transport to use.
pub struct CoordinatorBuilder {
    config: EngineConfig,
    local: InProcess,
    transport: Option<Arc<dyn Transport>>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    store: Option<Arc<dyn Store>>,
    redb: RedbConfig,
    on_end: Option<EndHook>,
    in_doubt: Vec<(String, Arc<dyn InDoubt>)>,
    in_doubt_config: InDoubtConfig,
}

impl Default for CoordinatorBuilder {
    fn default() -> Self {
        CoordinatorBuilder {
            config: EngineConfig::default(),
            local: InProcess::new(),
            transport: None,
            clock: Arc::new(SystemClock),
            rng: Arc::new(OsRng::default()),
            store: None,
            redb: RedbConfig::default(),
            on_end: None,
            in_doubt: Vec::new(),
            in_doubt_config: InDoubtConfig::default(),
        }
    }
}

impl CoordinatorBuilder {
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }
    /// Settings of the embedded log (batch sizes, `fsync` on/off).
    pub fn redb_config(mut self, cfg: RedbConfig) -> Self {
        self.redb = cfg;
        self
    }
    /// Registers an in-process saga step under `name` (the branch target).
    pub fn step(mut self, name: impl Into<String>, step: Arc<dyn SagaStep>) -> Self {
        self.local.insert(name, Local::Step(step));
        self
    }
    /// Registers an in-process 2PC resource under `name` (the branch target).
    pub fn resource(mut self, name: impl Into<String>, r: Arc<dyn Resource>) -> Self {
        self.local.insert(name, Local::Resource(r));
        self
    }
    /// Registers a resource whose prepared transactions in-doubt recovery lists and
    /// resolves (see [`crate::recovery`]).
    pub fn in_doubt(mut self, name: impl Into<String>, r: Arc<dyn InDoubt>) -> Self {
        self.in_doubt.push((name.into(), r));
        self
    }
    /// Registers an XA resource under `name`: as a 2PC participant and for in-doubt recovery.
    pub fn xa_resource<R: Resource + InDoubt>(self, name: impl Into<String>, r: Arc<R>) -> Self {
        let name = name.into();
        self.resource(name.clone(), r.clone()).in_doubt(name, r)
    }
    /// When in-doubt recovery runs and what counts as an orphan.
    pub fn in_doubt_config(mut self, cfg: InDoubtConfig) -> Self {
        self.in_doubt_config = cfg;
        self
    }
    /// Replaces the in-process transport (e.g. with HTTP, or a simulation's).
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }
    /// Where random values come from (a simulation passes a seeded one).
    pub fn rng(mut self, r: Arc<dyn Rng>) -> Self {
        self.rng = r;
        self
    }
    /// Calls `hook` with every transaction as it ends (see [`EndHook`]).
    pub fn on_end(mut self, hook: EndHook) -> Self {
        self.on_end = Some(hook);
        self
    }
    /// Uses this store instead of opening the embedded one.
    pub fn store(mut self, s: Arc<dyn Store>) -> Self {
        self.store = Some(s);
        self
    }

    /// Opens the embedded log in `dir` (created if missing) and recovers.
    pub async fn open(mut self, dir: impl AsRef<Path>) -> Result<Coordinator> {
        let dir = dir.as_ref().to_path_buf();
        let cfg = self.redb.clone();
        let store = tokio::task::spawn_blocking(move || RedbStore::open(&dir, cfg))
            .await
            .map_err(|e| {
                EngineError::Store(tandem_store::StoreError::Io(std::io::Error::other(e)))
            })??;
        self.store = Some(Arc::new(store));
        self.start().await
    }

    /// Starts on the store given with [`CoordinatorBuilder::store`] and recovers.
    pub async fn start(self) -> Result<Coordinator> {
        let store = self
            .store
            .ok_or(EngineError::Store(tandem_store::StoreError::Closed))?;
        let identity = identity(&*store, self.config.node_name.as_deref(), &*self.rng).await?;
        let local_transport = self.transport.is_none();
        let transport = self
            .transport
            .unwrap_or_else(|| Arc::new(self.local.clone()));
        let session = self.rng.next_u32() as u16;
        let shared = Arc::new(Shared::new(Parts {
            store,
            transport,
            clock: self.clock,
            rng: self.rng,
            config: self.config,
            identity,
            on_end: self.on_end,
        }));
        let in_doubt = Arc::new(InDoubtSet {
            resources: self.in_doubt,
            config: self.in_doubt_config,
            stats: Default::default(),
            running: tokio::sync::Mutex::new(()),
        });
        let c = Coordinator {
            shared,
            local: Arc::new(self.local),
            local_transport,
            in_doubt,
            tasks: Arc::new(std::sync::Mutex::new(Vec::new())),
            session,
            gids: Arc::new(AtomicU64::new(0)),
        };
        c.recover().await?;
        let mut tasks = vec![
            tokio::spawn(watch_store(c.shared.clone())),
            tokio::spawn(rejoin(c.clone())),
            tokio::spawn(crate::scheduler::run(c.shared.clone())),
            tokio::spawn(crate::retention::run(c.shared.clone())),
        ];
        if !c.in_doubt.resources.is_empty() {
            tasks.push(tokio::spawn(recovery::periodic(
                c.shared.clone(),
                c.in_doubt.clone(),
            )));
        }
        *c.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(c)
    }
}

/// The store's identity, recorded on its first start (see the module doc).
async fn identity(store: &dyn Store, wanted: Option<&str>, rng: &dyn Rng) -> Result<Identity> {
    if let Some(node) = wanted {
        tandem_core::identity::validate_node(node)
            .map_err(|e| EngineError::Config(format!("node_name: {e}")))?;
    }
    let held = match store.identity().await? {
        Some(id) => id,
        None => {
            let node = wanted.unwrap_or(tandem_core::identity::NODE_DEFAULT);
            let fresh = Identity::new(node, rng.next_u32())
                .map_err(|e| EngineError::Config(format!("node_name: {e}")))?;
            store.init_identity(fresh).await?
        }
    };
    if let Some(node) = wanted {
        if node != held.node {
            return Err(EngineError::Store(StoreError::WrongNode {
                stored: held.node,
                requested: node.to_string(),
            }));
        }
    }
    Ok(held)
}

/// After a shared store's lease lapsed and was regained (its epoch moved on), every driver of
/// the old epoch has left (they check before every call and write); claim again what this node
/// still owns and held when it lost the lease — resumed from the log, as after a restart.
async fn rejoin(c: Coordinator) {
    let shared = c.shared.clone();
    let mut phase = shared.watch_phase();
    let mut epoch = shared.store.epoch();
    let mut lapsed = false;
    loop {
        if *phase.borrow() != Phase::Run {
            return;
        }
        let valid = shared.store.lease_valid();
        if !valid && !lapsed {
            lapsed = true;
            tracing::warn!("the store's lease lapsed (or it is unreachable): acting on nothing until it is back");
        }
        let now_epoch = shared.store.epoch();
        if valid && now_epoch != epoch {
            match c.recover().await {
                Ok(()) => {
                    tracing::info!("the store's lease is back: resumed what this node still owns");
                    epoch = now_epoch;
                    lapsed = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rejoining after a lapsed lease failed; trying again")
                }
            }
        } else if valid {
            lapsed = false;
        }
        tokio::select! {
            biased;
            changed = phase.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(shared.config.health_poll) => {}
        }
    }
}

/// Notices a store that failed on its own (no driver's write saw it) and enters fail-stop.
async fn watch_store(shared: Arc<Shared>) {
    let mut phase = shared.watch_phase();
    loop {
        if shared.failure().is_some() || *phase.borrow() != Phase::Run {
            return;
        }
        tokio::select! {
            biased;
            changed = phase.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(shared.config.health_poll) => {}
        }
    }
}

/// A transaction coordinator. Cheap to clone; every clone drives the same transactions.
#[derive(Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
    local: Arc<InProcess>,
    /// Branch targets are in-process participant names (no custom transport).
    local_transport: bool,
    in_doubt: Arc<InDoubtSet>,
    /// Background tasks (store watch, in-doubt recovery), stopped at close.
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Random per process start, part of every generated gid.
    session: u16,
    gids: Arc<AtomicU64>,
}

/// How long [`Coordinator::begin`] waits before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until the transaction is durably accepted.
    Accepted,
    /// Until it ends (or is parked).
    Outcome,
    /// Until it ends (or is parked), but no longer than this: past it, the answer is the
    /// transaction's status when it was accepted (not final, not parked), and it goes on in
    /// the background. Servers use it so a caller waiting for a result always hears back.
    OutcomeWithin(std::time::Duration),
}

impl Coordinator {
    pub fn builder() -> CoordinatorBuilder {
        CoordinatorBuilder::default()
    }

    /// Opens (or creates) the embedded log in `dir`, with in-process participants given by
    /// the builder; see [`CoordinatorBuilder`].
    pub async fn open(dir: impl AsRef<Path>) -> Result<Coordinator> {
        CoordinatorBuilder::default().open(dir).await
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Who this coordinator is: the identity its store recorded when it was created.
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// A fresh gid built from this coordinator's identity (`tandem_core::ids::generated_gid`).
    pub fn new_gid(&self) -> String {
        let n = self.gids.fetch_add(1, Ordering::Relaxed);
        tandem_core::ids::generated_gid(&self.shared.identity, self.now(), self.session, n)
    }

    /// What one transaction may be (branch counts, payload bytes).
    pub fn limits(&self) -> &tandem_core::Limits {
        &self.shared.config.limits
    }

    /// Why the coordinator stopped acting (its log failed), if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Whether it accepts work: running, and its log healthy.
    pub fn ready(&self) -> bool {
        self.shared.accepting().is_ok()
    }

    /// Resolves, with the reason, once the coordinator entered fail-stop. A server exits then
    /// (its supervisor restarts it, and the restart recovers from the log).
    pub async fn failed(&self) -> String {
        let mut phase = self.shared.watch_phase();
        loop {
            if let Some(why) = self.shared.failure() {
                return why;
            }
            // Also poll: a store can fail on its own between writes.
            let _ = tokio::time::timeout(self.shared.config.health_poll, phase.changed()).await;
        }
    }

    /// Whether `name` can be called: registered in-process, or any name with a custom transport.
    pub(crate) fn knows(&self, name: &str) -> bool {
        !self.local_transport || self.local.contains(name)
    }

    /// Whether the participant `name` is under in-doubt recovery (its prepared transactions
    /// can be listed after a crash), so the log need not force the participant list.
    pub(crate) fn lists_in_doubt(&self, name: &str) -> bool {
        self.local_transport && self.in_doubt.resources.iter().any(|(n, _)| n == name)
    }

    /// Resumes what drivers held when this node last stopped (`Active` records: their calls'
    /// answers are not logged). What waits in the store is the scheduler's, when it is due.
    async fn recover(&self) -> Result<()> {
        let shared = &self.shared;
        let epoch = shared.store.epoch();
        let active = shared
            .store
            .claim_due(Timestamp(0), shared.config.claim_batch, true)
            .await?;
        let n = active.len();
        for c in active {
            shared.metrics.recovery(RecoveryAction::Resumed, 1);
            // Forced: these were running when the node stopped, so they fit (a lower
            // active_max since then is caught up with as they end).
            let _ = Driver::spawn(shared, c.tx, c.fence, epoch, Event::Resume, true);
        }
        if n > 0 {
            tracing::info!(transactions = n, "recovery resumed what was running");
        }
        Ok(())
    }

    /// Starts `tx` (built by a builder or by the server from a request) and waits as `wait`
    /// says. If a transaction with the same gid exists with the same content, it is not
    /// started again: its current outcome is answered (idempotent submit).
    pub async fn begin(&self, mut tx: Transaction, wait: Wait) -> Result<Outcome> {
        validate_gid(&tx.gid)?;
        self.shared.accepting()?;
        let gid: Arc<str> = Arc::from(tx.gid.as_str());
        let (inbox_tx, inbox) = mpsc::channel(INBOX_MAX);
        match self.shared.registry.claim(&gid, &inbox_tx, false) {
            Claim::Claimed => {}
            Claim::Active => {
                return match self.shared.store.get(&gid).await? {
                    Some(old) if same_request(&old, &tx) => self.await_existing(old, wait).await,
                    _ => Err(EngineError::GidExists(tx.gid)),
                };
            }
            Claim::Full { active, limit } => return Err(EngineError::Busy { active, limit }),
        }
        match self.shared.store.get(&gid).await {
            Ok(None) => {}
            Ok(Some(old)) => {
                self.shared.registry.remove(&gid);
                return if same_request(&old, &tx) {
                    self.await_existing(old, wait).await
                } else {
                    Err(EngineError::GidExists(tx.gid))
                };
            }
            Err(e) => {
                self.shared.registry.remove(&gid);
                return Err(e.into());
            }
        }
        let now = self.shared.clock.now();
        tx.created_at = now;
        tx.updated_at = now;
        tx.origin = Some(self.shared.identity.clone());
        tx.nonce = self.shared.rng.next_u32();
        self.shared.metrics.started(tx.kind);
        let (started_tx, mut started) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let waiter = (wait != Wait::Accepted).then_some(done_tx);
        // What a caller hears who does not wait for the end (computed only for one).
        let accepted = (wait != Wait::Outcome).then(|| Outcome::of(&tx));
        let tx_span = span_of(&tx);
        // A new transaction starts under fence 1 (shared stores insert it owned by this node).
        let epoch = self.shared.store.epoch();
        let driver = Driver::new(tx, gid, self.shared.clone(), inbox, 1, epoch);
        tokio::spawn(
            driver
                .run(Event::Start, Some(started_tx), waiter)
                .instrument(tx_span),
        );
        match wait {
            Wait::Accepted => {
                started.await.map_err(|_| EngineError::ShuttingDown)??;
                accepted.ok_or(EngineError::ShuttingDown)
            }
            // Only `done` is awaited: the driver's answer on `started` then wakes nobody
            // (one task wake-up less per transaction). If `done` closes without an outcome,
            // `started` says why: the first step failed, or the engine stopped.
            Wait::Outcome => match done.await {
                Ok(outcome) => Ok(outcome),
                Err(_) => match started.try_recv() {
                    Ok(Err(e)) => Err(e),
                    _ => Err(EngineError::ShuttingDown),
                },
            },
            Wait::OutcomeWithin(bound) => match tokio::time::timeout(bound, done).await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(_)) => match started.try_recv() {
                    Ok(Err(e)) => Err(e),
                    _ => Err(EngineError::ShuttingDown),
                },
                // Not ended within the bound: answer once it is durably accepted.
                Err(_) => {
                    started.await.map_err(|_| EngineError::ShuttingDown)??;
                    accepted.ok_or(EngineError::ShuttingDown)
                }
            },
        }
    }

    async fn await_existing(&self, old: Transaction, wait: Wait) -> Result<Outcome> {
        match wait {
            _ if old.is_final() => Ok(Outcome::of(&old)),
            Wait::Accepted => Ok(Outcome::of(&old)),
            Wait::Outcome => self.wait(&old.gid).await,
            Wait::OutcomeWithin(bound) => Ok(self
                .wait_within(&old.gid, bound)
                .await?
                .unwrap_or_else(|| Outcome::of(&old))),
        }
    }

    /// As [`Coordinator::wait`], for at most `bound`: `None` when `gid` has neither ended
    /// nor been parked by then (it goes on in the background).
    pub async fn wait_within(
        &self,
        gid: &str,
        bound: std::time::Duration,
    ) -> Result<Option<Outcome>> {
        match tokio::time::timeout(bound, self.wait(gid)).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Waits until `gid` ends or is parked.
    pub async fn wait(&self, gid: &str) -> Result<Outcome> {
        self.shared.check_failed()?;
        if let Some(inbox) = self.shared.registry.get(gid) {
            let (tx, rx) = oneshot::channel();
            if inbox.send(Control::Wait(tx)).await.is_ok() {
                if let Ok(outcome) = rx.await {
                    return Ok(outcome);
                }
            }
        }
        // Not active (or it just ended): the log has the final word.
        match self.durable_state(gid).await? {
            Some(tx) => Ok(Outcome::of(&tx)),
            None => Err(EngineError::NotFound(gid.to_string())),
        }
    }

    /// The durable state of a transaction no driver holds. A driver may just have ended
    /// with an unforced final record (a 2PC's end, implied by its durable decision); flush
    /// once so that record is visible before concluding the transaction is unfinished.
    async fn durable_state(&self, gid: &str) -> Result<Option<Transaction>> {
        match self.shared.store.get(gid).await? {
            Some(tx) if !tx.is_final() => {
                self.shared.store.flush().await?;
                Ok(self.shared.store.get(gid).await?)
            }
            other => Ok(other),
        }
    }

    /// Sends a client or operator event (TCC register/submit/abort, retry, stop) to `gid`.
    /// Resolves once the event's effects are durable. A transaction that waits in the store is
    /// loaded (claimed) first; one that another live node drives is waited for, briefly.
    pub async fn send(&self, gid: &str, event: Event) -> Result<()> {
        let mut busy_until: Option<tokio::time::Instant> = None;
        loop {
            self.shared.accepting()?;
            if let Some(inbox) = self.shared.registry.get(gid) {
                let (reply, rx) = oneshot::channel();
                if inbox
                    .send(Control::Event {
                        event: event.clone(),
                        reply,
                    })
                    .await
                    .is_ok()
                {
                    if let Ok(r) = rx.await {
                        return r.map_err(EngineError::from);
                    }
                }
                // The driver left meanwhile (it ended, or went idle); look again.
                continue;
            }
            // A driver may just have ended with an unforced record: make it durable, so the
            // claim below sees the newest state and never revives a finished transaction.
            self.shared.store.flush().await?;
            let epoch = self.shared.store.epoch();
            match self.shared.store.claim(gid).await? {
                tandem_store::Claim::Missing => return Err(EngineError::NotFound(gid.to_string())),
                tandem_store::Claim::Busy { owner } => {
                    let until =
                        *busy_until.get_or_insert_with(|| tokio::time::Instant::now() + BUSY_WAIT);
                    if tokio::time::Instant::now() >= until {
                        return Err(EngineError::OwnedElsewhere { owner });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tandem_store::Claim::Got(c) if c.tx.is_final() => {
                    // Ended transactions never change; this only tells whether the event is an
                    // idempotent repeat or a refusal.
                    let mut tx = c.tx;
                    tx.apply(event, self.shared.clock.now())?;
                    return Ok(());
                }
                tandem_store::Claim::Got(c) => {
                    let first = if c.resume { Event::Resume } else { Event::Tick };
                    match Driver::spawn(&self.shared, c.tx, c.fence, epoch, first, false) {
                        Ok(()) | Err(Claim::Active) => {}
                        Err(Claim::Full { active, limit }) => {
                            return Err(EngineError::Busy { active, limit })
                        }
                        Err(Claim::Claimed) => {}
                    }
                }
            }
        }
    }

    /// Operator: retry a parked (or slow) transaction now; the reason is recorded.
    pub async fn retry(&self, gid: &str, reason: impl Into<String>) -> Result<()> {
        self.send(
            gid,
            Event::Retry {
                reason: reason.into(),
            },
        )
        .await
    }

    /// Operator: stop a transaction; it ends failed where its protocol allows.
    pub async fn stop(&self, gid: &str, reason: impl Into<String>) -> Result<()> {
        self.send(
            gid,
            Event::Stop {
                reason: reason.into(),
            },
        )
        .await
    }

    /// The newest durable state of `gid`.
    pub async fn get(&self, gid: &str) -> Result<Option<Transaction>> {
        self.shared.check_failed()?;
        Ok(self.shared.store.get(gid).await?)
    }

    pub async fn list(&self, q: &ListQuery) -> Result<Page> {
        self.shared.check_failed()?;
        Ok(self.shared.store.list(q).await?)
    }

    /// Every message topic (kept by the store; see [`tandem_store::topic`]).
    pub async fn topics(&self) -> Result<Vec<Topic>> {
        Ok(self.shared.store.topics().await?)
    }

    pub async fn topic(&self, name: &str) -> Result<Option<Topic>> {
        Ok(self.shared.store.topic(name).await?)
    }

    /// Stores `topic` if the stored version is `expected`; see [`Store::put_topic`].
    pub async fn put_topic(&self, topic: &Topic, expected: u64) -> Result<bool> {
        Ok(self.shared.store.put_topic(topic, expected).await?)
    }

    pub async fn delete_topic(&self, name: &str) -> Result<bool> {
        Ok(self.shared.store.delete_topic(name).await?)
    }

    pub fn stats(&self) -> EngineStats {
        let t = self.shared.metrics.totals();
        EngineStats {
            started: t.started,
            succeeded: t.succeeded,
            failed: t.failed,
            parked: t.parked,
            calls: t.calls,
            call_retries: t.call_retries,
            recovered: t.recovered,
            running: self.shared.registry.len(),
            store: self.shared.store.stats(),
        }
    }

    /// Unfinished and parked transactions, wherever they are (memory or store), and how many
    /// are running in memory.
    pub async fn counts(&self) -> Result<Counts> {
        self.shared.check_failed()?;
        let c = self.shared.store.counts().await?;
        Ok(Counts {
            unfinished: c.unfinished,
            parked: c.parked,
            running: self.shared.registry.len() as u64,
        })
    }

    /// The live counters and histograms (for `/metrics`).
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.shared.metrics
    }

    /// Subscribes to parked-transaction alerts (see [`crate::alert`]).
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<ParkedAlert> {
        self.shared.alerts.subscribe()
    }

    /// The log's batch-size and fsync-latency distributions, when the store has a log.
    pub fn log_histograms(&self) -> Option<tandem_store::LogHistograms> {
        self.shared.store.log_histograms()
    }

    /// Runs one in-doubt recovery pass now (one also runs at open and periodically).
    pub async fn resolve_in_doubt(&self) -> RecoveryStats {
        recovery::pass(&self.shared, &self.in_doubt).await;
        self.in_doubt.stats.snapshot()
    }

    /// What in-doubt recovery did since open.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.in_doubt.stats.snapshot()
    }

    /// Shuts down with a 5-second grace period; see [`Coordinator::close_within`].
    pub async fn close(&self) -> Result<()> {
        self.close_within(std::time::Duration::from_secs(5)).await
    }

    /// Refuses new transactions, lets branch calls already in flight finish (and their
    /// answers be logged) for up to `grace`, then stops every driver and flushes and closes
    /// the store. Whatever was unfinished resumes from the log on the next start.
    pub async fn close_within(&self, grace: std::time::Duration) -> Result<()> {
        self.shared.set_phase(Phase::Drain);
        // In-doubt recovery stops at once: every resolution is idempotent and the next start
        // runs a pass again.
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.registry.len() > 0
            && tokio::time::Instant::now() < deadline
            && self.shared.phase() != Phase::Failed
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.shared.set_phase(Phase::Stop);
        for _ in 0..100 {
            if self.shared.registry.len() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.shared.store.close().await?;
        Ok(())
    }
}

/// Whether a resubmission with the same gid asks for the same transaction.
fn same_request(old: &Transaction, new: &Transaction) -> bool {
    old.kind == new.kind
        && old.options == new.options
        && old.branches.len() >= new.branches.len()
        && old.branches.iter().zip(&new.branches).all(|(a, b)| {
            a.branch_id == b.branch_id
                && a.op == b.op
                && a.target == b.target
                && a.payload == b.payload
        })
}
