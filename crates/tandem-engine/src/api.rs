//! Builders for the library API: a saga of in-process steps, a 2PC over in-process
//! resources. Both only collect a `tandem_core::spec::TxSpec`; the core lays it out and
//! checks it against the coordinator's limits.
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

use tandem_core::spec::{self, ParticipantSpec, Shape, StepSpec, TxSpec};
use tandem_core::Options;

use crate::coordinator::{Coordinator, Wait};
use crate::error::{EngineError, Result};
use crate::outcome::Outcome;

/// Builds a saga: each step is an in-process [`crate::SagaStep`] registered by name, called
/// with `action` and, if the saga aborts after it started, `compensate`.
pub struct SagaBuilder<'a> {
    c: &'a Coordinator,
    gid: String,
    options: Options,
    steps: Vec<StepSpec>,
    error: Option<EngineError>,
}

impl Coordinator {
    pub fn saga(&self, gid: impl Into<String>) -> SagaBuilder<'_> {
        SagaBuilder {
            c: self,
            gid: gid.into(),
            options: Options::default(),
            steps: Vec::new(),
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

impl<'a> SagaBuilder<'a> {
    /// Adds a step run after the previous one (or, in a concurrent saga, with no order).
    pub fn step(mut self, participant: &str, payload: impl Into<Vec<u8>>) -> Self {
        if !self.c.knows(participant) {
            self.error
                .get_or_insert(EngineError::UnknownParticipant(participant.into()));
        }
        self.steps.push(StepSpec {
            action: participant.into(),
            compensate: participant.into(),
            payload: payload.into(),
        });
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
        self.options.concurrent = true;
        let k = self.steps.len();
        self = self.step(participant, payload);
        self.options.orders.resize(k + 1, Vec::new());
        self.options.orders[k] = after.to_vec();
        self
    }

    /// Runs every step concurrently unless ordered by [`SagaBuilder::step_after`].
    pub fn concurrent(mut self) -> Self {
        self.options.concurrent = true;
        self
    }

    /// Adjusts timeouts, retries and limits.
    pub fn options(mut self, f: impl FnOnce(&mut Options)) -> Self {
        f(&mut self.options);
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
        let spec = TxSpec {
            gid: self.gid,
            shape: Shape::Saga(self.steps),
            options: self.options,
            custom_data: None,
        };
        let tx = spec::build(spec, self.c.limits(), self.c.now())?;
        self.c.begin(tx, wait).await
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

    /// Runs both phases and waits for the outcome (or for the transaction to be parked). A
    /// single participant commits in one phase.
    pub async fn run(self) -> Result<Outcome> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let listable = self
            .parts
            .iter()
            .all(|(name, _)| self.c.lists_in_doubt(name));
        let participants = self
            .parts
            .into_iter()
            .map(|(name, payload)| ParticipantSpec {
                prepare: name.clone(),
                commit: name.clone(),
                rollback: name,
                payload,
            })
            .collect();
        let spec = TxSpec {
            gid: self.gid,
            shape: Shape::TwoPc {
                participants,
                one_phase: true,
            },
            options: self.options,
            custom_data: None,
        };
        let mut tx = spec::build(spec, self.c.limits(), self.c.now())?;
        tx.participants_listable = listable;
        self.c.begin(tx, Wait::Outcome).await
    }
}
