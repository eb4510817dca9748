//! `tandem serve`: settings from the config file, then `TANDEM_*` environment variables,
//! then flags; runs until SIGTERM or SIGINT, then shuts down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tandem_server::config::LogFormat;
use tandem_server::{ConfigLayer, ServerConfig};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:36789].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of DTM's gRPC API; empty turns it off [default: 127.0.0.1:36790].
    #[arg(long)]
    grpc_listen: Option<tandem_server::config::OptionalAddr>,
    /// Directory of the embedded store [default: ./tandem-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML file with any of the settings (see README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Largest request body, in bytes [default: 1048576].
    #[arg(long)]
    body_bytes_max: Option<usize>,
    /// Log as JSON lines instead of text (also `log_format = "json"`, `TANDEM_LOG_FORMAT`).
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
    let listen = cfg.listen;
    match tandem_server::serve(cfg, shutdown_signal()).await {
        // Fail-stop: the log failed; exit at once (no graceful flush of a failed log) with a
        // code of its own, so the supervisor restarts the server and the restart recovers.
        Err(tandem_server::anyhow_like::Error::Failed(why)) => {
            eprintln!("tandem: the log failed ({why}); exiting so a restart recovers from it");
            std::process::exit(EXIT_LOG_FAILED);
        }
        r => r.with_context(|| format!("serving on {listen}"))?,
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
