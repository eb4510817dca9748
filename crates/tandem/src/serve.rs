//! `tandem serve`: settings from the config file, then `TANDEM_*` environment variables,
//! then flags; runs until SIGTERM or SIGINT, then shuts down gracefully.
//!
//! Logs go to stderr: text (with colours only when stderr is a terminal, so a log file holds
//! plain text) or JSON lines.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use tandem_server::config::{LogFormat, SETTINGS};
use tandem_server::{ConfigLayer, ServerConfig};

/// `serve --help`'s table of every setting, its variable and default (from
/// [`tandem_server::config::SETTINGS`], as docs/operations.md lists them).
fn settings_help() -> String {
    let mut out = String::from(
        "Settings: each comes from the TOML file (--config FILE, key as below), then its \
         TANDEM_* environment variable, then a flag where there is one; each overrides the \
         one before.\n\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "  {:<20} {:<27} [default: {}]\n      {}\n",
            s.key, s.env, s.default, s.what
        ));
    }
    out.push_str("\nTANDEM_LOG sets the log level (e.g. info, tandem_engine=debug).");
    out
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = settings_help(), after_help = "Every setting, its TANDEM_* variable and default: tandem serve --help")]
pub struct ServeArgs {
    /// Address to listen on (TANDEM_LISTEN) [default: 127.0.0.1:36789].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of DTM's gRPC API; empty turns it off (TANDEM_GRPC_LISTEN)
    /// [default: 127.0.0.1:36790].
    #[arg(long)]
    grpc_listen: Option<tandem_server::config::OptionalAddr>,
    /// Directory of the embedded store, created if missing (TANDEM_DATA_DIR)
    /// [default: ./tandem-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML file with any of the settings listed below.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Largest request body, in bytes (TANDEM_BODY_BYTES_MAX) [default: 1048576].
    #[arg(long)]
    body_bytes_max: Option<usize>,
    /// Log as JSON lines instead of text (also `log_format = "json"`, TANDEM_LOG_FORMAT).
    #[arg(long)]
    log_json: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = ServerConfig::default();
    if let Some(path) = &args.config {
        cfg = cfg.apply(ConfigLayer::from_file(path)?);
    }
    cfg = cfg.apply(ConfigLayer::from_env()?);
    cfg = cfg.apply(ConfigLayer {
        listen: args.listen,
        grpc_listen: args.grpc_listen,
        data_dir: args.data_dir,
        body_bytes_max: args.body_bytes_max,
        log_format: args.log_json.then_some(LogFormat::Json),
        ..ConfigLayer::default()
    });
    // The token is a `Secret`: logging the config never shows it.
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| "info".into());
    let sub = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    if cfg.log_format == LogFormat::Json {
        sub.json().init();
    } else {
        sub.init();
    }
    tracing::info!(
        auth = cfg.auth_token.is_some(),
        grpc = %cfg.grpc_listen.map_or("off".to_string(), |a| a.to_string()),
        otlp = cfg.otlp_endpoint.as_deref().unwrap_or("off"),
        alerts = cfg.alert_webhook_url.is_some(),
        "settings loaded"
    );
    // Other start-up errors name the address or directory and the setting themselves.
    match tandem_server::serve(cfg, shutdown_signal()).await {
        // Fail-stop: the log failed; exit at once (no graceful flush of a failed log) with a
        // code of its own, so the supervisor restarts the server and the restart recovers.
        Err(tandem_server::anyhow_like::Error::Failed(why)) => {
            eprintln!("tandem: the log failed ({why}); exiting so a restart recovers from it");
            std::process::exit(EXIT_LOG_FAILED);
        }
        r => r?,
    }
    Ok(())
}

/// The exit code after the log failed (fail-stop).
pub const EXIT_LOG_FAILED: i32 = 3;

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
