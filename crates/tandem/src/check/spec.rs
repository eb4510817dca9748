//! The spec of `tandem check participant`: which participant, which protocol, what to send,
//! and how to read the effect of one gid back. TOML, validated up front so a typo is an
//! error naming the field, not a misleading report.
//!
//! ```toml
//! protocol = "saga"              # saga | tcc | 2pc | msg
//! transport = "http"             # http (gRPC once the server speaks it)
//! timeout_ms = 5000              # per call
//!
//! [endpoints]                    # saga: action, compensate   tcc: try, confirm, cancel
//! action = "http://127.0.0.1:8081/saga/debit"      # 2pc: prepare, commit, rollback
//! compensate = "http://127.0.0.1:8081/saga/undo-debit"    # msg: action
//!
//! [payload]                      # JSON bodies; "{gid}" inside a string becomes the call's gid
//! template = { account = 0, amount = 10 }
//! failing = { account = 0, amount = 10, fail = true }    # optional: the first phase answers 409
//! slow = { account = 0, amount = 10, delay_ms = 500 }    # optional: a call that outlasts
//! slow_timeout_ms = 150                                  #   this, then is retried
//!
//! [effect]                       # the effect of ONE gid; either an HTTP GET answering JSON
//! http = "http://127.0.0.1:8081/admin/effect?gid={gid}"
//! # or SQL on postgres://, mysql:// or sqlite:// with the gid as its one parameter
//! # sql = "postgres://postgres@127.0.0.1:5432/bank"
//! # query = "SELECT sum(delta) AS balance FROM ledger WHERE gid = $1"   (MySQL, SQLite: ?)
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;
use tandem_core::{Op, TxKind};

/// Longest per-call timeout a spec may set.
const TIMEOUT_MS_MAX: u64 = 120_000;

/// The protocol a participant speaks, with its ops in the three roles the schedules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Saga,
    Tcc,
    TwoPc,
    Msg,
}

/// The role of an op in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// action, try, prepare.
    First,
    /// confirm, commit (TCC and 2PC only).
    Second,
    /// compensate, cancel, rollback (not msg).
    Undo,
}

impl Protocol {
    fn parse(s: &str) -> anyhow::Result<Protocol> {
        Ok(match s {
            "saga" => Protocol::Saga,
            "tcc" => Protocol::Tcc,
            "2pc" | "xa" => Protocol::TwoPc,
            "msg" => Protocol::Msg,
            other => bail!("protocol {other:?}: expected saga, tcc, 2pc or msg"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Saga => "saga",
            Protocol::Tcc => "tcc",
            Protocol::TwoPc => "2pc",
            Protocol::Msg => "msg",
        }
    }

    /// The transaction kind the coordinator calls this protocol's branches as.
    pub fn kind(self) -> TxKind {
        match self {
            Protocol::Saga => TxKind::Saga,
            Protocol::Tcc => TxKind::Tcc,
            Protocol::TwoPc => TxKind::TwoPc,
            Protocol::Msg => TxKind::Msg,
        }
    }

    /// The op playing `role`, if the protocol has one.
    pub fn op(self, role: Role) -> Option<Op> {
        Some(match (self, role) {
            (Protocol::Saga, Role::First) => Op::Action,
            (Protocol::Saga, Role::Undo) => Op::Compensate,
            (Protocol::Tcc, Role::First) => Op::Try,
            (Protocol::Tcc, Role::Second) => Op::Confirm,
            (Protocol::Tcc, Role::Undo) => Op::Cancel,
            (Protocol::TwoPc, Role::First) => Op::Prepare,
            (Protocol::TwoPc, Role::Second) => Op::Commit,
            (Protocol::TwoPc, Role::Undo) => Op::Rollback,
            (Protocol::Msg, Role::First) => Op::Msg,
            _ => return None,
        })
    }

    /// The endpoint names the spec must give, in role order.
    fn endpoint_names(self) -> &'static [(&'static str, Role)] {
        match self {
            Protocol::Saga => &[("action", Role::First), ("compensate", Role::Undo)],
            Protocol::Tcc => &[
                ("try", Role::First),
                ("confirm", Role::Second),
                ("cancel", Role::Undo),
            ],
            Protocol::TwoPc => &[
                ("prepare", Role::First),
                ("commit", Role::Second),
                ("rollback", Role::Undo),
            ],
            Protocol::Msg => &[("action", Role::First)],
        }
    }

    /// The op's name as the spec and the report say it.
    pub fn op_name(self, role: Role) -> &'static str {
        self.endpoint_names()
            .iter()
            .find(|(_, r)| *r == role)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// How the effect of one gid is read back.
#[derive(Debug, Clone)]
pub enum ReadBack {
    /// GET this URL (`{gid}` replaced); the JSON answer is the effect.
    Http(String),
    /// Run `query` (one parameter: the gid) on the database at `url`.
    Sql { url: String, query: String },
}

/// A validated spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub protocol: Protocol,
    pub timeout_ms: u64,
    pub endpoints: BTreeMap<&'static str, String>,
    pub template: Value,
    pub failing: Option<Value>,
    pub slow: Option<Value>,
    pub slow_timeout_ms: u64,
    pub read_back: ReadBack,
}

