//! `tandem check participant` against two participants kept here, no database server
//! needed (SQLite files): a naive one with no barrier, which must be reported with the
//! duplicate, null-compensation and hanging violations by name (and exit 1), and one
//! written with `tandem_participant::axum` and the barrier, which must pass every schedule
//! (exit 0). Both effect read-backs that need no server run here: SQLite and HTTP GET.
//!
//! Guards against a checker that cannot fail (the naive participant) and against one that
//! cries wolf (the barrier participant).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tandem_participant::axum::{BranchCall, BranchError};

type Db = Arc<Mutex<rusqlite::Connection>>;

#[derive(serde::Deserialize)]
struct Body {
    amount: i64,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(serde::Deserialize)]
struct GidQuery {
    gid: String,
}

fn open(path: &Path) -> Db {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS ledger(gid TEXT NOT NULL, balance INTEGER NOT NULL,
                                           frozen INTEGER NOT NULL DEFAULT 0);",
    )
    .unwrap();
    tandem_participant::barrier::sqlite::create_table_if_missing(&conn, "barrier").unwrap();
    Arc::new(Mutex::new(conn))
}

fn write(db: &Db, gid: &str, balance: i64, frozen: i64) {
    db.lock()
        .unwrap()
        .execute(
            "INSERT INTO ledger(gid, balance, frozen) VALUES (?1, ?2, ?3)",
            (gid, balance, frozen),
        )
        .unwrap();
}

/// The naive participant: does what it is asked, every time it is asked.
fn naive(db: Db) -> Router {
    let step = |balance: i64, frozen: i64, may_fail: bool| {
        move |State(db): State<Db>, q: Query<GidQuery>, Json(b): Json<Body>| async move {
            if may_fail && b.fail {
                return (StatusCode::CONFLICT, Json(json!({"dtm_result": "FAILURE"})));
            }
            tokio::time::sleep(std::time::Duration::from_millis(b.delay_ms)).await;
            write(&db, &q.gid, balance * b.amount, frozen * b.amount);
            (StatusCode::OK, Json(json!({"dtm_result": "SUCCESS"})))
        }
    };
    routes(step).with_state(db)
}

/// The endpoints of both participants: `step(balance, frozen, may_fail)` makes a handler
/// moving `balance × amount` and `frozen × amount`.
fn routes<H, T>(step: impl Fn(i64, i64, bool) -> H) -> Router<Db>
where
    H: axum::handler::Handler<T, Db>,
    T: 'static,
{
    Router::new()
        .route("/saga/debit", post(step(-1, 0, true)))
        .route("/saga/refund", post(step(1, 0, false)))
        .route("/tcc/try", post(step(-1, 1, true)))
        .route("/tcc/confirm", post(step(0, -1, false)))
        .route("/tcc/cancel", post(step(1, -1, false)))
        .route("/effect", get(effect))
}

async fn effect(State(db): State<Db>, Query(q): Query<GidQuery>) -> Json<Value> {
    let (b, f): (i64, i64) = db
        .lock()
        .unwrap()
        .query_row(
            "SELECT COALESCE(SUM(balance), 0), COALESCE(SUM(frozen), 0) FROM ledger WHERE gid = ?1",
            [&q.gid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    Json(json!({"balance": b, "frozen": f}))
}

/// The same participant on the barrier: each handler is the business code inside
/// `call.sqlite(..)`.
fn guarded(db: Db) -> Router {
    let step = |balance: i64, frozen: i64, may_fail: bool| {
        move |call: BranchCall, State(db): State<Db>, Json(b): Json<Body>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(b.delay_ms)).await;
            let gid = call.gid().to_owned();
            call.sqlite(&db, move |tx| {
                tx.execute(
                    "INSERT INTO ledger(gid, balance, frozen) VALUES (?1, ?2, ?3)",
                    (&gid, balance * b.amount, frozen * b.amount),
                )?;
                if may_fail && b.fail {
                    return Err(BranchError::failure("refused on request"));
                }
                Ok(())
            })
            .await
        }
    };
    routes(step).with_state(db)
}

/// Serves `app` on a free port from a thread of its own; its base URL.
fn serve(app: Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    url
}

fn spec(dir: &Path, name: &str, protocol: &str, endpoints: &str, effect: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"protocol = "{protocol}"
timeout_ms = 3000
[endpoints]
{endpoints}
[payload]
template = {{ amount = 10 }}
failing = {{ amount = 10, fail = true }}
slow = {{ amount = 10, delay_ms = 300 }}
slow_timeout_ms = 100
[effect]
{effect}
"#
        ),
    )
    .unwrap();
    path
}

