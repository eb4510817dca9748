//! `tandem`: the command line. Run the server (`serve`), inspect and operate on transactions
//! (`tx list|show` on a data directory or `--server`, `tx retry|stop --server`), check a
//! participant service (`check participant`) and measure the coordinator (`bench ...`). Errors are reported with anyhow; the exit code is
//! non-zero on any failure.

mod bench;
mod check;
mod client;
mod serve;
mod tx_cmd;
mod tx_print;

use clap::{Parser, Subcommand};

/// mimalloc: glibc's malloc spent ~16% of the CPU in the embedded benchmark (many small,
/// short-lived allocations freed on another thread); mimalloc's thread-local heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "Tandem: a distributed transaction coordinator (sagas, 2PC, TCC, messages)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the coordinator server (embedded store in --data-dir).
    Serve(serve::ServeArgs),
    /// Inspect transactions in a data directory (the coordinator using it must be stopped).
    Tx {
        #[command(subcommand)]
        cmd: tx_cmd::TxCmd,
    },
    /// Check a participant service against the failures it must survive.
    Check {
        #[command(subcommand)]
        cmd: check::CheckCmd,
    },
    /// Measure throughput and latency.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .global_queue_interval(16)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.cmd {
            Cmd::Serve(args) => serve::run(args).await,
            Cmd::Tx { cmd } => tx_cmd::run(cmd).await,
            Cmd::Bench { cmd } => bench::run(cmd).await,
            Cmd::Check { cmd } => check::run(cmd).await,
        }
    })
}
