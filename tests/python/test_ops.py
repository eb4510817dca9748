"""Operations, checked with third-party parsers: `/metrics` read by the official Prometheus
Python client's text parser, and the exported spans decoded into OpenTelemetry's own
`ExportTraceServiceRequest` protobuf message (opentelemetry-proto), strictly (an unknown
or mistyped field fails). A saga submitted with a W3C `traceparent` must come out as one
trace: the participant sees the trace id, the collector gets the transaction's span (a child
of the submitter's) and one client span per branch call (children of the transaction's)."""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from conftest import start_server

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP receiver: keeps every request body POSTed to /v1/traces."""

    def __init__(self):
        self.bodies = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                assert self.path == "/v1/traces", self.path
                assert self.headers.get("Content-Type") == "application/json"
                owner.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def hex_ids_to_base64(v):
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping of bytes is base64."""
    if isinstance(v, dict):
        return {
            k: (base64.b64encode(bytes.fromhex(x)).decode() if k in ("traceId", "spanId", "parentSpanId") else hex_ids_to_base64(x))
            for k, x in v.items()
        }
    if isinstance(v, list):
        return [hex_ids_to_base64(x) for x in v]
    return v


def test_metrics_parse_with_the_prometheus_client(svc):
    base, stop = start_server()
    try:
        for gid, second in (("pm-ok", "/ok"), ("pm-fail", "/fail")):
            svc.answers["/fail"] = 409
            r = requests.post(base + "/v1/sagas", json={
                "gid": gid, "wait_result": True,
                "steps": [{"action": svc.url("/ok"), "compensate": svc.url("/undo")},
                          {"action": svc.url(second), "compensate": svc.url("/undo")}]}, timeout=10)
            assert r.status_code == 200, r.text
        r = requests.get(base + "/metrics", timeout=5)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        # The client strips _total from counter family names.
        started = families["tandem_transactions_started"]
        assert started.type == "counter"
        assert {s.labels["type"]: s.value for s in started.samples if s.name.endswith("_total")}["saga"] == 2
        finished = families["tandem_transactions_finished"]
        got = {(s.labels["type"], s.labels["outcome"]): s.value for s in finished.samples if s.name.endswith("_total")}
        assert got[("saga", "succeeded")] == 1 and got[("saga", "failed")] == 1
        assert families["tandem_transactions_in_flight"].type == "gauge"
        calls = families["tandem_branch_call_duration_seconds"]
        assert calls.type == "histogram"
        buckets = [s for s in calls.samples if s.name.endswith("_bucket")
                   and s.labels["op"] == "action" and s.labels["outcome"] == "success"]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 3
        values = [s.value for s in buckets]
        assert values == sorted(values), "buckets are cumulative"
        fsync = families["tandem_log_fsync_duration_seconds"]
        count = [s.value for s in fsync.samples if s.name.endswith("_count")][0]
        assert count >= 1
    finally:
        stop()


def test_one_saga_is_one_trace_exported_as_valid_otlp(svc):
    collector = Collector()
    base, stop = start_server({"TANDEM_OTLP_ENDPOINT": collector.url, "TANDEM_SERVICE_NAME": "tandem-py"})
    try:
        r = requests.post(base + "/v1/sagas", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}, json={
            "gid": "traced-py", "wait_result": True,
            "steps": [{"action": svc.url("/a"), "compensate": svc.url("/ua")},
                      {"action": svc.url("/b"), "compensate": svc.url("/ub")}]}, timeout=10)
        assert r.status_code == 200, r.text
        call_spans = []
        for c in svc.calls_for("traced-py"):
            tp = {k.lower(): v for k, v in c["headers"].items()}["traceparent"]
            version, trace, span, flags = tp.split("-")
            assert (version, trace, flags) == ("00", TRACE, "01"), tp
            call_spans.append(span)
        assert len(call_spans) == 2 and len(set(call_spans)) == 2

        spans = []
        deadline = time.time() + 10
        while time.time() < deadline and len(spans) < 3:
            spans = []
            for body in list(collector.bodies):
                req = ExportTraceServiceRequest()
                json_format.Parse(json.dumps(hex_ids_to_base64(json.loads(body))), req)
                for rs in req.resource_spans:
                    assert rs.resource.attributes[0].key == "service.name"
                    assert rs.resource.attributes[0].value.string_value == "tandem-py"
                    for ss in rs.scope_spans:
                        spans.extend(ss.spans)
            time.sleep(0.1)
        assert len(spans) == 3, spans
        tx = [s for s in spans if s.kind == Span.SPAN_KIND_INTERNAL]
        assert len(tx) == 1
        tx = tx[0]
        assert tx.trace_id.hex() == TRACE and tx.parent_span_id.hex() == PARENT
        assert tx.end_time_unix_nano >= tx.start_time_unix_nano > 0
        for sid in call_spans:
            c = [s for s in spans if s.span_id.hex() == sid]
            assert len(c) == 1, sid
            c = c[0]
            assert c.kind == Span.SPAN_KIND_CLIENT
            assert c.trace_id.hex() == TRACE
            assert c.parent_span_id == tx.span_id
            attrs = {a.key: a.value for a in c.attributes}
            assert attrs["http.response.status_code"].int_value == 200
            assert attrs["tandem.gid"].string_value == "traced-py"
    finally:
        stop()
        collector.server.shutdown()


def test_a_token_guards_the_dtm_api(svc):
    base, stop = start_server({"TANDEM_AUTH_TOKEN": "py-token", "TANDEM_PING_PUBLIC": "true"})
    try:
        assert requests.get(base + "/api/ping", timeout=5).status_code == 200
        r = requests.get(base + "/api/dtmsvr/newGid", timeout=5)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        r = requests.get(base + "/api/dtmsvr/newGid", headers={"Authorization": "Bearer py-token"}, timeout=5)
        assert r.status_code == 200 and r.json()["gid"]
    finally:
        stop()
