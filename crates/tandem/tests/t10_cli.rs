//! The command line against a real data directory: `--help`, `tx list` with filters and
//! paging, `tx show` (text and JSON), and clear errors for a missing directory or gid.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use tandem_engine::{BranchError, CallRequest, Coordinator, SagaStep};

struct Step;

#[async_trait::async_trait]
impl SagaStep for Step {
    async fn action(&self, call: &CallRequest) -> Result<(), BranchError> {
        if call.payload == b"fail" {
            return Err(BranchError::Failure("refused".into()));
        }
        Ok(())
    }
    async fn compensate(&self, _: &CallRequest) -> Result<(), BranchError> {
        Ok(())
    }
}

fn tandem() -> Command {
    Command::cargo_bin("tandem").unwrap()
}

fn make_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Coordinator::builder()
            .step("bank", std::sync::Arc::new(Step))
            .open(dir.path())
            .await
            .unwrap();
        for i in 0..5 {
            c.saga(format!("ok-{i}"))
                .step("bank", "x")
                .run()
                .await
                .unwrap();
        }
        c.saga("bad-1")
            .step("bank", "x")
            .step("bank", "fail")
            .run()
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    dir
}

#[test]
fn help_names_the_commands() {
    let out = tandem()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for word in ["tx", "bench"] {
        assert!(text.contains(word), "--help should mention {word}: {text}");
    }
}

#[test]
fn list_filter_page_and_show() {
    let dir = make_data();
    let d = dir.path().to_str().unwrap();
    let out = tandem()
        .args(["tx", "list", "--data-dir", d])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 7, "header + 6 transactions: {text}");
    let out = tandem()
        .args(["tx", "list", "--data-dir", d, "--status", "failed"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("bad-1") && !text.contains("ok-1"), "{text}");

    // Paging with --json: two pages of 3, no duplicates.
    let page = |cursor: Option<&str>| {
        let mut cmd = tandem();
        cmd.args(["tx", "list", "--data-dir", d, "--limit", "3", "--json"]);
        if let Some(c) = cursor {
            cmd.args(["--cursor", c]);
        }
        let out = cmd.assert().success().get_output().stdout.clone();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    let p1 = page(None);
    let next = p1["next_cursor"].as_str().unwrap().to_string();
    let p2 = page(Some(&next));
    let gids: std::collections::HashSet<String> = p1["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["transactions"].as_array().unwrap())
        .map(|t| t["gid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(gids.len(), 6);

    let out = tandem()
        .args(["tx", "show", "bad-1", "--data-dir", d])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("status    failed") && text.contains("compensate"),
        "{text}"
    );
    let out = tandem()
        .args(["tx", "show", "bad-1", "--data-dir", d, "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["branches"].as_array().unwrap().len(), 4);
}

#[test]
fn clear_errors() {
    let dir = make_data();
    let d = dir.path().to_str().unwrap();
    let err = tandem()
        .args(["tx", "show", "nope", "--data-dir", d])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(err)
        .unwrap()
        .contains("no transaction \"nope\""));
    let err = tandem()
        .args(["tx", "list", "--data-dir", "/nonexistent/x"])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(err)
        .unwrap()
        .contains("no data directory"));
    let err = tandem()
        .args(["tx", "list", "--data-dir", d, "--status", "weird"])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(err).unwrap().contains("unknown status"));
}