/// Runs the check: (exit code, stdout).
fn check(spec: &Path, json: bool) -> (i32, String) {
    let mut c = Command::cargo_bin("tandem").unwrap();
    c.args(["check", "participant", "--spec"]).arg(spec);
    if json {
        c.arg("--json");
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn line<'a>(out: &'a str, schedule: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(schedule))
        .unwrap_or_else(|| panic!("no line for {schedule} in:\n{out}"))
}

fn saga_endpoints(url: &str) -> String {
    format!("action = \"{url}/saga/debit\"\ncompensate = \"{url}/saga/refund\"")
}

fn tcc_endpoints(url: &str) -> String {
    format!(
        "try = \"{url}/tcc/try\"\nconfirm = \"{url}/tcc/confirm\"\ncancel = \"{url}/tcc/cancel\""
    )
}

#[test]
fn t50_naive_participant_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("naive.db");
    let url = serve(naive(open(&db_path)));
    let sqlite = format!(
        "sql = \"sqlite://{}\"\nquery = \"SELECT COALESCE(SUM(balance), 0) AS balance FROM ledger WHERE gid = ?1\"",
        db_path.display()
    );
    let saga = spec(
        dir.path(),
        "saga.toml",
        "saga",
        &saga_endpoints(&url),
        &sqlite,
    );
    let (code, out) = check(&saga, false);
    assert_eq!(code, 1, "violations exit 1");
    for name in [
        "duplicate",
        "duplicate-concurrent",
        "lost-answer",
        "slow-retry",
        "null-compensation",
        "hanging",
        "compensation-repeated",
        "failure-then-compensation",
    ] {
        let l = line(&out, name);
        assert!(l.contains("VIOLATION: expected"), "{name}: {l}");
        assert!(
            l.contains("observed") && l.contains("(gid chk-"),
            "{name}: {l}"
        );
    }
    assert!(line(&out, "compensation-undoes").ends_with("ok"));
    assert!(
        line(&out, "duplicate").contains("effect {\"balance\":-10}"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("1 passed, 8 failed"), "{out}");

    // TCC with the effect read over HTTP, as JSON.
    let http = format!("http = \"{url}/effect?gid={{gid}}\"");
    let tcc = spec(dir.path(), "tcc.toml", "tcc", &tcc_endpoints(&url), &http);
    let (code, out) = check(&tcc, true);
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let result = |name: &str| {
        doc["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {doc}"))["result"]
            .clone()
    };
    for name in [
        "duplicate",
        "null-compensation",
        "hanging",
        "confirm-after-cancel",
        "cancel-after-confirm",
        "confirm-repeated",
    ] {
        assert_eq!(result(name), "violation", "{name}");
    }
    assert_eq!(
        doc["baseline"]["first"],
        json!({"balance": -10, "frozen": 10})
    );
    assert!(doc["failed"].as_u64().unwrap() >= 6);
}

#[test]
fn t51_participant_on_the_barrier_passes_every_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("guarded.db");
    let url = serve(guarded(open(&db_path)));
    let sqlite = format!(
        "sql = \"sqlite:{}\"\nquery = \"SELECT COALESCE(SUM(balance), 0) AS balance, COALESCE(SUM(frozen), 0) AS frozen FROM ledger WHERE gid = ?\"",
        db_path.display()
    );
    let saga = spec(
        dir.path(),
        "saga.toml",
        "saga",
        &saga_endpoints(&url),
        &sqlite,
    );
    let (code, out) = check(&saga, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("9 passed, 0 failed"), "{out}");
    let http = format!("http = \"{url}/effect?gid={{gid}}\"");
    let tcc = spec(dir.path(), "tcc.toml", "tcc", &tcc_endpoints(&url), &http);
    let (code, out) = check(&tcc, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("12 passed, 0 failed"), "{out}");
}

#[test]
fn t52_what_cannot_be_checked_is_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let db_path = dir.path().join("empty.db");
    drop(open(&db_path));
    let sqlite = format!(
        "sql = \"sqlite://{}\"\nquery = \"SELECT COALESCE(SUM(balance), 0) AS b FROM ledger WHERE gid = ?1\"",
        db_path.display()
    );
    let s = spec(
        dir.path(),
        "down.toml",
        "saga",
        &saga_endpoints(&closed),
        &sqlite,
    );
    let out = Command::cargo_bin("tandem")
        .unwrap()
        .args(["check", "participant", "--spec"])
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("baseline") && err.contains("ERROR"), "{err}");
    // A spec with a typo names it.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "protocol = \"saga\"\n[endpoints]\naction = \"http://h/a\"\n[effect]\nhttp = \"http://h/e\"\n").unwrap();
    let out = Command::cargo_bin("tandem")
        .unwrap()
        .args(["check", "participant", "--spec"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compensate"));
}
