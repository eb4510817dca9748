//! Reading the effect of one gid back: an HTTP GET answering JSON, or a SQL query (the gid
//! its one parameter) on PostgreSQL, MySQL/MariaDB or SQLite, its rows turned into JSON.
//!
//! Effects are compared as JSON after [`normalize`] (integral numbers as integers, so `10`,
//! `10.0` and a DECIMAL's `"10"` agree): one row is an object, no row `null`, several an
//! array of objects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use serde_json::{Map, Value};

use super::spec::ReadBack;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// Most bytes of an effect answer read.
const EFFECT_BYTES_MAX: usize = 1 << 20;

async fn get(client: &HttpClient, url: &str) -> anyhow::Result<(u16, String)> {
    use http_body_util::BodyExt;
    let req = hyper::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let res = client.request(req).await?;
    let status = res.status().as_u16();
    let body = http_body_util::Limited::new(res.into_body(), EFFECT_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An open read-back.
pub enum Reader {
    Http {
        url: String,
        client: HttpClient,
        timeout: Duration,
    },
    Pg {
        client: tokio_postgres::Client,
        statement: tokio_postgres::Statement,
    },
    My {
        conn: tokio::sync::Mutex<mysql_async::Conn>,
        query: String,
    },
    Sqlite {
        conn: Arc<Mutex<rusqlite::Connection>>,
        query: String,
    },
}

impl Reader {
    /// Connects (and, for PostgreSQL, prepares the query).
    pub async fn open(rb: &ReadBack, timeout: Duration) -> anyhow::Result<Reader> {
        Ok(match rb {
            ReadBack::Http(url) => Reader::Http {
                url: url.clone(),
                client: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http(),
                timeout,
            },
            ReadBack::Sql { url, query } if url.starts_with("postgres") => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .with_context(|| format!("connecting to the effect database {url}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                // PostgreSQL turns the row into JSON itself, whatever the column types.
                let wrapped = format!("SELECT row_to_json(q)::text FROM ({query}) q");
                let statement = client
                    .prepare(&wrapped)
                    .await
                    .map_err(|e| anyhow::anyhow!("[effect] query: {}", pg_message(&e)))?;
                Reader::Pg { client, statement }
            }
            ReadBack::Sql { url, query } if url.starts_with("mysql://") => {
                let opts = mysql_async::Opts::from_url(url)
                    .with_context(|| format!("[effect] sql = {url:?}"))?;
                let conn = mysql_async::Conn::new(opts)
                    .await
                    .with_context(|| format!("connecting to the effect database {url}"))?;
                Reader::My {
                    conn: tokio::sync::Mutex::new(conn),
                    query: query.clone(),
                }
            }
            ReadBack::Sql { url, query } if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .with_context(|| format!("opening the effect database {path}"))?;
                conn.busy_timeout(timeout)?;
                Reader::Sqlite {
                    conn: Arc::new(Mutex::new(conn)),
                    query: query.clone(),
                }
            }
            ReadBack::Sql { url, .. } => {
                bail!("[effect] sql = {url:?}: expected postgres://, mysql:// or sqlite://")
            }
        })
    }

    /// Where effects come from, for the report.
    pub fn describe(&self) -> &'static str {
        match self {
            Reader::Http { .. } => "HTTP GET",
            Reader::Pg { .. } => "PostgreSQL query",
            Reader::My { .. } => "MySQL query",
            Reader::Sqlite { .. } => "SQLite query",
        }
    }

    /// The effect of `gid`, normalized.
    pub async fn read(&self, gid: &str) -> anyhow::Result<Value> {
        let v = match self {
            Reader::Http {
                url,
                client,
                timeout,
            } => {
                let url = url.replace("{gid}", &tandem_client::encode_query(gid));
                let (status, body) = tokio::time::timeout(*timeout, get(client, &url))
                    .await
                    .map_err(|_| anyhow::anyhow!("reading {url}: no answer in {timeout:?}"))?
                    .map_err(|e| anyhow::anyhow!("reading {url}: {e}"))?;
                if status != 200 {
                    bail!("reading {url}: HTTP {status}: {body}");
                }
                serde_json::from_str(&body)
                    .with_context(|| format!("reading {url}: the answer is not JSON"))?
            }
            Reader::Pg { client, statement } => {
                let rows = client
                    .query(statement, &[&gid])
                    .await
                    .map_err(|e| anyhow::anyhow!("[effect] query: {}", pg_message(&e)))?;
                let rows = rows
                    .iter()
                    .map(|r| Ok(serde_json::from_str(r.try_get::<_, &str>(0)?)?))
                    .collect::<anyhow::Result<Vec<Value>>>()?;
                one_or_many(rows)
            }
            Reader::My { conn, query } => {
                let mut conn = conn.lock().await;
                let rows: Vec<mysql_async::Row> = conn
                    .exec(query.as_str(), (gid,))
                    .await
                    .context("[effect] query")?;
                one_or_many(rows.into_iter().map(my_row).collect())
            }
            Reader::Sqlite { conn, query } => {
                let (conn, query, gid) = (conn.clone(), query.clone(), gid.to_owned());
                tokio::task::spawn_blocking(move || sqlite_rows(&conn, &query, &gid)).await??
            }
        };
        Ok(normalize(v))
    }
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn one_or_many(mut rows: Vec<Value>) -> Value {
    match rows.len() {
        0 => Value::Null,
        1 => rows.remove(0),
        _ => Value::Array(rows),
    }
}

fn my_row(row: mysql_async::Row) -> Value {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let mut m = Map::new();
    for (name, v) in names.into_iter().zip(row.unwrap()) {
        use mysql_async::Value as V;
        let j = match v {
            V::NULL => Value::Null,
            V::Int(i) => i.into(),
            V::UInt(u) => u.into(),
            V::Float(f) => f64::from(f).into(),
            V::Double(d) => d.into(),
            V::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
            other => Value::String(other.as_sql(true)),
        };
        m.insert(name, j);
    }
    Value::Object(m)
}

fn sqlite_rows(
    conn: &Mutex<rusqlite::Connection>,
    query: &str,
    gid: &str,
) -> anyhow::Result<Value> {
    let conn = conn
        .lock()
        .map_err(|_| anyhow::anyhow!("the SQLite connection's lock is poisoned"))?;
    let mut stmt = conn.prepare(query).context("[effect] query")?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([gid]).context("[effect] query")?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut m = Map::new();
        for (i, name) in names.iter().enumerate() {
            use rusqlite::types::ValueRef as V;
            let j = match row.get_ref(i)? {
                V::Null => Value::Null,
                V::Integer(n) => n.into(),
                V::Real(f) => f.into(),
                V::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                V::Blob(b) => Value::String(format!("<{} bytes>", b.len())),
            };
            m.insert(name.clone(), j);
        }
        out.push(Value::Object(m));
    }
    Ok(one_or_many(out))
}

/// Numbers that are integral become integers; numeric strings (a DECIMAL read as text)
/// become numbers; so equal effects compare equal however the database typed them.
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && !s.trim().is_empty() => normalize(Value::from(f)),
            _ => Value::String(s),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        Value::Null | Value::Bool(_) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_whatever_their_type() {
        assert_eq!(
            normalize(serde_json::json!({"a": 10.0, "b": "-10", "c": "x", "d": [1.5]})),
            serde_json::json!({"a": 10, "b": -10, "c": "x", "d": [1.5]})
        );
    }
}
