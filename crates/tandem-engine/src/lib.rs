//! # tandem-engine: the runtime that carries the protocols out
//!
//! `tandem-core` decides; this crate acts. For every active transaction a driver task feeds
//! events (call answers, timer ticks, client and operator requests) to the protocol machine
//! and executes the commands it returns: writes to the [`tandem_store::Store`], calls through
//! the [`Transport`], wake-ups on its timer. The engine adds no protocol logic of its own.
//!
//! - [`Coordinator`]: open on a directory, recover, start transactions, look them up,
//!   operator actions.
//! - [`SagaStep`], [`Resource`]: what in-process participants implement.
//! - [`Transport`], [`Clock`], [`Rng`]: injected, so a simulation can replace them.
//! - Fail-stop: after any store failure nothing acts any more ([`Coordinator::failed`]).
//! - [`recovery`]: in-doubt recovery of prepared transactions left on XA resources;
//!   `xa` (cargo feature `xa`): PostgreSQL and MySQL/MariaDB resources.
//!
//! Failpoints (cargo feature `failpoints`) sit at every durability boundary:
//! `after-start`, `saga-between-steps`, `saga-mid-compensation`, `2pc-after-votes`,
//! `2pc-before-decision`, `2pc-after-decision`, `2pc-between-phase2`, `xa-after-db-prepare`, `before-end`,
//! `after-end`, and in the store `store-before-sync`, `store-after-sync`.

pub mod alert;
mod api;
mod call_log;
pub mod clock;
pub mod config;
mod coordinator;
mod driver;
mod error;
pub mod metrics;
mod outcome;
pub mod participant;
pub mod recovery;
mod registry;
mod retention;
mod scheduler;
mod shared;
pub mod transport;
#[cfg(feature = "xa")]
pub mod xa;

pub use alert::ParkedAlert;
pub use api::{SagaBuilder, TwoPhaseBuilder};
pub use clock::{Clock, OsRng, Rng, SeededRng, SystemClock};
pub use config::EngineConfig;
pub use coordinator::{Coordinator, CoordinatorBuilder, Counts, EndHook, EngineStats, Wait};
pub use error::{EngineError, Result};
pub use metrics::{EngineMetrics, MetricsSnapshot};
pub use outcome::Outcome;
pub use participant::{BranchError, CallRequest, Resource, SagaStep, Vote};
pub use recovery::{InDoubt, InDoubtConfig, InDoubtXact, RecoveryStats};
pub use tandem_core;
pub use tandem_store;
pub use transport::{CallResult, InProcess, Local, Transport};
