//! `tandem tx list|show|retry|stop --server URL` against a server started in-process on a
//! free port: the listing and detail come from `/v1`, the operator actions record their
//! reasons, and every failure (no reason, no server given, server unreachable, unknown gid)
//! is a clear message and a non-zero exit.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{json, Value};

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let cfg = tandem_server::ServerConfig {
            listen: addr,
            data_dir: dir.path().to_path_buf(),
            shutdown_grace: Duration::from_secs(2),
            ..Default::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                tandem_server::serve_on(listener, cfg, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let s = Server {
            url: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        };
        for _ in 0..250 {
            if http(addr, "GET", "/v1/openapi.json", None).0 == 200 {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not start");
    }

    fn addr(&self) -> SocketAddr {
        self.url.trim_start_matches("http://").parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection; returns (status, JSON body).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, Value::Null);
    };
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = out
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn tandem() -> Command {
    let mut c = Command::cargo_bin("tandem").unwrap();
    c.env_remove("TANDEM_SERVER").env_remove("TANDEM_DATA_DIR");
    c
}

fn stdout(c: &mut Command) -> String {
    String::from_utf8(c.assert().success().get_output().stdout.clone()).unwrap()
}

fn stderr_of_failure(c: &mut Command) -> String {
    String::from_utf8(c.assert().failure().get_output().stderr.clone()).unwrap()
}

#[test]
fn list_show_retry_stop_against_a_server() {
    let s = Server::start();
    let addr = s.addr();
    for i in 0..3 {
        let (st, v) = http(
            addr,
            "POST",
            "/v1/sagas",
            Some(json!({"gid": format!("cli-ok-{i}"), "wait_result": true,
                        "steps": [{"action": "", "compensate": ""}]})),
        );
        assert_eq!((st, v["status"].as_str()), (200, Some("succeed")), "{v}");
    }
    // Nothing listens on port 1: the action errors and the saga parks.
    let (st, v) = http(
        addr,
        "POST",
        "/v1/sagas",
        Some(json!({"gid": "cli-stuck", "wait_result": true,
            "options": {"retry_limit": 1, "retry_interval_ms": 10, "retry_max_ms": 10},
            "steps": [{"action": "http://127.0.0.1:1/a", "compensate": "http://127.0.0.1:1/c"}]})),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["parked"].is_string(), "{v}");

    let out = stdout(tandem().args(["tx", "list", "--server", &s.url]));
    assert!(
        out.contains("cli-ok-2") && out.contains("cli-stuck"),
        "{out}"
    );

    let out = stdout(tandem().args(["tx", "list", "--server", &s.url, "--parked", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["transactions"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["transactions"][0]["gid"], "cli-stuck");

    // Paging through the server.
    let out = stdout(tandem().args([
        "tx",
        "list",
        "--server",
        &s.url,
        "--gid-prefix",
        "cli-ok-",
        "--limit",
        "2",
        "--json",
    ]));
    let p1: Value = serde_json::from_str(&out).unwrap();
    let next = p1["next_cursor"].as_str().unwrap().to_string();
    let out = stdout(tandem().args([
        "tx",
        "list",
        "--server",
        &s.url,
        "--gid-prefix",
        "cli-ok-",
        "--limit",
        "2",
        "--cursor",
        &next,
        "--json",
    ]));
    let p2: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p2["transactions"][0]["gid"], "cli-ok-0", "{p2}");
    assert!(p2["next_cursor"].is_null());

    let out = stdout(tandem().args(["tx", "show", "cli-stuck", "--server", &s.url]));
    assert!(
        out.contains("parked") && out.contains("action") && out.contains("error"),
        "{out}"
    );

    let out = stdout(tandem().args([
        "tx",
        "retry",
        "cli-stuck",
        "--server",
        &s.url,
        "--reason",
        "network fixed",
    ]));
    assert!(out.contains("network fixed"), "{out}");

    let out = stdout(tandem().args([
        "tx",
        "stop",
        "cli-stuck",
        "--server",
        &s.url,
        "--reason",
        "INC-9 give up",
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "failed", "{v}");
    let reasons: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"network fixed") && reasons.contains(&"INC-9 give up"),
        "{reasons:?}"
    );
}

#[test]
fn clear_errors_against_a_server() {
    let s = Server::start();
    // Unknown gid: the server's 404, said plainly.
    let err = stderr_of_failure(tandem().args(["tx", "show", "nope", "--server", &s.url]));
    assert!(err.contains("404") && err.contains("nope"), "{err}");
    let err = stderr_of_failure(
        tandem().args(["tx", "retry", "nope", "--server", &s.url, "--reason", "x"]),
    );
    assert!(err.contains("404"), "{err}");
    // A bad filter: the server names it.
    let err =
        stderr_of_failure(tandem().args(["tx", "list", "--server", &s.url, "--status", "weird"]));
    assert!(err.contains("400") && err.contains("weird"), "{err}");
    // --reason is required; --server is required for operator actions.
    let err = stderr_of_failure(tandem().args(["tx", "stop", "g1", "--server", &s.url]));
    assert!(err.contains("--reason"), "{err}");
    let err = stderr_of_failure(tandem().args(["tx", "stop", "g1", "--reason", "r"]));
    assert!(err.contains("--server"), "{err}");
    let err = stderr_of_failure(
        tandem().args(["tx", "retry", "g1", "--server", &s.url, "--reason", "  "]),
    );
    assert!(err.contains("--reason"), "{err}");
    // Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err =
        stderr_of_failure(tandem().args(["tx", "list", "--server", &format!("http://{closed}")]));
    assert!(err.contains("cannot reach the tandem server"), "{err}");
    let err = stderr_of_failure(tandem().args(["tx", "list", "--server", "ftp://x"]));
    assert!(err.contains("http://"), "{err}");
}
