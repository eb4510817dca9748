//! # tandem-server: the coordinator as an HTTP service
//!
//! `tandem serve` runs this: one [`tandem_engine::Coordinator`] on the embedded store, with
//! HTTP and gRPC branch calls ([`http_transport`], [`grpc::transport`]), behind three APIs:
//! - [`v1`]: the native JSON API, described by the OpenAPI document at `/v1/openapi.json`;
//! - [`dtm`]: DTM's HTTP protocol under `/api/dtmsvr` (and `/api/ping`), so existing DTM
//!   clients work unchanged;
//! - [`grpc::api`]: DTM's gRPC API (`dtmgimp.Dtm`) on its own port (`grpc_listen`).
//!
//! Every request body is bounded (`body_bytes_max`); a client's mistake gets a 4xx with a
//! JSON body naming the problem, never a 500; shutdown (SIGTERM/SIGINT) stops accepting,
//! lets in-flight work finish up to a deadline, then flushes and closes the log.

pub mod alerts;
pub mod auth;
pub mod body_limit;
pub mod branches;
pub mod config;
pub mod dashboard;
pub mod dtm;
pub mod error;
pub mod grpc;
pub mod health;
pub mod http_transport;
pub mod metrics;
pub mod net_error;
pub mod otlp;
pub mod target;
pub mod topics;
pub mod trace;
pub mod v1;
pub mod validate;
pub mod workflow;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tandem_engine::{Coordinator, EngineConfig};
use tandem_store::redb_store::RedbConfig;

pub use config::{ConfigLayer, ServerConfig};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub coord: Coordinator,
    pub cfg: Arc<ServerConfig>,
}

/// Opens the coordinator (recovering the log) for `cfg`.
pub async fn open_coordinator(
    cfg: &ServerConfig,
) -> Result<Coordinator, tandem_engine::EngineError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| tandem_engine::EngineError::Store(e.into()))?;
    let mut transport = http_transport::HttpTransport::new();
    let dtm = cfg.grpc_listen.map(|a| a.to_string()).unwrap_or_default();
    let mut grpc = grpc::transport::GrpcTransport::new(dtm);
    let mut builder = Coordinator::builder();
    if let Some(endpoint) = &cfg.otlp_endpoint {
        let spans = otlp::Exporter::spawn(endpoint, &cfg.service_name);
        transport = transport.with_spans(spans.clone());
        grpc = grpc.with_spans(spans.clone());
        builder = builder.on_end(Arc::new(move |tx| spans.export(tx_span(tx))));
        tracing::info!(%endpoint, "exporting spans over OTLP/HTTP");
    }
    builder
        .config(EngineConfig {
            active_max: cfg.active_max,
            request_timeout: cfg.request_timeout,
            node_name: cfg.node_name.clone(),
            stuck_after: cfg.stuck_after,
            limits: tandem_core::Limits {
                branches_max: cfg.branches_max,
                ..tandem_core::Limits::default()
            },
            ..EngineConfig::default()
        })
        .redb_config(RedbConfig::default())
        .transport(Arc::new(branches::Branches {
            http: transport,
            grpc,
        }))
        .open(&cfg.data_dir)
        .await
}

/// The exported span of a transaction that ended: from its creation to its end, a child of
/// the request that created it when that request carried a `traceparent`.
fn tx_span(tx: &tandem_core::Transaction) -> otlp::Span {
    use serde_json::json;
    let headers = &tx.options.branch_headers;
    let ms = |t: tandem_core::Timestamp| t.0.saturating_mul(1_000_000);
    otlp::Span {
        trace_id: trace::trace_id(&tx.gid, headers),
        span_id: trace::tx_span_id(&tx.gid),
        parent: trace::submitted(headers).map(|tp| tp.span_id),
        name: format!("{} {}", tx.kind.as_str(), tx.gid),
        kind: otlp::KIND_INTERNAL,
        start_ns: ms(tx.created_at),
        end_ns: tx.finished_at.map_or_else(otlp::now_ns, ms),
        attrs: vec![
            ("tandem.gid", json!(tx.gid)),
            ("tandem.type", json!(tx.kind.as_str())),
            ("tandem.status", json!(tx.status.as_str())),
            ("tandem.branches", json!(tx.branches.len())),
        ],
        error: tx.fail_reason.clone(),
    }
}

/// Every route: `/v1`, `/api/dtmsvr`, `/api/ping`, `/metrics`, `/health/*`, the dashboard at `/`; the
/// body limit, trace-context capture and (when configured) the bearer-token check.
pub fn router(state: AppState) -> Router {
    let limit = state.cfg.body_bytes_max;
    Router::new()
        .merge(v1::routes())
        .merge(dtm::routes())
        .merge(dashboard::routes())
        .merge(health::routes())
        .route("/metrics", axum::routing::get(metrics::handler))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_limit::explain,
        ))
        .layer(axum::middleware::from_fn(trace::capture))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains: stop accepting, let in-flight requests and
/// branch calls run up to `shutdown_grace`, flush and close the log.
pub async fn serve(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow_like::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow_like::Error::listen(cfg.listen, e))?;
    let grpc = match cfg.grpc_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow_like::Error::grpc_listen(addr, e))?,
        ),
        None => None,
    };
    serve_with(listener, grpc, cfg, shutdown).await
}

/// As [`serve`], on a listener the caller bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow_like::Result<()> {
    serve_with(listener, None, cfg, shutdown).await
}

