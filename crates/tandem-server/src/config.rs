//! Server settings: defaults, then a TOML file, then `TANDEM_*` environment variables, then
//! command-line flags (each overriding the one before). Every limit has a default here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where DTM's gRPC API listens (`None`: not served). DTM's gRPC port by default.
    pub grpc_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    pub body_bytes_max: usize,
    /// Most branches one transaction may have.
    pub branches_max: usize,
    /// When set, branch URLs must name one of these hosts (`host` or `host:port`).
    pub allowed_hosts: Option<Vec<String>>,
    /// Per-call timeout when a transaction does not set `request_timeout`.
    pub request_timeout: Duration,
    /// Longest a `wait_result` request waits for the outcome before it is answered with
    /// where the transaction is (`/v1`: 202; DTM API: 425 ONGOING).
    pub wait_result_max: Duration,
    /// How long in-flight branch calls may run on after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Transactions held in memory at once; past it, submits get 503 (retry later).
    pub active_max: usize,
    /// The node name this server must have. A new data directory records it (with a random
    /// incarnation) as the coordinator's identity; a directory created under another name is
    /// refused. `None`: the stored name, or `tandem` for a new directory. Generated gids and
    /// XA xids are built from the stored identity.
    pub node_name: Option<String>,
    /// When set, every API (native, DTM-compatible, dashboard data) requires
    /// `Authorization: Bearer <token>`.
    pub auth_token: Option<Secret>,
    /// Leave `/metrics` open when a token is set.
    pub metrics_public: bool,
    /// Leave `/api/ping` open when a token is set.
    pub ping_public: bool,
    /// Park a transaction stuck in one status this long (`None`: never).
    pub stuck_after: Option<Duration>,
    /// POST a JSON alert here whenever a transaction is parked.
    pub alert_webhook_url: Option<String>,
    /// Attempts per alert (with backoff) before it is given up and counted as failed.
    pub alert_attempts_max: u32,
    /// Export spans here with OTLP/HTTP (JSON), e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Log lines as `text` or `json`.
    pub log_format: LogFormat,
}

/// One setting as people meet it: its TOML key, its environment variable, its default and
/// what it does. `tandem serve --help` prints this table and docs/operations.md repeats it
/// (a test keeps the two in step).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub what: &'static str,
}

