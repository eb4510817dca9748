//! Server settings: defaults, then a TOML file, then `TANDEM_*` environment variables, then
//! command-line flags (each overriding the one before). Every limit has a default here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    pub body_bytes_max: usize,
    /// Most branches one transaction may have.
    pub branches_max: usize,
    /// When set, branch URLs must name one of these hosts (`host` or `host:port`).
    pub allowed_hosts: Option<Vec<String>>,
    /// Per-call timeout when a transaction does not set `request_timeout`.
    pub request_timeout: Duration,
    /// How long in-flight branch calls may run on after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Transactions held in memory at once; past it, submits get 503 (retry later).
    pub active_max: usize,
    /// Prefix of every gid this server generates (`newGid`).
    pub node_name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 36789)),
            data_dir: PathBuf::from("./tandem-data"),
            body_bytes_max: 1 << 20,
            branches_max: 256,
            allowed_hosts: None,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            active_max: 100_000,
            node_name: "tandem".into(),
        }
    }
}

/// The same settings, every one optional: one layer (file, environment or flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub body_bytes_max: Option<usize>,
    pub branches_max: Option<usize>,
    pub allowed_hosts: Option<Vec<String>>,
    pub request_timeout_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub active_max: Option<usize>,
    pub node_name: Option<String>,
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

    /// Reads `TANDEM_LISTEN`, `TANDEM_DATA_DIR`, `TANDEM_BODY_BYTES_MAX`, `TANDEM_BRANCHES_MAX`,
    /// `TANDEM_ALLOWED_HOSTS` (comma-separated), `TANDEM_REQUEST_TIMEOUT_MS`,
    /// `TANDEM_SHUTDOWN_GRACE_MS`, `TANDEM_ACTIVE_MAX`, `TANDEM_NODE_NAME`.
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
            shutdown_grace_ms: get("TANDEM_SHUTDOWN_GRACE_MS")?,
            active_max: get("TANDEM_ACTIVE_MAX")?,
            node_name: get("TANDEM_NODE_NAME")?,
        })
    }
}

impl ServerConfig {
    /// Applies `layer` on top of `self` (set fields win).
    pub fn apply(mut self, layer: ConfigLayer) -> ServerConfig {
        if let Some(v) = layer.listen {
            self.listen = v;
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
        if let Some(v) = layer.shutdown_grace_ms {
            self.shutdown_grace = Duration::from_millis(v);
        }
        if let Some(v) = layer.active_max {
            self.active_max = v;
        }
        if let Some(v) = layer.node_name {
            self.node_name = v;
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
        assert_eq!(cfg.node_name, "flag");
        assert_eq!(cfg.allowed_hosts, Some(vec!["svc".to_string()]));
        assert_eq!(cfg.data_dir, PathBuf::from("./tandem-data"));
        assert!(
            toml::from_str::<ConfigLayer>("lisen = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }
}
