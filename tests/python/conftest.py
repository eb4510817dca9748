"""Fixtures for the dtmcli suite: a `tandem serve` on a free port with a temporary data
directory, and an in-test branch service that records every call and answers as told.

The server binary comes from TANDEM_BIN (default target/debug/tandem, relative to the repo).
"""

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(extra_env=None, grpc_port=None, data=None):
    """Starts `tandem serve` on a free port with a temporary data directory (or `data`);
    returns (base_url, stop). `extra_env` adds settings (e.g. TANDEM_OTLP_ENDPOINT);
    `grpc_port` serves DTM's gRPC API there (off otherwise, so that parallel runs never
    fight over DTM's default port)."""
    binary = os.environ.get("TANDEM_BIN", os.path.join(REPO, "target", "debug", "tandem"))
    if not os.path.isabs(binary):
        binary = os.path.join(REPO, binary)
    assert os.path.exists(binary), f"no tandem binary at {binary}; build it first"
    port = free_port()
    data = data or tempfile.mkdtemp(prefix="tandem-pytest-")
    log = open(os.path.join(data, "server.log"), "a")
    env = {**os.environ, "TANDEM_LOG": os.environ.get("TANDEM_LOG", "warn")}
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}",
         "--grpc-listen", f"127.0.0.1:{grpc_port}" if grpc_port else "",
         "--data-dir", os.path.join(data, "db")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            if requests.get(base + "/api/ping", timeout=1).status_code in (200, 401):
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.close()
            raise RuntimeError("tandem serve did not start:\n" + open(log.name).read())
        time.sleep(0.05)

    def stop():
        if proc.poll() is not None:
            log.close()
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    stop.proc = proc
    return base, stop


@pytest.fixture(scope="session")
def dtm():
    """The DTM API base URL of a running `tandem serve`."""
    base, stop = start_server()
    yield base + "/api/dtmsvr"
    stop()


class Branches:
    """A branch service: records calls, answers per path (default 200 SUCCESS)."""

    def __init__(self):
        self.calls = []
        self.answers = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self):
                url = urlparse(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                with owner.lock:
                    owner.calls.append(
                        {"path": url.path, "q": q, "body": raw.decode(), "method": self.command,
                         "headers": dict(self.headers)}
                    )
                    code = owner.answers.get(url.path, 200)
                if callable(code):
                    code = code(q)
                result = {200: "SUCCESS", 409: "FAILURE", 425: "ONGOING"}.get(code, "ERROR")
                out = json.dumps({"dtm_result": result}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = handle_one
            do_POST = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return self.base + path

    def paths(self, gid=None):
        with self.lock:
            return [c["path"] for c in self.calls if gid is None or c["q"].get("gid") == gid]

    def calls_for(self, gid):
        with self.lock:
            return [c for c in self.calls if c["q"].get("gid") == gid]


@pytest.fixture()
def svc():
    b = Branches()
    yield b
    b.server.shutdown()


def query(dtm, gid):
    r = requests.get(dtm + "/query", params={"gid": gid}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(dtm, gid, status, timeout=15):
    """Polls `query` until the transaction reaches `status`; returns the answer."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = query(dtm, gid)
        t = last["transaction"]
        if t and t["status"] == status:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{gid} did not reach {status}: {json.dumps(last)}")
