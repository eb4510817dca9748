//! `tandem`: the command line. Run the server (`serve`), inspect and operate on transactions
//! (`tx list|show` on a data directory or `--server`, `tx retry|stop --server`), check a
//! participant service (`check participant`) and measure the coordinator (`bench ...`).
//!
//! Exit codes: 0 success; 2 a usage error (clap's: unknown flag, missing argument); 1 any
//! other failure. `check participant` answers like `grep` and `diff`: 0 the participant
//! conforms, 1 violations found, 2 it could not check (bad spec, nothing reachable). A failure prints `error: ...` and its causes, each once, and never a
//! stack backtrace (whatever `RUST_BACKTRACE` says): it is a message for the user, not a
//! crash report.

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
    about = "Tandem: a distributed transaction coordinator (sagas, 2PC, TCC, messages)",
    after_help = "Start with `tandem serve`, then see `tandem tx --help`. Docs: README.md."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the coordinator server: the /v1 API, the DTM-compatible API, the dashboard.
    Serve(serve::ServeArgs),
    /// Inspect and operate on transactions: of a running server (--server URL), or in a
    /// data directory no server is using (--data-dir).
    #[command(long_about = tx_cmd::LONG_ABOUT)]
    Tx {
        #[command(subcommand)]
        cmd: tx_cmd::TxCmd,
    },
    /// Check that a participant service is safe to retry (duplicates, lost answers, late
    /// and out-of-order calls).
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .global_queue_interval(16)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                match cli.cmd {
                    Cmd::Serve(args) => serve::run(args).await,
                    Cmd::Tx { cmd } => tx_cmd::run(cmd).await,
                    Cmd::Bench { cmd } => bench::run(cmd).await,
                    Cmd::Check { cmd } => check::run(cmd).await,
                }
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error: <what>` and then each cause on its own line, skipping a cause whose text the
/// line above already contains (so nothing is said twice). No backtrace.
fn report(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}");
    let mut above = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if above.contains(&text) {
            continue;
        }
        out.push_str(&format!("\n  because: {text}"));
        above = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_said_once() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(inner).context("writing the log: disk on fire");
        assert_eq!(report(&e), "error: writing the log: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("denied")).context("opening x");
        assert_eq!(report(&e), "error: opening x\n  because: denied");
    }

    /// Every flag and argument of every command says what it is for in `--help`.
    #[test]
    fn every_argument_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tandem", &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:#?}");
        Cli::command().debug_assert();
    }
}
