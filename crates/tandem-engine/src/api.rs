//! Builders for the library API: a saga of in-process steps, a 2PC over in-process
//! resources.
//!
//! ```no_run
//! # async fn demo(c: tandem_engine::Coordinator) -> Result<(), tandem_engine::EngineError> {
//! let outcome = c.saga("transfer-42")
//!     .step("bank-a", br#"{"account":"alice","amount":-10}"#.to_vec())
//!     .step("bank-b", br#"{"account":"bob","amount":10}"#.to_vec())
//!     .run()
//!     .await?;
//! assert!(outcome.succeeded());
//! # Ok(()) }
//! ```

use tandem_core::{Branch, Op, Options, Transaction, TxKind};

use crate::coordinator::{Coordinator, Wait};
use crate::driver::Outcome;
use crate::error::{EngineError, Result};

/// Builds a saga: each step is an in-process [`crate::SagaStep`] registered by name, called
/// with `action` and, if the saga aborts after it started, `compensate`.
pub struct SagaBuilder<'a> {
    c: &'a Coordinator,
    tx: Transaction,
    error: Option<EngineError>,
}

impl Coordinator {
    pub fn saga(&self, gid: impl Into<String>) -> SagaBuilder<'_> {
        let tx = Transaction::new(gid, TxKind::Saga, Options::default(), self.now());
        SagaBuilder {
            c: self,
            tx,
            error: None,
        }
    }

    pub fn two_phase(&self, gid: impl Into<String>) -> TwoPhaseBuilder<'_> {
        TwoPhaseBuilder {
            c: self,
            gid: gid.into(),
            options: Options::default(),
            parts: Vec::new(),
            error: None,
        }
    }
}

/// Branch ids as DTM numbers them: "01", "02", …
fn branch_id(k: usize) -> String {
    const SMALL: [&str; 9] = ["01", "02", "03", "04", "05", "06", "07", "08", "09"];
    match SMALL.get(k) {
        Some(s) => (*s).to_string(),
        None => format!("{:02}", k + 1),
    }
}

impl<'a> SagaBuilder<'a> {
    /// Adds a step run after the previous one (or, in a concurrent saga, with no order).
    pub fn step(mut self, participant: &str, payload: impl Into<Vec<u8>>) -> Self {
        if !self.c.knows(participant) {
            self.error
                .get_or_insert(EngineError::UnknownParticipant(participant.into()));
        }
        let k = self.tx.branches.len() / 2;
        let payload = payload.into();
        self.tx.branches.push(Branch::new(
            branch_id(k),
            Op::Action,
            participant,
            payload.clone(),
        ));
        self.tx.branches.push(Branch::new(
            branch_id(k),
            Op::Compensate,
            participant,
            payload,
        ));
        self
    }

    /// Adds a step that starts only after the steps `after` (0-based) succeeded; makes the
    /// saga concurrent (steps without an order run in parallel).
    pub fn step_after(
        mut self,
        participant: &str,
        payload: impl Into<Vec<u8>>,
        after: &[u16],
    ) -> Self {
        self.tx.options.concurrent = true;
        let k = self.tx.branches.len() / 2;
        self = self.step(participant, payload);
        self.tx.options.orders.resize(k + 1, Vec::new());
        self.tx.options.orders[k] = after.to_vec();
        self
    }

    /// Runs every step concurrently unless ordered by [`SagaBuilder::step_after`].
    pub fn concurrent(mut self) -> Self {
        self.tx.options.concurrent = true;
        self
    }

    /// Adjusts timeouts, retries and limits.
    pub fn options(mut self, f: impl FnOnce(&mut Options)) -> Self {
        f(&mut self.tx.options);
        self
    }

    /// Starts the saga and waits for its outcome (or for it to be parked).
    pub async fn run(self) -> Result<Outcome> {
        self.begin(Wait::Outcome).await
    }

    /// Starts the saga and returns once it is durably accepted; see [`Coordinator::wait`].
    pub async fn submit(self) -> Result<Outcome> {
        self.begin(Wait::Accepted).await
    }

    async fn begin(self, wait: Wait) -> Result<Outcome> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.c.begin(self.tx, wait).await
    }
}

/// Builds a two-phase commit over in-process [`crate::Resource`]s registered by name.
pub struct TwoPhaseBuilder<'a> {
    c: &'a Coordinator,
    gid: String,
    options: Options,
    parts: Vec<(String, Vec<u8>)>,
    error: Option<EngineError>,
}

impl<'a> TwoPhaseBuilder<'a> {
    pub fn participant(mut self, resource: &str, payload: impl Into<Vec<u8>>) -> Self {
        if !self.c.knows(resource) {
            self.error
                .get_or_insert(EngineError::UnknownParticipant(resource.into()));
        }
        self.parts.push((resource.into(), payload.into()));
        self
    }

    pub fn options(mut self, f: impl FnOnce(&mut Options)) -> Self {
        f(&mut self.options);
        self
    }

    /// Runs both phases and waits for the outcome (or for the transaction to be parked).
    pub async fn run(self) -> Result<Outcome> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut tx = Transaction::new(self.gid, TxKind::TwoPc, self.options, self.c.now());
        tx.participants_listable = self
            .parts
            .iter()
            .all(|(name, _)| self.c.lists_in_doubt(name));
        if let [(name, payload)] = self.parts.as_slice() {
            tx.branches.push(Branch::new(
                branch_id(0),
                Op::CommitOnePhase,
                name.as_str(),
                payload.clone(),
            ));
        } else {
            for (k, (name, payload)) in self.parts.into_iter().enumerate() {
                for op in [Op::Prepare, Op::Commit, Op::Rollback] {
                    tx.branches.push(Branch::new(
                        branch_id(k),
                        op,
                        name.as_str(),
                        payload.clone(),
                    ));
                }
            }
        }
        self.c.begin(tx, Wait::Outcome).await
    }
}