impl Spec {
    /// The URL of the op in `role`.
    pub fn endpoint(&self, role: Role) -> &str {
        self.endpoints
            .get(self.protocol.op_name(role))
            .map(String::as_str)
            .unwrap_or("")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    protocol: String,
    #[serde(default = "http")]
    transport: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    endpoints: BTreeMap<String, String>,
    #[serde(default)]
    payload: RawPayload,
    effect: RawEffect,
}

fn http() -> String {
    "http".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    template: Option<toml::Value>,
    failing: Option<toml::Value>,
    slow: Option<toml::Value>,
    slow_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEffect {
    http: Option<String>,
    sql: Option<String>,
    query: Option<String>,
}

/// Reads and validates the spec at `path`.
pub fn load(path: &Path) -> anyhow::Result<Spec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the spec {}", path.display()))?;
    parse(&text).with_context(|| format!("spec {}", path.display()))
}

/// Parses and validates a spec.
pub fn parse(text: &str) -> anyhow::Result<Spec> {
    let raw: RawSpec = toml::from_str(text)?;
    let protocol = Protocol::parse(&raw.protocol)?;
    match raw.transport.as_str() {
        "http" => {}
        "grpc" => bail!(
            "transport \"grpc\": the coordinator does not call branches over gRPC yet, so \
             neither does the check; use \"http\""
        ),
        other => bail!("transport {other:?}: expected \"http\""),
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(5_000);
    if !(1..=TIMEOUT_MS_MAX).contains(&timeout_ms) {
        bail!("timeout_ms {timeout_ms}: must be 1..={TIMEOUT_MS_MAX}");
    }
    let mut endpoints = BTreeMap::new();
    for (name, _) in protocol.endpoint_names() {
        let url = raw.endpoints.get(*name).with_context(|| {
            format!(
                "[endpoints] needs {name:?} for protocol {:?} (it needs {})",
                protocol.name(),
                protocol
                    .endpoint_names()
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if !url.starts_with("http://") {
            bail!("[endpoints] {name} = {url:?}: give an http:// URL");
        }
        endpoints.insert(*name, url.clone());
    }
    if let Some(extra) = raw
        .endpoints
        .keys()
        .find(|k| !endpoints.contains_key(k.as_str()))
    {
        bail!(
            "[endpoints] {extra:?} is not an op of protocol {:?}",
            protocol.name()
        );
    }
    let json = |v: Option<toml::Value>| -> anyhow::Result<Option<Value>> {
        v.map(|v| serde_json::to_value(v).context("payload is not JSON"))
            .transpose()
    };
    let template = json(raw.payload.template)?.unwrap_or(Value::Null);
    let read_back = match (raw.effect.http, raw.effect.sql, raw.effect.query) {
        (Some(url), None, None) => {
            if !url.starts_with("http://") {
                bail!("[effect] http = {url:?}: give an http:// URL");
            }
            ReadBack::Http(url)
        }
        (None, Some(url), Some(query)) => ReadBack::Sql { url, query },
        (None, Some(_), None) => bail!("[effect] sql needs a query (its one parameter: the gid)"),
        _ => bail!("[effect] gives either http = URL, or sql = URL with query = SQL"),
    };
    Ok(Spec {
        protocol,
        timeout_ms,
        endpoints,
        template,
        failing: json(raw.payload.failing)?,
        slow: json(raw.payload.slow)?,
        slow_timeout_ms: raw.payload.slow_timeout_ms.unwrap_or(100).min(timeout_ms),
        read_back,
    })
}

/// `payload` with every `{gid}` inside its strings replaced by `gid`.
pub fn fill(payload: &Value, gid: &str) -> Value {
    match payload {
        Value::String(s) => Value::String(s.replace("{gid}", gid)),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, gid)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), fill(v, gid))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
protocol = "tcc"
[endpoints]
try = "http://h:1/try"
confirm = "http://h:1/confirm"
cancel = "http://h:1/cancel"
[payload]
template = { account = "{gid}", amount = 10 }
[effect]
sql = "sqlite:///tmp/x.db"
query = "SELECT 1 WHERE ?1 = ?1"
"#;

    #[test]
    fn a_valid_spec_and_its_mistakes() {
        let s = parse(OK).unwrap();
        assert_eq!(s.protocol, Protocol::Tcc);
        assert_eq!(s.endpoint(Role::Second), "http://h:1/confirm");
        assert_eq!(
            fill(&s.template, "g1"),
            serde_json::json!({"account": "g1", "amount": 10})
        );
        for (bad, says) in [
            (OK.replace("confirm = ", "confirmm = "), "confirm"),
            (OK.replace("\"tcc\"", "\"sagas\""), "protocol"),
            (OK.replace("query = ", "#"), "query"),
            (
                OK.replace(
                    "protocol = \"tcc\"",
                    "protocol = \"tcc\"\ntransport = \"grpc\"",
                ),
                "gRPC",
            ),
            (OK.replace("[payload]", "[payload]\ntemplat = 1"), "templat"),
        ] {
            let err = format!("{:#}", parse(&bad).unwrap_err());
            assert!(err.contains(says), "{says}: {err}");
        }
    }
}
