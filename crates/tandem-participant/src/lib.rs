//! # tandem-participant: taking part in Tandem transactions safely
//!
//! For participant services (any framework, no server dependencies):
//! - [`barrier`]: the sub-transaction barrier. Inside the participant's own local database
//!   transaction it makes repeated, out-of-order and late calls harmless (idempotency, null
//!   compensation, no hanging), on PostgreSQL, MySQL/MariaDB and SQLite, with a table layout
//!   compatible with DTM's `dtm_barrier.barrier`.
//! - [`xa`]: prepared transactions on PostgreSQL (`PREPARE TRANSACTION`) and MySQL/MariaDB
//!   (`XA PREPARE`): the local half of XA, the in-doubt listing recovery needs, and the
//!   helper a participant service uses in the server's XA mode.
//! - `axum` (feature `axum`): helpers for participant services written with axum — the
//!   branch-call extractor, protocol answers and the barrier wrapper, with a complete
//!   participant in twenty lines in its docs.
//! - [`testenv`]: how the database tests find their servers (`TANDEM_TEST_PG`,
//!   `TANDEM_TEST_MYSQL`): skipped loudly outside CI, a failure in CI.

#[cfg(feature = "axum")]
pub mod axum;
pub mod barrier;
pub mod testenv;
pub mod xa;
