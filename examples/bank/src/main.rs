//! `bank`: run a bank service, the checker, or both banks, the coordinator and the checker in
//! one process (`bank demo`). See README.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bank::check::{self, CheckConfig, Mode};
use bank::demo::Demo;
use bank::http::Http;
use bank::service::{self, Service};
use bank::store::Bank;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Two banks (PostgreSQL, MariaDB) transferring money through Tandem")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one bank service on a database (postgres:// or mysql:// URL).
    Serve {
        /// The bank's database.
        #[arg(long)]
        db: String,
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// The coordinator (for XA branch registration).
        #[arg(long, default_value = "http://127.0.0.1:36789")]
        coordinator: String,
        /// This service's URL as the coordinator reaches it (default: http://LISTEN).
        #[arg(long)]
        public_url: Option<String>,
        /// Names the tables: bank_TAG_account, bank_TAG_ledger.
        #[arg(long, default_value = "demo")]
        tag: String,
    },
    /// Run transfers against running banks and coordinator, then check the money.
    Check {
        #[arg(long, default_value = "http://127.0.0.1:36789")]
        coordinator: String,
        /// The PostgreSQL bank service.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        bank_a: String,
        /// The MariaDB bank service.
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        bank_b: String,
        #[command(flatten)]
        load: Load,
    },
    /// Start the coordinator and both banks in this process, then run the checker.
    Demo {
        #[arg(
            long,
            env = "TANDEM_TEST_PG",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        pg: String,
        #[arg(
            long,
            env = "TANDEM_TEST_MYSQL",
            default_value = "mysql://root@127.0.0.1:3306/test"
        )]
        mysql: String,
        /// Names the tables (default: a fresh one per run).
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        load: Load,
    },
}

#[derive(Args, Clone)]
struct Load {
    /// saga, tcc or xa; several with commas (demo runs them one after another).
    #[arg(long, value_delimiter = ',', default_value = "saga")]
    mode: Vec<Mode>,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of load per mode.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Accounts per bank.
    #[arg(long, default_value_t = 20)]
    accounts: i64,
    #[arg(long, default_value_t = 1000)]
    balance: i64,
    #[arg(long, default_value_t = 300)]
    amount_max: i64,
    /// Percent of transfers whose debit or credit fails on purpose.
    #[arg(long, default_value_t = 10)]
    fail_pct: u32,
    /// Seconds to wait for every transaction to end after the load.
    #[arg(long, default_value_t = 120)]
    settle: u64,
    /// Keep the account and ledger tables afterwards (by default they are dropped when the
    /// money adds up, and kept for inspection when it does not).
    #[arg(long)]
    keep_tables: bool,
}

impl Load {
    fn config(&self, mode: Mode, coordinator: &str, banks: [String; 2]) -> CheckConfig {
        CheckConfig {
            coordinator: coordinator.to_owned(),
            banks,
            mode,
            clients: self.clients,
            duration: Duration::from_secs(self.duration),
            accounts: self.accounts,
            balance: self.balance,
            amount_max: self.amount_max,
            fail_pct: self.fail_pct,
            settle: Duration::from_secs(self.settle),
        }
    }
}

/// Drops the banks' tables when the run passed (unless `--keep-tables`), and says so.
async fn finish_tables(load: &Load, all_ok: bool, banks: &[String; 2]) -> anyhow::Result<()> {
    if load.keep_tables || !all_ok {
        println!("tables kept (bank_<tag>_account, bank_<tag>_ledger in both databases)");
        return Ok(());
    }
    check::teardown(banks).await?;
    println!("dropped this run's tables (bank_<tag>_account, bank_<tag>_ledger)");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut all_ok = true;
    match Cli::parse().cmd {
        Cmd::Serve {
            db,
            listen,
            coordinator,
            public_url,
            tag,
        } => {
            let svc = Arc::new(Service {
                bank: Bank::connect(&db, &tag).await?,
                coordinator,
                public_url: public_url.unwrap_or_else(|| format!("http://{listen}")),
                http: Http::new(),
            });
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("bank on {db} serving at http://{listen}");
            axum::serve(listener, service::router(svc))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Cmd::Check {
            coordinator,
            bank_a,
            bank_b,
            load,
        } => {
            for mode in load.mode.clone() {
                let report =
                    check::run(load.config(mode, &coordinator, [bank_a.clone(), bank_b.clone()]))
                        .await?;
                print!("{report}");
                all_ok &= report.ok();
            }
            finish_tables(&load, all_ok, &[bank_a, bank_b]).await?;
        }
        Cmd::Demo {
            pg,
            mysql,
            tag,
            load,
        } => {
            let tag = tag.unwrap_or_else(|| format!("demo{}", std::process::id()));
            let demo = Demo::start(&pg, &mysql, &tag).await?;
            println!(
                "coordinator {}, banks {} (PostgreSQL) and {} (MariaDB), tables bank_{tag}_*",
                demo.coordinator, demo.banks[0], demo.banks[1]
            );
            for mode in load.mode.clone() {
                let report =
                    check::run(load.config(mode, &demo.coordinator, demo.banks.clone())).await?;
                print!("{report}");
                all_ok &= report.ok();
            }
            finish_tables(&load, all_ok, &demo.banks).await?;
            demo.stop().await;
        }
    }
    anyhow::ensure!(
        all_ok,
        "the money does not add up (see the violations above)"
    );
    Ok(())
}
