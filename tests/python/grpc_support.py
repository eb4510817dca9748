"""Helpers for the gRPC suite: stubs generated at test time from the repository's .proto
files (grpcio-tools), and a gRPC participant service that records every call and answers
as told.

The participant serves any method (`/package.Service/Method`) with raw bytes in and out,
as a DTM gRPC participant's methods receive the request message Tandem stored.
"""

import importlib
import os
import sys
import tempfile
import threading
from concurrent import futures

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def generate_stubs():
    """Compiles proto/dtmgimp.proto, proto/workflow.proto and tests/python/proto/busi.proto
    into a temporary package directory and imports the modules."""
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="tandem-stubs-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for include, files in [
        (os.path.join(REPO, "proto"), ["dtmgimp.proto", "workflow.proto"]),
        (os.path.join(REPO, "tests", "python", "proto"), ["busi.proto"]),
    ]:
        rc = protoc.main(
            ["protoc", f"-I{include}", f"-I{well_known}", f"--python_out={out}",
             f"--grpc_python_out={out}", *files]
        )
        assert rc == 0, f"protoc failed on {files}"
    sys.path.insert(0, out)
    names = ["dtmgimp_pb2", "dtmgimp_pb2_grpc", "workflow_pb2", "workflow_pb2_grpc", "busi_pb2"]
    return {n: importlib.import_module(n) for n in names}


# How a participant answers: a status code name, or a callable(call) returning one.
OK = "OK"


class Participant:
    """A gRPC server on a free port: records each call (method, metadata, request bytes,
    time left before the deadline) and answers per method (default OK with an empty
    reply)."""

    def __init__(self):
        self.calls = []
        self.answers = {}
        self.lock = threading.Lock()
        self.event = threading.Condition(self.lock)
        owner = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                method = details.method

                def unary(request, context):
                    md = {k: v for k, v in context.invocation_metadata()}
                    call = {"method": method, "md": md, "body": request,
                            "time_left": context.time_remaining()}
                    with owner.lock:
                        owner.calls.append(call)
                        answer = owner.answers.get(method, OK)
                        owner.event.notify_all()
                    if callable(answer):
                        answer = answer(call)
                    if isinstance(answer, tuple):
                        code, message = answer
                    else:
                        code, message = answer, answer
                    if code != OK:
                        context.abort(getattr(grpc.StatusCode, code), message)
                    return b""

                return grpc.unary_unary_rpc_method_handler(unary)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.target = f"127.0.0.1:{self.port}"

    def url(self, method):
        """A branch URL in DTM's gRPC form: host:port/package.Service/Method."""
        return f"{self.target}/busi.Busi/{method}"

    def methods(self, gid=None):
        with self.lock:
            return [c["method"].rsplit("/", 1)[1] for c in self.calls
                    if gid is None or c["md"].get("dtm-gid") == gid]

    def calls_for(self, gid):
        with self.lock:
            return [c for c in self.calls if c["md"].get("dtm-gid") == gid]

    def wait_calls(self, gid, n, timeout=15):
        """Waits until `gid` has at least `n` calls; returns them."""
        with self.lock:
            ok = self.event.wait_for(
                lambda: len([c for c in self.calls if c["md"].get("dtm-gid") == gid]) >= n,
                timeout)
        assert ok, f"{gid}: expected {n} calls, got {self.methods(gid)}"
        return self.calls_for(gid)

    def stop(self):
        self.server.stop(0)
