//! `tandem check participant` against `examples/bank` on the real PostgreSQL
//! (`TANDEM_TEST_PG`) and MariaDB (`TANDEM_TEST_MYSQL`): its saga and TCC endpoints on
//! PostgreSQL and its message and 2PC endpoints on MariaDB, with the effect read back by SQL
//! on each database and over HTTP. The specs are the shipped `examples/bank/bank-check.toml`
//! with this run's ports, tables and protocol. Prints how long the four checks took.
//!
//! Guards against a bank (the project's reference participant) that is not safe to retry,
//! and against a checker that cannot run against real databases.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use assert_cmd::Command;
use bank::http::Http;
use bank::service::{self, Service};
use bank::store::Bank;

/// Serves one bank on `db` from a thread of its own; its base URL.
fn serve_bank(db: &str, tag: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (db, tag, public) = (db.to_owned(), tag.to_owned(), url.clone());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let bank = Bank::connect(&db, &tag).await.unwrap();
            bank.setup(1, 1_000_000_000).await.unwrap();
            let svc = Arc::new(Service {
                bank,
                coordinator: "http://127.0.0.1:1".into(),
                public_url: public,
                http: Http::new(),
            });
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            ready_tx.send(()).unwrap();
            axum::serve(l, service::router(svc)).await.unwrap();
        });
    });
    ready.recv().unwrap();
    url
}

/// The shipped spec, pointed at this run's bank, tables and protocol.
fn spec(
    dir: &Path,
    name: &str,
    bank: &str,
    tag: &str,
    protocol: &str,
    endpoints: &str,
    effect: &str,
) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bank/bank-check.toml"),
    )
    .unwrap();
    let head = shipped.split("\n[endpoints]\n").next().unwrap();
    let payload =
        &shipped[shipped.find("\n[payload]\n").unwrap()..shipped.find("\n[effect]\n").unwrap()];
    let text = format!(
        "{}\n[endpoints]\n{endpoints}\n{payload}\n[effect]\n{effect}\n",
        head.replace("protocol = \"saga\"", &format!("protocol = \"{protocol}\""))
    )
    .replace("http://127.0.0.1:8081", bank)
    .replace("bank_demo_", &format!("bank_{tag}_"));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(spec: &Path) -> (i32, String) {
    let out = Command::cargo_bin("tandem")
        .unwrap()
        .args(["check", "participant", "--spec"])
        .arg(spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn violations(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(" VIOLATION: "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn t53_the_bank_conforms() {
    let test = "t53_the_bank_conforms";
    let Some(pg) = tandem_participant::testenv::url("TANDEM_TEST_PG", test) else {
        return;
    };
    let Some(mysql) = tandem_participant::testenv::url("TANDEM_TEST_MYSQL", test) else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag = format!("ck{}_{}", std::process::id(), nanos % 1_000_000_000);
    let (a, b) = (serve_bank(&pg, &tag), serve_bank(&mysql, &tag));
    let dir = tempfile::tempdir().unwrap();
    let sums =
        "COALESCE(sum(balance_delta), 0) AS balance, COALESCE(sum(frozen_delta), 0) AS frozen";
    let pg_sql =
        format!("sql = \"{pg}\"\nquery = \"SELECT {sums} FROM bank_{tag}_ledger WHERE gid = $1\"");
    let my_sql = format!(
        "sql = \"{mysql}\"\nquery = \"SELECT {sums} FROM bank_{tag}_ledger WHERE gid = ?\""
    );
    let http = |bank: &str| format!("http = \"{bank}/admin/effect?gid={{gid}}\"");
    let started = Instant::now();

    let saga = spec(
        dir.path(),
        "saga.toml",
        &a,
        &tag,
        "saga",
        &format!("action = \"{a}/saga/debit\"\ncompensate = \"{a}/saga/undo-debit\""),
        &pg_sql,
    );
    let (code, out) = check(&saga);
    assert_eq!((code, violations(&out)), (0, vec![]), "{out}");
    assert!(out.trim_end().ends_with("9 passed, 0 failed"), "{out}");

    let tcc = spec(dir.path(), "tcc.toml", &a, &tag, "tcc",
        &format!("try = \"{a}/tcc/try-debit\"\nconfirm = \"{a}/tcc/confirm-debit\"\ncancel = \"{a}/tcc/cancel-debit\""),
        &http(&a));
    let (code, out) = check(&tcc);
    assert_eq!((code, violations(&out)), (0, vec![]), "{out}");
    assert!(out.trim_end().ends_with("12 passed, 0 failed"), "{out}");

    let msg = spec(
        dir.path(),
        "msg.toml",
        &b,
        &tag,
        "msg",
        &format!("action = \"{b}/msg/credit\""),
        &my_sql,
    );
    let (code, out) = check(&msg);
    assert_eq!((code, violations(&out)), (0, vec![]), "{out}");
    assert!(out.trim_end().ends_with("4 passed, 0 failed"), "{out}");

    let two_pc = spec(dir.path(), "2pc.toml", &b, &tag, "2pc",
        &format!("prepare = \"{b}/2pc/prepare-debit\"\ncommit = \"{b}/2pc/commit-debit\"\nrollback = \"{b}/2pc/rollback-debit\""),
        &http(&b));
    let (code, out) = check(&two_pc);
    assert_eq!((code, violations(&out)), (0, vec![]), "{out}");
    assert!(out.trim_end().ends_with("12 passed, 0 failed"), "{out}");
    println!(
        "the four checks against the bank took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for url in [&pg, &mysql] {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            Bank::connect(url, &tag)
                .await
                .unwrap()
                .drop_tables()
                .await
                .unwrap();
        });
    }
}
