//! # bank: money transfers between two databases through Tandem
//!
//! Two account services — one keeps its accounts in PostgreSQL, the other in MariaDB/MySQL —
//! behind HTTP ([`service`]), transferring money through `tandem serve` as a saga, as TCC and
//! as XA; and a checker ([`check`]) that runs concurrent transfers with injected failures and
//! proves afterwards that the money adds up. The participant side uses only
//! `tandem-participant`: its axum helpers (branch-call extractor, protocol answers, the
//! barrier wrapper) for saga, TCC, 2PC and message steps, the XA helpers for XA; the
//! checker drives the coordinator with `tandem-client`.
//!
//! - [`effect`]: what each step does to an account (pure);
//! - [`store`]: the accounts and ledger in each database;
//! - [`service`]: the HTTP endpoints;
//! - [`check`]: the load and the verdict;
//! - [`demo`]: coordinator and banks in one process;
//! - [`http`]: a small JSON client for the admin endpoints and DTM's XA protocol.

pub mod check;
pub mod demo;
pub mod effect;
pub mod http;
pub mod service;
pub mod store;