/// Every setting of `tandem serve`.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "listen", env: "TANDEM_LISTEN", default: "127.0.0.1:36789", what: "address and port to serve on (flag --listen)" },
    Setting { key: "grpc_listen", env: "TANDEM_GRPC_LISTEN", default: "127.0.0.1:36790", what: "address of DTM's gRPC API (`dtmgimp.Dtm`, proto/dtmgimp.proto); empty turns it off (flag --grpc-listen)" },
    Setting { key: "data_dir", env: "TANDEM_DATA_DIR", default: "./tandem-data", what: "directory of the embedded store, created if missing; one server at a time (flag --data-dir)" },
    Setting { key: "body_bytes_max", env: "TANDEM_BODY_BYTES_MAX", default: "1048576", what: "largest request body in bytes; larger ones get 413 (flag --body-bytes-max)" },
    Setting { key: "branches_max", env: "TANDEM_BRANCHES_MAX", default: "256", what: "most branches of one transaction, as users count them: saga steps, 2PC participants, TCC branches, message deliveries" },
    Setting { key: "allowed_hosts", env: "TANDEM_ALLOWED_HOSTS", default: "unset (any host)", what: "branch URLs must name one of these hosts (`host` or `host:port`; comma-separated in the variable)" },
    Setting { key: "request_timeout_ms", env: "TANDEM_REQUEST_TIMEOUT_MS", default: "30000", what: "timeout of one branch call when the transaction sets none" },
    Setting { key: "wait_result_max_ms", env: "TANDEM_WAIT_RESULT_MAX_MS", default: "30000", what: "longest a `wait_result` request waits; then /v1 answers 202 with where the transaction is, the DTM API 425 ONGOING" },
    Setting { key: "shutdown_grace_ms", env: "TANDEM_SHUTDOWN_GRACE_MS", default: "10000", what: "on SIGTERM/SIGINT, how long requests and branch calls in flight may finish (in all, once)" },
    Setting { key: "active_max", env: "TANDEM_ACTIVE_MAX", default: "100000", what: "transactions held in memory at once; past it, new ones get 503 busy" },
    Setting { key: "node_name", env: "TANDEM_NODE_NAME", default: "unset (the name the data directory was created with; `tandem` for a new one)", what: "the node name this server must have: a new data directory records it, one created under another name is refused; generated gids and XA ids start with it" },
    Setting { key: "auth_token", env: "TANDEM_AUTH_TOKEN", default: "unset", what: "require `Authorization: Bearer <token>` on `/v1`, `/api/...` and `/metrics`; `tandem tx --server` sends it from the same variable" },
    Setting { key: "metrics_public", env: "TANDEM_METRICS_PUBLIC", default: "false", what: "leave `/metrics` open when a token is set" },
    Setting { key: "ping_public", env: "TANDEM_PING_PUBLIC", default: "false", what: "leave `/api/ping` open when a token is set" },
    Setting { key: "stuck_after_ms", env: "TANDEM_STUCK_AFTER_MS", default: "3600000", what: "park a transaction that stays in one status this long (`0`: never)" },
    Setting { key: "alert_webhook_url", env: "TANDEM_ALERT_WEBHOOK_URL", default: "unset", what: "POST a JSON alert here for every parked transaction" },
    Setting { key: "alert_attempts_max", env: "TANDEM_ALERT_ATTEMPTS_MAX", default: "5", what: "attempts per alert (backoff 1 s doubling to 30 s), then it is counted as failed" },
    Setting { key: "otlp_endpoint", env: "TANDEM_OTLP_ENDPOINT", default: "unset", what: "export spans with OTLP/HTTP JSON to `<endpoint>/v1/traces` (also `OTEL_EXPORTER_OTLP_ENDPOINT`)" },
    Setting { key: "service_name", env: "TANDEM_SERVICE_NAME", default: "tandem", what: "the spans' `service.name`" },
    Setting { key: "log_format", env: "TANDEM_LOG_FORMAT", default: "text", what: "`text` or `json` log lines on stderr (flag --log-json); text has colours only on a terminal; the level is `TANDEM_LOG` (e.g. `info`, `tandem_engine=debug`)" },
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("expected text or json, got {s:?}")),
        }
    }
}

/// A socket address, or nothing (written as an empty string): a listener that may be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OptionalAddr(pub Option<SocketAddr>);

impl std::str::FromStr for OptionalAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(OptionalAddr(None));
        }
        s.parse().map(|a| OptionalAddr(Some(a))).map_err(|e| {
            format!("{s:?} is not an address such as 127.0.0.1:36790 ({e}); empty turns it off")
        })
    }
}

impl TryFrom<String> for OptionalAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 36789)),
            grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 36790))),
            data_dir: PathBuf::from("./tandem-data"),
            body_bytes_max: 1 << 20,
            branches_max: 256,
            allowed_hosts: None,
            request_timeout: Duration::from_secs(30),
            wait_result_max: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            active_max: 100_000,
            node_name: None,
            auth_token: None,
            metrics_public: false,
            ping_public: false,
            stuck_after: Some(Duration::from_secs(3600)),
            alert_webhook_url: None,
            alert_attempts_max: 5,
            otlp_endpoint: None,
            service_name: "tandem".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// The same settings, every one optional: one layer (file, environment or flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub listen: Option<SocketAddr>,
    /// An address, or empty to turn the gRPC API off.
    pub grpc_listen: Option<OptionalAddr>,
    pub data_dir: Option<PathBuf>,
    pub body_bytes_max: Option<usize>,
    pub branches_max: Option<usize>,
    pub allowed_hosts: Option<Vec<String>>,
    pub request_timeout_ms: Option<u64>,
    pub wait_result_max_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub active_max: Option<usize>,
    pub node_name: Option<String>,
    pub auth_token: Option<Secret>,
    pub metrics_public: Option<bool>,
    pub ping_public: Option<bool>,
    /// 0 turns the stuck check off.
    pub stuck_after_ms: Option<u64>,
    pub alert_webhook_url: Option<String>,
    pub alert_attempts_max: Option<u32>,
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?}: {why}")]
    Env {
        name: String,
        value: String,
        why: String,
    },
}

