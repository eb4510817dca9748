//! # tandem-core: the protocols, without I/O
//!
//! Every protocol decision Tandem makes lives here, as pure state machines over a
//! [`Transaction`]: `tx.apply(event, now) -> Result<Vec<Command>, ApplyError>`. The core never
//! reads a clock, touches a disk or opens a socket; time comes in as an argument and every
//! effect goes out as a [`Command`] that the engine executes in order (see [`Command`] for the
//! ordering rule). That keeps the protocols deterministic, so unit tests assert exact command
//! lists and property tests can replay millions of interleavings of answers and crashes.
//!
//! Modules:
//! - [`tx`]: the durable shape of a transaction (gid, kind, status, branches, options).
//! - [`spec`]: the only place a transaction is built from what a client asks for (layout,
//!   ids, limits, option rules); [`ids`]: gid and branch-id rules.
//! - [`identity`]: a coordinator's durable identity and the XA xids built from it;
//!   [`in_doubt`]: what to do with a prepared xid the log may or may not explain.
//! - [`event`]: what happens to a transaction ([`Event`]) and what it asks for ([`Command`]).
//! - [`saga`], [`twopc`], [`tcc`], [`msg`], [`workflow`]: one state machine per protocol.
//! - [`backoff`]: retry delays (exponential, capped, deterministic jitter).
//! - [`codec`]: the versioned binary encoding of a transaction snapshot.

pub mod backoff;
pub mod codec;
pub mod event;
pub mod identity;
pub mod ids;
pub mod in_doubt;
pub mod msg;
pub mod saga;
mod sched;
pub mod spec;
pub mod tcc;
pub mod twopc;
pub mod tx;
pub mod workflow;

pub use event::{ApplyError, CallOutcome, Command, Event};
pub use identity::{Identity, Xid};
pub use ids::{validate_gid, GidError, GID_LEN_MAX};
pub use spec::{Limits, SpecError, TxSpec};
pub use tx::{
    Attempt, AttemptOutcome, Branch, BranchStatus, HistoryEntry, Op, Options, Timestamp,
    Transaction, TxKind, TxStatus,
};