/// As [`serve`], on listeners the caller bound: HTTP on `listener`, DTM's gRPC API on
/// `grpc` if given.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    grpc: Option<tokio::net::TcpListener>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow_like::Result<()> {
    let coord = open_coordinator(&cfg)
        .await
        .map_err(|e| anyhow_like::Error::data_dir(&cfg.data_dir, e))?;
    if let Some(url) = &cfg.alert_webhook_url {
        alerts::spawn(
            &coord,
            url.clone(),
            cfg.alert_attempts_max,
            coord.identity().node.clone(),
        );
    }
    let grace = cfg.shutdown_grace;
    let addr = listener.local_addr()?;
    let data_dir = std::fs::canonicalize(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
    let state = AppState {
        coord: coord.clone(),
        cfg: Arc::new(cfg),
    };
    let app = router(state.clone());
    tracing::info!(
        listen = %addr,
        data_dir = %data_dir.display(),
        "tandem serving; dashboard at http://{addr}/"
    );
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    // The gRPC API stops accepting when HTTP does (the same signal, fanned out).
    let (grpc_stop_tx, grpc_stop) = tokio::sync::watch::channel(false);
    let grpc_task = match grpc {
        Some(l) => {
            tracing::info!(addr = %l.local_addr()?, "DTM's gRPC API listening");
            let mut stop = grpc_stop.clone();
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(grpc::api::serve(l, state, signal)))
        }
        None => None,
    };
    // No Nagle on accepted connections: an answer must not wait for the client's delayed
    // ACK of the previous one on a keep-alive connection.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = grpc_stop_tx.send(true);
        let _ = stopped_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    // Once shutdown starts, requests and branch calls in flight share one grace period:
    // the requests' drain and the engine's drain end by the same deadline. If the log fails
    // first, the coordinator has stopped acting (fail-stop): stop serving at once and report
    // it, so the process exits and its supervisor restarts it from the log.
    tokio::select! {
        _ = stopped_rx => {}
        why = coord.failed() => {
            tracing::error!(reason = %why, "the log failed: not ready, exiting so a restart recovers from the log");
            server.abort();
            return Err(anyhow_like::Error::Failed(why));
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining requests and branch calls"
    );
    // The engine starts draining at once too, so a request waiting for a transaction is
    // not what keeps the server up past the deadline.
    let closing = {
        let coord = coord.clone();
        tokio::spawn(async move { coord.close_within(grace).await })
    };
    match tokio::time::timeout_at(deadline, server).await {
        Ok(r) => r.map_err(|e| std::io::Error::other(e.to_string()))??,
        Err(_) => tracing::warn!("requests still running after the grace period; stopping anyway"),
    }
    if let Some(task) = grpc_task {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the gRPC server failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("gRPC requests still running after the grace period"),
        }
    }
    closing
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    tracing::info!("log flushed and closed");
    Ok(())
}

/// The server's own error for start-up and shutdown (not request errors: see [`error`]).
/// Start-up errors name the thing (the address, the directory), the reason, and the
/// setting that changes it.
pub mod anyhow_like {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};

    use tandem_engine::EngineError;
    use tandem_store::StoreError;

    pub type Result<T> = std::result::Result<T, Error>;

    #[derive(Debug, thiserror::Error)]
    pub enum Error {
        #[error("cannot listen on {addr}: {reason}")]
        Listen { addr: SocketAddr, reason: String },
        #[error("cannot use the data directory {}: {reason}", path.display())]
        DataDir { path: PathBuf, reason: String },
        #[error("I/O: {0}")]
        Io(#[from] std::io::Error),
        #[error(transparent)]
        Engine(#[from] EngineError),
        /// The log failed while serving (fail-stop); restart to recover from it.
        #[error("the log failed ({0}); restart to recover from the log")]
        Failed(String),
    }

    /// `permission denied`, `not a directory`, ...: the kind in words, else the error.
    pub fn io_reason(e: &std::io::Error) -> String {
        let kind = e.kind().to_string();
        match kind.as_str() {
            "other error" | "uncategorized error" => e.to_string(),
            _ => kind,
        }
    }

    impl Error {
        pub fn listen(addr: SocketAddr, e: std::io::Error) -> Error {
            let setting = "choose another address with --listen, TANDEM_LISTEN or `listen` in the config file";
            Error::listen_as(addr, e, setting)
        }

        /// DTM's gRPC API could not listen.
        pub fn grpc_listen(addr: SocketAddr, e: std::io::Error) -> Error {
            let setting = "choose another address with --grpc-listen, TANDEM_GRPC_LISTEN or \
                 `grpc_listen` in the config file (empty turns the gRPC API off)";
            Error::listen_as(addr, e, setting)
        }

        fn listen_as(addr: SocketAddr, e: std::io::Error, setting: &str) -> Error {
            let reason = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "port {} is already in use by another process; stop it, or {setting}",
                    addr.port()
                ),
                std::io::ErrorKind::PermissionDenied => {
                    format!("permission denied (ports below 1024 need privileges); {setting}")
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    format!("{} is not an address of this machine; {setting}", addr.ip())
                }
                _ => format!("{}; {setting}", io_reason(&e)),
            };
            Error::Listen { addr, reason }
        }

        pub fn data_dir(path: &Path, e: EngineError) -> Error {
            let setting =
                "choose another with --data-dir, TANDEM_DATA_DIR or `data_dir` in the config file";
            let reason = match e {
                EngineError::Store(StoreError::InUse(_)) => format!(
                    "it is in use by another tandem process (one server per data directory); \
                     stop that one, or {setting}"
                ),
                EngineError::Store(StoreError::Io(io)) => format!("{}; {setting}", io_reason(&io)),
                // Anything else the store says about the directory (e.g. a corrupt log).
                EngineError::Store(other) => other.to_string(),
                other => return Error::Engine(other),
            };
            Error::DataDir {
                path: path.to_path_buf(),
                reason,
            }
        }
    }
}