impl ConfigLayer {
    pub fn from_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            source: Box::new(e),
        })
    }

    /// Reads the `TANDEM_*` variable of every setting in [`SETTINGS`]
    /// (`TANDEM_ALLOWED_HOSTS` comma-separated; `TANDEM_OTLP_ENDPOINT` or the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn from_env() -> Result<ConfigLayer, ConfigError> {
        fn get<T: std::str::FromStr>(name: &str) -> Result<Option<T>, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            match std::env::var(name) {
                Ok(v) => v.parse().map(Some).map_err(|e: T::Err| ConfigError::Env {
                    name: name.into(),
                    value: v,
                    why: e.to_string(),
                }),
                Err(_) => Ok(None),
            }
        }
        Ok(ConfigLayer {
            listen: get("TANDEM_LISTEN")?,
            grpc_listen: get("TANDEM_GRPC_LISTEN")?,
            data_dir: get("TANDEM_DATA_DIR")?,
            body_bytes_max: get("TANDEM_BODY_BYTES_MAX")?,
            branches_max: get("TANDEM_BRANCHES_MAX")?,
            allowed_hosts: std::env::var("TANDEM_ALLOWED_HOSTS").ok().map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .collect()
            }),
            request_timeout_ms: get("TANDEM_REQUEST_TIMEOUT_MS")?,
            wait_result_max_ms: get("TANDEM_WAIT_RESULT_MAX_MS")?,
            shutdown_grace_ms: get("TANDEM_SHUTDOWN_GRACE_MS")?,
            active_max: get("TANDEM_ACTIVE_MAX")?,
            node_name: get("TANDEM_NODE_NAME")?,
            auth_token: get::<Secret>("TANDEM_AUTH_TOKEN")?.filter(|t| !t.0.is_empty()),
            metrics_public: get("TANDEM_METRICS_PUBLIC")?,
            ping_public: get("TANDEM_PING_PUBLIC")?,
            stuck_after_ms: get("TANDEM_STUCK_AFTER_MS")?,
            alert_webhook_url: get("TANDEM_ALERT_WEBHOOK_URL")?,
            alert_attempts_max: get("TANDEM_ALERT_ATTEMPTS_MAX")?,
            otlp_endpoint: match get("TANDEM_OTLP_ENDPOINT")? {
                Some(v) => Some(v),
                None => get("OTEL_EXPORTER_OTLP_ENDPOINT")?,
            },
            service_name: get("TANDEM_SERVICE_NAME")?,
            log_format: get("TANDEM_LOG_FORMAT")?,
        })
    }
}

