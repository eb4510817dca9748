//! `tandem tx list|show|retry|stop`: inspect and operate on transactions.
//!
//! Two sources, one output: with `--server URL` the commands use a running server's `/v1`
//! API ([`crate::client`]); without it, `list` and `show` open a data directory directly
//! (which replays its write-ahead log, so it needs the directory to itself: stop the
//! coordinator first). `retry` and `stop` change a live transaction, which only the server
//! driving it may do, so they need `--server`, and a `--reason` that is recorded in the
//! transaction's history.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use tandem_client::{ListFilter, TxSummary, TxView};
use tandem_core::{TxKind, TxStatus};
use tandem_store::redb_store::{RedbConfig, RedbStore};
use tandem_store::{ListQuery, Store, StoreError};

use crate::tx_print;

/// `tandem tx --help`: the two ways of reaching transactions.
pub const LONG_ABOUT: &str = "\
Inspect and operate on transactions, in one of two modes:

  --server URL     ask a running server over its /v1 API (e.g. http://127.0.0.1:36789).
                   Works while it runs; `retry` and `stop` need it. If the server requires
                   a token (auth_token), set TANDEM_AUTH_TOKEN to it; the CLI sends it.
  --data-dir DIR   read the data directory itself (default ./tandem-data). Only while no
                   server uses it: a running server holds it, and then --server is the way.

TANDEM_SERVER and TANDEM_DATA_DIR set the same as the flags.";

/// Where the transactions are: a running server, or else a data directory.
#[derive(Args)]
pub struct Source {
    /// A running server's base URL (e.g. http://127.0.0.1:36789); when given, the
    /// data directory is not read. Sends TANDEM_AUTH_TOKEN as a bearer token when set.
    #[arg(long, env = "TANDEM_SERVER")]
    server: Option<String>,
    /// The data directory to read when no --server is given; no server may be using it.
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
pub enum TxCmd {
    /// List transactions, newest first.
    List {
        #[command(flatten)]
        source: Source,
        /// Only this status: prepared | submitted | aborting | succeed | failed
        #[arg(long)]
        status: Option<String>,
        /// Only this type: saga | 2pc | tcc | msg (the API's `type`; --kind is the same)
        #[arg(long = "type", visible_alias = "kind", value_name = "TYPE")]
        kind: Option<String>,
        /// Only parked transactions (waiting for an operator's retry or stop).
        #[arg(long)]
        parked: bool,
        /// Only gids starting with this.
        #[arg(long)]
        gid_prefix: Option<String>,
        /// Most transactions on one page (1..=1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor printed at the end of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Print the page as JSON, with the API's field names
        /// ({"transactions": [...], "next_cursor": ...}).
        #[arg(long)]
        json: bool,
    },
    /// Show one transaction with its branches, attempts and history.
    Show {
        /// The transaction's gid.
        gid: String,
        #[command(flatten)]
        source: Source,
        /// Print it as JSON, as `GET /v1/transactions/{gid}` answers.
        #[arg(long)]
        json: bool,
    },
    /// Operator: retry a (parked) transaction's unfinished branches now (needs --server).
    Retry {
        /// The transaction's gid.
        gid: String,
        /// The running server that drives the transaction.
        #[arg(long, env = "TANDEM_SERVER")]
        server: Option<String>,
        /// Why; recorded in the transaction's history.
        #[arg(long)]
        reason: String,
        /// Print the transaction afterwards as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operator: force-stop a transaction (it ends failed where its protocol allows; needs
    /// --server).
    Stop {
        /// The transaction's gid.
        gid: String,
        /// The running server that drives the transaction.
        #[arg(long, env = "TANDEM_SERVER")]
        server: Option<String>,
        /// Why; recorded in the transaction's history.
        #[arg(long)]
        reason: String,
        /// Print the transaction afterwards as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn open(dir: &Path) -> anyhow::Result<RedbStore> {
    anyhow::ensure!(
        dir.is_dir(),
        "no data directory at {} (give the server's with --data-dir, or ask a running server \
         with --server URL)",
        dir.display()
    );
    RedbStore::open(dir, RedbConfig::default()).map_err(|e| match e {
        StoreError::InUse(_) => anyhow::anyhow!(
            "the data directory {} is in use by a running tandem server; ask the server \
             instead, e.g. `tandem tx list --server http://127.0.0.1:36789` (its --listen \
             address)",
            dir.display()
        ),
        e => anyhow::anyhow!("cannot open the data directory {}: {e}", dir.display()),
    })
}

pub async fn run(cmd: TxCmd) -> anyhow::Result<()> {
    match cmd {
        TxCmd::List {
            source,
            status,
            kind,
            parked,
            gid_prefix,
            limit,
            cursor,
            json,
        } => {
            let filter = ListFilter {
                status,
                kind,
                parked: parked.then_some(true),
                gid_prefix,
                cursor,
                limit: Some(limit),
                ..ListFilter::default()
            };
            let (items, next) = match &source.server {
                Some(url) => {
                    let page = crate::client::connect(url)?
                        .list(&filter)
                        .await
                        .map_err(crate::client::explain)?;
                    (page.transactions, page.next_cursor)
                }
                None => list_dir(&source.data_dir, filter).await?,
            };
            tx_print::list(&items, next.as_deref(), json)
        }
        TxCmd::Show { gid, source, json } => {
            let tx = match &source.server {
                Some(url) => crate::client::connect(url)?
                    .get(&gid)
                    .await
                    .map_err(crate::client::explain)?,
                None => show_dir(&source.data_dir, &gid).await?,
            };
            tx_print::show(&tx, json)
        }
        TxCmd::Retry {
            gid,
            server,
            reason,
            json,
        } => operate(server, &gid, "retry", &reason, json).await,
        TxCmd::Stop {
            gid,
            server,
            reason,
            json,
        } => operate(server, &gid, "stop", &reason, json).await,
    }
}

async fn operate(
    server: Option<String>,
    gid: &str,
    action: &str,
    reason: &str,
    json: bool,
) -> anyhow::Result<()> {
    let url = server.with_context(|| {
        format!(
            "`tandem tx {action}` changes a live transaction: give the server driving it with \
             --server URL (or TANDEM_SERVER)"
        )
    })?;
    anyhow::ensure!(
        !reason.trim().is_empty(),
        "--reason must say why (it is recorded in the transaction's history)"
    );
    let client = crate::client::connect(&url)?;
    let tx = match action {
        "retry" => client.retry(gid, reason).await,
        _ => client.stop(gid, reason).await,
    }
    .map_err(crate::client::explain)?;
    tx_print::show(&tx, json)
}

async fn list_dir(dir: &Path, f: ListFilter) -> anyhow::Result<(Vec<TxSummary>, Option<String>)> {
    let q = ListQuery {
        status: f
            .status
            .map(|s| TxStatus::parse(&s).with_context(|| format!("unknown status {s:?}")))
            .transpose()?,
        kind: f
            .kind
            .map(|k| TxKind::parse(&k).with_context(|| format!("unknown kind {k:?}")))
            .transpose()?,
        parked: f.parked,
        gid_prefix: f.gid_prefix,
        cursor: f.cursor,
        limit: f.limit.unwrap_or(50),
        ..Default::default()
    };
    let store = open(dir)?;
    let page = store.list(&q).await;
    store.close().await?;
    let page = page?;
    let items = page
        .items
        .iter()
        .map(|tx| wire(&tandem_server::v1::view::TxSummary::from(tx)))
        .collect::<anyhow::Result<_>>()?;
    Ok((items, page.next))
}

/// A server view type as the client reads it off the wire: the data directory is printed
/// exactly as the server would answer for it.
fn wire<T: serde::Serialize, U: serde::de::DeserializeOwned>(v: &T) -> anyhow::Result<U> {
    Ok(serde_json::from_value(serde_json::to_value(v)?)?)
}

async fn show_dir(dir: &Path, gid: &str) -> anyhow::Result<TxView> {
    let store = open(dir)?;
    let tx = store.get(gid).await;
    store.close().await?;
    let tx = tx?.with_context(|| format!("no transaction {gid:?} in {}", dir.display()))?;
    wire(&tandem_server::v1::view::TxView::from(&tx))
}
