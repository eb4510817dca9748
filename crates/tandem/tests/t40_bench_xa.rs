//! `tandem bench xa` against the real PostgreSQL databases (`TANDEM_TEST_PG`,
//! `TANDEM_TEST_PG2`): one short round runs both phases, every transaction commits in both
//! databases (the bench checks the two agree after each phase), and the JSON report carries
//! the figures the docs quote. A smoke test of the tool, not a measurement.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use tandem_participant::testenv;

/// `tandem bench xa` for one round of 1 s at `concurrency` against the test databases, with
/// a fresh `--dir`; `None` (after the loud SKIPPED line) when they are not configured.
fn bench_xa(
    name: &str,
    concurrency: &str,
    dir: &std::path::Path,
) -> Option<(Command, String, String)> {
    let a = testenv::url("TANDEM_TEST_PG", name)?;
    let b = testenv::url("TANDEM_TEST_PG2", name)?;
    let mut cmd = Command::cargo_bin("tandem").unwrap();
    cmd.args([
        "bench",
        "xa",
        "--concurrency",
        concurrency,
        "--duration",
        "1",
    ])
    .args(["--rounds", "1", "--pg-a", &a, "--pg-b", &b, "--dir"])
    .arg(dir)
    .env_remove("RUST_BACKTRACE");
    Some((cmd, a, b))
}

#[test]
fn one_short_round_runs_both_phases_and_reports_json() {
    let name = "t40_bench_xa::one_short_round_runs_both_phases_and_reports_json";
    let dir = tempfile::tempdir().unwrap();
    let Some((mut cmd, a, b)) = bench_xa(name, "4", dir.path()) else {
        return;
    };
    let out = cmd
        .arg("--json")
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for phase in ["bound", "coordinator"] {
        let p = &v[phase];
        assert!(p["transactions"].as_u64().unwrap() > 0, "{phase}: {p}");
        assert_eq!(p["failed"].as_u64(), Some(0), "{phase}: {p}");
    }
    // The coordinator forced its log at most once per transaction (the commit decision);
    // group commit shares a sync between transactions.
    let syncs = v["coordinator"]["log"]["syncs_per_tx"].as_f64().unwrap();
    assert!(
        syncs > 0.0 && syncs <= 1.05,
        "syncs per transaction: {syncs}"
    );
    // At least the start, the decision and the end of each transaction reached the log.
    let records = v["coordinator"]["log"]["records_per_tx"].as_f64().unwrap();
    let bytes = v["coordinator"]["log"]["bytes_per_tx"].as_f64().unwrap();
    assert!(records >= 3.0, "records per transaction: {records}");
    assert!(bytes >= 3.0 * 64.0, "bytes per transaction: {bytes}");
    assert!(v["bound"].get("log").is_none());
    let ratio = v["ratio"].as_f64().unwrap();
    assert!(ratio > 0.0, "ratio {ratio}");
    // Nothing of the bench is left prepared on either database.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for url in [&a, &b] {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'tandem-bench-bound-%' \
                     OR gid LIKE 'tandembench:%'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "prepared transactions left on {url}");
        }
    });
}

#[test]
fn too_few_prepared_transaction_slots_are_refused_up_front() {
    let name = "t40_bench_xa::too_few_prepared_transaction_slots_are_refused_up_front";
    let dir = tempfile::tempdir().unwrap();
    // 1000 clients need more slots than any server here is configured with (CI: 128).
    let Some((mut cmd, _, _)) = bench_xa(name, "1000", dir.path()) else {
        return;
    };
    let out = cmd
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_prepared_transactions is") && err.contains("ALTER SYSTEM SET"),
        "{err}"
    );
    // Refused before any phase ran: nothing of the bench was created.
    assert!(!err.contains("round 1"), "{err}");
}
