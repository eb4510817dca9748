//! The axum helpers over real HTTP: a participant written with `BranchCall` and the SQLite
//! barrier wrapper, called the way the coordinator calls branches. Guards against a
//! wrapper that answers in a way the coordinator misreads (a refused late action must be
//! 409 FAILURE, a malformed call a 400 that is not mistaken for a business failure) or
//! that lets a repeated or late call change the balance.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use tandem_participant::axum::{BranchCall, BranchError, Reply};

type Db = Arc<Mutex<rusqlite::Connection>>;

#[derive(serde::Deserialize)]
struct Transfer {
    account: String,
    amount: i64,
}

async fn debit(call: BranchCall, State(db): State<Db>, Json(t): Json<Transfer>) -> Reply {
    let delta = if call.op() == "compensate" {
        t.amount
    } else {
        -t.amount
    };
    call.sqlite(&db, move |tx| {
        let n = tx.execute(
            "UPDATE account SET balance = balance + ?1 WHERE id = ?2 AND balance + ?1 >= 0",
            (delta, &t.account),
        )?;
        if n == 0 {
            return Err(BranchError::failure("insufficient funds"));
        }
        Ok(())
    })
    .await
}

async fn start() -> (String, Db) {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("p.db")).unwrap();
    std::mem::forget(dir); // kept for the test's life
    tandem_participant::barrier::sqlite::create_table_if_missing(&conn, "barrier").unwrap();
    conn.execute_batch(
        "CREATE TABLE account(id TEXT PRIMARY KEY, balance INTEGER NOT NULL);
         INSERT INTO account VALUES ('a', 100);",
    )
    .unwrap();
    let db: Db = Arc::new(Mutex::new(conn));
    let app = Router::new()
        .route("/debit", post(debit))
        .with_state(db.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), db)
}

/// POST with a raw HTTP/1.0 request: (status, body).
async fn post_call(base: &str, query: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /debit?{query} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

fn balance(db: &Db) -> i64 {
    db.lock()
        .unwrap()
        .query_row("SELECT balance FROM account WHERE id = 'a'", [], |r| {
            r.get(0)
        })
        .unwrap()
}

#[tokio::test]
async fn repeated_late_and_malformed_calls_are_answered_as_the_protocol_says() {
    let (url, db) = start().await;
    let body = r#"{"account":"a","amount":30}"#;
    let q = |gid: &str, op: &str| format!("gid={gid}&trans_type=saga&branch_id=01&op={op}");

    // Twice the same action: one debit, both answered SUCCESS.
    for _ in 0..2 {
        let (status, answer) = post_call(&url, &q("g1", "action"), body).await;
        assert_eq!(
            (status, answer["dtm_result"].as_str()),
            (200, Some("SUCCESS"))
        );
    }
    assert_eq!(balance(&db), 70);

    // Compensation first: a no-op success; the late action is refused with 409 FAILURE.
    let (status, _) = post_call(&url, &q("g2", "compensate"), body).await;
    assert_eq!(status, 200);
    let (status, answer) = post_call(&url, &q("g2", "action"), body).await;
    assert_eq!(
        (status, answer["dtm_result"].as_str()),
        (409, Some("FAILURE"))
    );
    assert_eq!(balance(&db), 70);

    // A business failure rolls the barrier row back: 409, nothing changed, and the
    // compensation that follows is a null compensation (no double undo).
    let big = r#"{"account":"a","amount":1000}"#;
    let (status, answer) = post_call(&url, &q("g3", "action"), big).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["message"], "insufficient funds");
    let (status, _) = post_call(&url, &q("g3", "compensate"), big).await;
    assert_eq!(status, 200);
    assert_eq!(balance(&db), 70);

    // No identity: 400 with a JSON error, not a FAILURE.
    let (status, answer) = post_call(&url, "gid=g4&op=action", body).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "invalid_branch_call");
    assert!(answer.get("dtm_result").is_none());
}

#[test]
fn replies_speak_the_protocol() {
    use axum::response::IntoResponse;
    assert_eq!(Reply::Success.into_response().status(), 200);
    assert_eq!(Reply::failure("no").into_response().status(), 409);
    assert_eq!(Reply::Ongoing.into_response().status(), 425);
    assert_eq!(Reply::Error("db".into()).into_response().status(), 500);
    assert_eq!(
        Reply::from(BranchError::Ongoing("later".into())),
        Reply::Ongoing
    );
}
