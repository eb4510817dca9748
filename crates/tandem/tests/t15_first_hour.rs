//! The first hour of a new user, driven through the `tandem` binary as they would: start the
//! server, submit the README's first saga while nothing listens on its branch ports, look at
//! it, stop it, make the usual mistakes. Every process runs with `RUST_BACKTRACE=1`, as many
//! developers' shells have it.
//!
//! Guards against (issue 16): a `wait_result` submit that hangs for the ~25 minutes its
//! retries take while the log says nothing; `client error (Connect)` instead of "connection
//! refused to host:port"; ANSI colour codes in a log file; a start-up line that does not say
//! where the log is and where the dashboard is; a stop of an ended transaction answered 200
//! with nothing; a force-stopped saga still showing a `running` branch; start-up errors that
//! do not name the port or directory and the setting to change; user errors printed with a
//! stack backtrace or causes said twice; exit codes other than 2 (usage) and 1 (failure);
//! SIGTERM taking the grace period twice.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TANDEM: &str = env!("CARGO_BIN_EXE_tandem");
/// The documented default of `wait_result_max_ms` (README, docs/api-v1.md, `serve --help`).
const DOCUMENTED_WAIT: Duration = Duration::from_secs(30);

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tandem` with a clean environment for the settings and a backtrace-happy shell.
fn tandem() -> Command {
    let mut c = Command::new(TANDEM);
    for (k, _) in std::env::vars() {
        if k.starts_with("TANDEM_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_BACKTRACE", "1").env_remove("NO_COLOR");
    // The gRPC API stays off: tests run in parallel, and DTM's gRPC port is one for all.
    c.env("TANDEM_GRPC_LISTEN", "");
    c
}

/// A `tandem serve` child process logging to a file, on a fresh port and data directory.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
        let log = dir.path().join("server.log");
        let mut cmd = tandem();
        cmd.current_dir(dir.path())
            .args(["serve", "--listen", &addr.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
        let s = Server {
            child,
            addr,
            log,
            dir,
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if http(addr, "GET", "/v1/stats", None).0 == 200 {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start: {}", s.log_text());
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the time until the process exited.
    fn terminate(&mut self) -> Duration {
        let t0 = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return t0.elapsed();
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, Value::Null);
    };
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
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

/// What a user must never see from a user error.
fn assert_no_backtrace(stderr: &str) {
    for word in ["backtrace", "panicked", "RUST_BACKTRACE", "at /"] {
        assert!(!stderr.contains(word), "{word:?} in: {stderr}");
    }
}

/// No line of `stderr` is said twice, and it starts with `error:`.
fn assert_plain_error(stderr: &str) {
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_no_backtrace(stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, l) in lines.iter().enumerate() {
        assert!(!lines[..i].contains(l), "said twice: {l:?} in {stderr}");
    }
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// The README's first saga, with nothing listening on its ports: answered within the
/// documented wait with 202, the gid and where it is (last error "connection refused to
/// 127.0.0.1:PORT"); the log says so once, naming the URL, in plain text; a force stop leaves
/// no branch `running`; stopping or retrying it again is 409 and CLI exit 1.
#[test]
fn t15_first_saga_against_closed_ports() {
    let mut s = Server::start(&[]);
    let (p1, p2) = (closed_port(), closed_port());
    let saga = json!({
    "wait_result": true,
    "steps": [
        {"action": format!("http://127.0.0.1:{p1}/debit"), "compensate": format!("http://127.0.0.1:{p1}/undo-debit"), "payload": {"amount": 30}},
        {"action": format!("http://127.0.0.1:{p2}/credit"), "compensate": format!("http://127.0.0.1:{p2}/undo-credit"), "payload": {"amount": 30}}
    ]});
    let t0 = Instant::now();
    let (code, body) = http(s.addr, "POST", "/v1/sagas", Some(saga));
    let waited = t0.elapsed();
    assert_eq!(code, 202, "{body}");
    assert!(
        waited < DOCUMENTED_WAIT + Duration::from_secs(3),
        "answered after {waited:?}, documented wait is {DOCUMENTED_WAIT:?}"
    );
    assert!(
        waited >= DOCUMENTED_WAIT - Duration::from_secs(1),
        "{waited:?}"
    );
    let gid = body["gid"].as_str().unwrap().to_string();
    assert!(!gid.is_empty());
    assert_eq!(body["status"], "submitted", "{body}");
    let refused = format!("connection refused to 127.0.0.1:{p1}");
    let last = body["last_error"].as_str().unwrap();
    assert!(last.contains(&refused), "{last}");
    assert!(
        last.contains(&format!("http://127.0.0.1:{p1}/debit")),
        "{last}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("wait_result_max_ms"));
    let first = &body["transaction"]["branches"][0];
    assert_eq!(first["status"], "running", "{body}");
    assert!(first["attempts"].as_u64().unwrap() >= 3, "{body}");
    assert!(first["recent"][0]["error"]
        .as_str()
        .unwrap()
        .contains(&refused));

    // The log: plain text in a file, the start-up line says where things are, and the
    // failing branch is named once (then rate-limited), with its URL and the error.
    let log = s.log_text();
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log file:\n{log}");
    let start = log
        .lines()
        .find(|l| l.contains("tandem serving"))
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    let data_dir = std::fs::canonicalize(s.dir.path().join("tandem-data")).unwrap();
    assert!(start.contains(&s.addr.to_string()), "{start}");
    assert!(start.contains(&format!("http://{}/", s.addr)), "{start}");
    assert!(start.contains(data_dir.to_str().unwrap()), "{start}");
    let failing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("branch call failed") && l.contains(&gid))
        .collect();
    assert_eq!(failing.len(), 1, "logged once, then rate-limited:\n{log}");
    assert!(failing[0].contains(&format!("http://127.0.0.1:{p1}/debit")));
    assert!(failing[0].contains(&refused), "{}", failing[0]);
    assert!(!log.contains("client error (Connect)"), "{log}");

    // The CLI shows the same, and a force stop leaves no branch running.
    let url = s.url();
    let (code, out, err) = run(tandem().args(["tx", "show", &gid, "--server", &url]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&refused), "{out}");
    let (code, _, err) = run(tandem().args([
        "tx",
        "stop",
        &gid,
        "--server",
        &url,
        "--reason",
        "first hour",
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(tandem().args(["tx", "show", &gid, "--server", &url, "--json"]));
    assert_eq!(code, 0, "{err}");
    let tx: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tx["status"], "failed");
    let statuses: Vec<&str> = tx["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert!(!statuses.contains(&"running"), "{statuses:?}");
    assert_eq!(statuses[0], "unknown", "{statuses:?}");

    // Stop or retry of an ended transaction: 409 with a message; the CLI exits 1.
    for action in ["stop", "retry"] {
        let (code, body) = http(
            s.addr,
            "POST",
            &format!("/v1/transactions/{gid}/{action}"),
            Some(json!({"reason": "again"})),
        );
        assert_eq!(code, 409, "{action}: {body}");
        assert_eq!(body["error"]["code"], "wrong_status");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already ended (failed)"));
        let (code, _, err) =
            run(tandem().args(["tx", action, &gid, "--server", &url, "--reason", "again"]));
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("409") && err.contains("already ended"),
            "{err}"
        );
        assert_plain_error(&err);
    }
    s.terminate();
}

/// A usage error exits 2, a failure 1; each names the thing and the fix, once, with no
/// backtrace although RUST_BACKTRACE=1.
#[test]
fn t15_cli_errors_name_the_thing_and_the_fix() {
    // Usage errors: clap's message and exit code 2.
    for args in [
        vec!["tx", "list", "--bogus"],
        vec!["tx", "stop", "g1"],
        vec!["serve", "--listen", "not-an-address"],
        vec!["nonsense"],
    ] {
        let (code, _, err) = run(tandem().args(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert_no_backtrace(&err);
    }

    // A port in use names the port and the setting.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(tandem().current_dir(dir.path()).args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]));
    assert_eq!(code, 1, "{err}");
    let err = err
        .lines()
        .filter(|l| !l.contains(" INFO "))
        .collect::<Vec<_>>()
        .join("\n");
    assert_plain_error(&err);
    assert!(
        err.contains(&format!("port {port} is already in use")),
        "{err}"
    );
    assert!(
        err.contains("--listen") && err.contains("TANDEM_LISTEN"),
        "{err}"
    );
    drop(busy);

    // A data directory that cannot be used names its path and the reason.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("data");
    let (code, _, err) = run(tandem().args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", closed_port()),
        "--data-dir",
        bad.to_str().unwrap(),
    ]));
    assert_eq!(code, 1, "{err}");
    let err = err
        .lines()
        .filter(|l| !l.contains(" INFO "))
        .collect::<Vec<_>>()
        .join("\n");
    assert_plain_error(&err);
    assert!(err.contains(bad.to_str().unwrap()), "{err}");
    assert!(err.contains("not a directory"), "{err}");
    assert!(
        err.contains("--data-dir") && err.contains("TANDEM_DATA_DIR"),
        "{err}"
    );

    // A data directory in use: the server says so; `tx list` suggests --server.
    let s = Server::start(&[]);
    let data = s.dir.path().join("tandem-data");
    let (code, _, err) = run(tandem().args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", closed_port()),
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    assert_eq!(code, 1, "{err}");
    let err = err
        .lines()
        .filter(|l| !l.contains(" INFO "))
        .collect::<Vec<_>>()
        .join("\n");
    assert_plain_error(&err);
    assert!(err.contains("in use by another tandem process"), "{err}");
    let (code, _, err) = run(tandem().current_dir(s.dir.path()).args(["tx", "list"]));
    assert_eq!(code, 1, "{err}");
    assert_plain_error(&err);
    assert!(err.contains("in use by a running tandem server"), "{err}");
    assert!(err.contains("--server"), "{err}");
    drop(s);

    // An unreachable server: "connection refused", where, and what to check.
    let gone = closed_port();
    let (code, _, err) = run(tandem().args([
        "tx",
        "list",
        "--server",
        &format!("http://127.0.0.1:{gone}"),
    ]));
    assert_eq!(code, 1, "{err}");
    assert_plain_error(&err);
    assert!(
        err.contains(&format!("connection refused to 127.0.0.1:{gone}")),
        "{err}"
    );
    assert!(!err.contains("client error"), "{err}");

    // No data directory at all.
    let (code, _, err) = run(tandem().current_dir(dir.path()).args(["tx", "list"]));
    assert_eq!(code, 1, "{err}");
    assert_plain_error(&err);
    assert!(err.contains("no data directory at ./tandem-data"), "{err}");
}

/// Help matches behaviour: both modes of `tx`, every setting of `serve` with its variable
/// and default, the token variable; `--type` and `--kind` both filter.
#[test]
fn t15_help_describes_what_the_commands_do() {
    let (code, out, _) = run(tandem().args(["tx", "--help"]));
    assert_eq!(code, 0);
    for word in [
        "--server",
        "--data-dir",
        "TANDEM_AUTH_TOKEN",
        "TANDEM_SERVER",
    ] {
        assert!(out.contains(word), "tx --help lacks {word}: {out}");
    }
    let (code, out, _) = run(tandem().args(["serve", "--help"]));
    assert_eq!(code, 0);
    for s in tandem_server::config::SETTINGS {
        assert!(out.contains(s.key), "serve --help lacks {}", s.key);
        assert!(out.contains(s.env), "serve --help lacks {}", s.env);
        assert!(
            out.contains(&format!("[default: {}]", s.default)),
            "serve --help lacks the default of {}",
            s.key
        );
    }
    let (code, out, _) = run(tandem().args(["tx", "list", "--help"]));
    assert_eq!(code, 0);
    assert!(out.contains("--type") && out.contains("kind"), "{out}");

    // --type and --kind, on a real data directory.
    let s = Server::start(&[]);
    let (code, _) = http(
        s.addr,
        "POST",
        "/v1/sagas",
        Some(
            json!({"gid": "help-1", "wait_result": true, "steps": [{"action": "", "compensate": ""}]}),
        ),
    );
    assert_eq!(code, 200);

    // A generated gid has the documented shape: <node_name>-<ms>-<session>-<n>, in hex.
    let (code, body) = http(
        s.addr,
        "POST",
        "/v1/sagas",
        Some(json!({"steps": [{"action": "", "compensate": ""}]})),
    );
    assert_eq!(code, 200, "{body}");
    let gid = body["gid"].as_str().unwrap();
    let parts: Vec<&str> = gid.split('-').collect();
    assert_eq!(parts.len(), 4, "{gid}");
    assert_eq!(parts[0], "tandem", "{gid}");
    for p in &parts[1..] {
        assert!(
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{gid}"
        );
    }
    let ms = u64::from_str_radix(parts[1], 16).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now_ms.abs_diff(ms) < 60_000,
        "{gid}: not milliseconds since the epoch"
    );
    assert_eq!(parts[2].len(), 4, "{gid}: the session is 4 hex digits");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api-v1.md"))
        .unwrap();
    assert!(
        doc.contains(
            "`<node_name>-<ms>-<session>-<n>`, the three numbers in lowercase hexadecimal"
        ),
        "docs/api-v1.md no longer states the gid format this test checks"
    );

    let url = s.url();
    for flag in ["--type", "--kind"] {
        let (code, out, err) =
            run(tandem().args(["tx", "list", "--server", &url, flag, "saga", "--json"]));
        assert_eq!(code, 0, "{err}");
        let page: Value = serde_json::from_str(&out).unwrap();
        let gids: Vec<&str> = page["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["gid"].as_str().unwrap())
            .collect();
        assert!(gids.contains(&"help-1"), "{page}");
        let (code, out, _) =
            run(tandem().args(["tx", "list", "--server", &url, flag, "tcc", "--json"]));
        assert_eq!(code, 0);
        assert!(!out.contains("help-1"), "{flag} tcc did not filter: {out}");
        assert!(
            page.get("next_cursor").is_some(),
            "the API's field names: {page}"
        );
    }
}

/// A branch call that hangs must not make SIGTERM take the grace period twice.
#[test]
fn t15_shutdown_takes_the_grace_period_once() {
    // A participant that accepts connections and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_addr = hang.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        hang.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(40) {
            if let Ok((c, _)) = hang.accept() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let grace = Duration::from_secs(4);
    let mut s = Server::start(&[
        ("TANDEM_SHUTDOWN_GRACE_MS", "4000"),
        ("TANDEM_REQUEST_TIMEOUT_MS", "60000"),
        ("TANDEM_WAIT_RESULT_MAX_MS", "60000"),
    ]);
    let addr = s.addr;
    let waiting = std::thread::spawn(move || {
        http(
            addr,
            "POST",
            "/v1/sagas",
            Some(json!({"gid": "hangs", "wait_result": true, "steps": [
                {"action": format!("http://{hang_addr}/a"), "compensate": format!("http://{hang_addr}/c")}]})),
        )
    });
    // Until the call is in flight.
    let t0 = Instant::now();
    loop {
        let (_, tx) = http(addr, "GET", "/v1/transactions/hangs", None);
        if tx["branches"][0]["status"] == "running" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{tx}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = s.terminate();
    assert!(
        took < grace + Duration::from_millis(1500),
        "SIGTERM took {took:?} with a {grace:?} grace period:\n{}",
        s.log_text()
    );
    let _ = waiting.join();
    drop(held);
    assert!(data_dir_reopens(&s.dir.path().join("tandem-data")));
}

/// The log was closed cleanly enough to be read again (the unfinished saga is there).
fn data_dir_reopens(dir: &Path) -> bool {
    let (code, out, err) =
        run(tandem().args(["tx", "show", "hangs", "--data-dir", dir.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    out.contains("hangs")
}
