//! `tandem check participant`: attacks a participant service the way real failures do —
//! duplicate and concurrent deliveries, lost answers, compensations before their action
//! and the late action after them, repeated compensations and second phases, a business
//! failure followed by its compensation, a slow call retried while it still runs — on
//! fresh gids, and compares the effect read back for each gid with the effect it must
//! have. See [`spec`] for the spec file and [`schedules`] for what is checked.
//!
//! Exit status: 0 the participant conforms, 1 at least one violation, 2 the check could
//! not run (bad spec, participant or read-back unreachable, no visible effect).

mod caller;
mod readback;
mod report;
pub mod schedules;
pub mod spec;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use schedules::{Run, Verdict};

#[derive(Subcommand)]
pub enum CheckCmd {
    /// Check that a participant service is safe to retry: run the failure schedules of its
    /// protocol against it and compare the effects (exit 0 conforms, 1 violations, 2 could
    /// not check).
    Participant(ParticipantArgs),
}

#[derive(Args)]
pub struct ParticipantArgs {
    /// The spec (TOML): protocol, endpoints, payload, how to read the effect back.
    #[arg(long)]
    spec: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the check; exits the process with 1 on violations and 2 when it could not check.
pub async fn run(cmd: CheckCmd) -> anyhow::Result<()> {
    let CheckCmd::Participant(args) = cmd;
    match participant(&args).await {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("tandem check participant: could not check: {e:#}");
            std::process::exit(2)
        }
    }
}

/// True when the participant conforms.
async fn participant(args: &ParticipantArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let spec = Arc::new(spec::load(&args.spec)?);
    let reader =
        readback::Reader::open(&spec.read_back, Duration::from_millis(spec.timeout_ms)).await?;
    let effect_by = reader.describe();
    let run = Run::new(spec.clone(), reader);
    if !args.json {
        println!("{}", report::header(&spec, effect_by));
    }
    let base = run.baseline().await?;
    if !args.json {
        println!("{}", report::baseline(&spec, &base));
    }
    let mut outcomes = Vec::new();
    for kind in run.kinds() {
        let o = run.run(kind, &base).await;
        if !args.json {
            println!("{}", report::line(&o));
        }
        outcomes.push(o);
    }
    let ms = started.elapsed().as_millis() as u64;
    if args.json {
        let doc = report::json(&spec, run.reader().describe(), &base, &outcomes, ms);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        eprintln!("{}", report::totals(&outcomes));
    } else {
        println!();
        print!("{}", report::table(&outcomes));
        println!("({ms} ms)");
        println!("{}", report::totals(&outcomes));
    }
    Ok(!outcomes
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Violation { .. })))
}
