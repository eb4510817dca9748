//! `tandem bench grpc`: one short round runs a gRPC and an HTTP phase on one server, with
//! no errors, and the JSON report carries the figures the docs quote (each phase's
//! throughput and the gRPC/HTTP ratio). A smoke test of the tool, not a measurement.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;

#[test]
fn one_short_round_runs_both_apis_and_reports_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("tandem")
        .unwrap()
        .args(["bench", "grpc", "--concurrency", "4", "--duration", "1"])
        .args(["--rounds", "1", "--json", "--dir"])
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let phases = v["phases"].as_array().unwrap();
    let apis: Vec<&str> = phases.iter().map(|p| p["api"].as_str().unwrap()).collect();
    assert_eq!(apis, ["grpc", "http"]);
    for p in phases {
        assert!(p["sagas"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["errors"].as_u64(), Some(0), "{p}");
    }
    assert!(v["ratio"].as_f64().unwrap() > 0.0, "{v}");
}