impl ServerConfig {
    /// Applies `layer` on top of `self` (set fields win).
    pub fn apply(mut self, layer: ConfigLayer) -> ServerConfig {
        if let Some(v) = layer.listen {
            self.listen = v;
        }
        if let Some(v) = layer.grpc_listen {
            self.grpc_listen = v.0;
        }
        if let Some(v) = layer.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = layer.body_bytes_max {
            self.body_bytes_max = v;
        }
        if let Some(v) = layer.branches_max {
            self.branches_max = v;
        }
        if let Some(v) = layer.allowed_hosts {
            self.allowed_hosts = Some(v);
        }
        if let Some(v) = layer.request_timeout_ms {
            self.request_timeout = Duration::from_millis(v);
        }
        if let Some(v) = layer.wait_result_max_ms {
            self.wait_result_max = Duration::from_millis(v);
        }
        if let Some(v) = layer.shutdown_grace_ms {
            self.shutdown_grace = Duration::from_millis(v);
        }
        if let Some(v) = layer.active_max {
            self.active_max = v;
        }
        if let Some(v) = layer.node_name {
            self.node_name = Some(v).filter(|n| !n.is_empty());
        }
        if let Some(v) = layer.auth_token {
            self.auth_token = Some(v).filter(|t| !t.0.is_empty());
        }
        if let Some(v) = layer.metrics_public {
            self.metrics_public = v;
        }
        if let Some(v) = layer.ping_public {
            self.ping_public = v;
        }
        if let Some(v) = layer.stuck_after_ms {
            self.stuck_after = (v > 0).then(|| Duration::from_millis(v));
        }
        if let Some(v) = layer.alert_webhook_url {
            self.alert_webhook_url = Some(v).filter(|u| !u.is_empty());
        }
        if let Some(v) = layer.alert_attempts_max {
            self.alert_attempts_max = v.clamp(1, 100);
        }
        if let Some(v) = layer.otlp_endpoint {
            self.otlp_endpoint = Some(v).filter(|u| !u.is_empty());
        }
        if let Some(v) = layer.service_name {
            self.service_name = v;
        }
        if let Some(v) = layer.log_format {
            self.log_format = v;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags override the environment, which overrides the file; unset fields keep the
    /// layer below.
    #[test]
    fn layers_override_in_order() {
        let file: ConfigLayer = toml::from_str(
            "listen = \"127.0.0.1:1000\"\nbody_bytes_max = 10\nallowed_hosts = [\"svc\"]\nnode_name = \"file\"",
        )
        .expect("toml");
        let env = ConfigLayer {
            body_bytes_max: Some(20),
            node_name: Some("env".into()),
            ..Default::default()
        };
        let flags = ConfigLayer {
            node_name: Some("flag".into()),
            ..Default::default()
        };
        let cfg = ServerConfig::default().apply(file).apply(env).apply(flags);
        assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 1000)));
        assert_eq!(cfg.body_bytes_max, 20);
        assert_eq!(cfg.node_name.as_deref(), Some("flag"));
        assert_eq!(cfg.allowed_hosts, Some(vec!["svc".to_string()]));
        assert_eq!(cfg.data_dir, PathBuf::from("./tandem-data"));
        assert_eq!(
            cfg.grpc_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 36790))),
            "DTM's gRPC port by default"
        );
        let off: ConfigLayer = toml::from_str("grpc_listen = \"\"").expect("toml");
        assert_eq!(ServerConfig::default().apply(off).grpc_listen, None);
        assert!(toml::from_str::<ConfigLayer>("grpc_listen = \"nope\"").is_err());
        assert!(
            toml::from_str::<ConfigLayer>("lisen = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }

    /// Every key of the settings table is a key the TOML file accepts, and every key the
    /// file accepts is in the table (so `serve --help` and the docs list them all).
    #[test]
    fn settings_table_is_complete() {
        for s in SETTINGS {
            let value = match s.key {
                "listen" | "grpc_listen" => "\"127.0.0.1:1\"".to_string(),
                "data_dir" | "node_name" | "auth_token" | "alert_webhook_url" | "otlp_endpoint"
                | "service_name" => "\"x\"".into(),
                "allowed_hosts" => "[\"x\"]".into(),
                "metrics_public" | "ping_public" => "true".into(),
                "log_format" => "\"json\"".into(),
                _ => "1".into(),
            };
            let text = format!("{} = {value}", s.key);
            toml::from_str::<ConfigLayer>(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.env, format!("TANDEM_{}", s.key.to_uppercase()));
        }
        // The defaults the table states are the code's defaults.
        let stated: String = SETTINGS
            .iter()
            .filter(|s| !s.default.starts_with("unset"))
            .map(|s| {
                let raw = s.default.parse::<f64>().is_ok() || s.default.parse::<bool>().is_ok();
                match raw {
                    true => format!("{} = {}\n", s.key, s.default),
                    false => format!("{} = {:?}\n", s.key, s.default),
                }
            })
            .collect();
        let layer: ConfigLayer = toml::from_str(&stated).expect("the stated defaults parse");
        assert_eq!(
            format!("{:?}", ServerConfig::default().apply(layer)),
            format!("{:?}", ServerConfig::default()),
            "a default in SETTINGS differs from ServerConfig::default()"
        );
        let debug = format!("{:?}", ConfigLayer::default());
        let fields = debug.matches(": None").count();
        assert_eq!(
            fields,
            SETTINGS.len(),
            "a ConfigLayer field is missing from SETTINGS"
        );
    }
}
