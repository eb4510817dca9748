//! Helpers for participant services written with axum (feature `axum`; no engine, no
//! server): the [`BranchCall`] extractor (who is calling), [`Reply`] (answers in the
//! coordinator's language: success, 409 FAILURE, 425 ONGOING) and the barrier wrapper
//! ([`BranchCall::postgres`], [`BranchCall::mysql`], [`BranchCall::sqlite`]) that runs a
//! handler's work inside the barrier transaction in one call.
//!
//! A complete saga participant (debit and its compensation) on SQLite:
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use axum::{extract::State, routing::post, Json, Router};
//! use tandem_participant::axum::{BranchCall, BranchError, Reply};
//!
//! #[derive(serde::Deserialize)]
//! struct Transfer { account: String, amount: i64 }
//! type Db = Arc<Mutex<rusqlite::Connection>>;
//!
//! async fn debit(call: BranchCall, State(db): State<Db>, Json(t): Json<Transfer>) -> Reply {
//!     // compensate = give the money back; the barrier skips duplicates, makes a
//!     // compensation whose debit never ran a no-op, and refuses a debit after it.
//!     let delta = if call.op() == "compensate" { t.amount } else { -t.amount };
//!     call.sqlite(&db, move |tx| {
//!         let n = tx.execute("UPDATE account SET balance = balance + ?1 WHERE id = ?2 AND balance + ?1 >= 0",
//!             (delta, &t.account))?;
//!         if n == 0 { return Err(BranchError::failure("insufficient funds")); }
//!         Ok(())
//!     }).await
//! }
//!
//! # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = rusqlite::Connection::open("bank.db")?;
//! tandem_participant::barrier::sqlite::create_table_if_missing(&conn, "barrier")?;
//! let app = Router::new().route("/debit", post(debit)).with_state(Arc::new(Mutex::new(conn)));
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8081").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! Point a saga step at it (`"action": "http://127.0.0.1:8081/debit", "compensate":
//! "http://127.0.0.1:8081/debit"`), and prove it safe with `tandem check participant`.

mod call;
mod reply;
mod run;

pub use call::BranchCall;
pub use reply::{BranchError, Reply};
