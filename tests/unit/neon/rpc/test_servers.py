"""The gRPC edge: servicer methods of asyncio and synchronous servers name their call in log lines
and turn a NeonGridError into its status with details."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import structlog

from neon.errors import ERROR_METADATA_KEY, NotFound
from neon.observe import log
from neon.rpc.servers import edge


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines written while the test runs; the process's logging is put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    stream = io.StringIO()
    log.configure(json=True)
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:], level, config = saved
        root.setLevel(level)
        structlog.configure(**config)
        structlog.contextvars.clear_contextvars()


class _Request:
    app = "shop"
    component = "parser"
    caller = "cloud-1"
    node = ""  # empty ids are left out


class _Aborted(Exception):
    pass


class _SyncContext:
    def __init__(self) -> None:
        self.trailing: Any = None
        self.status: tuple[grpc.StatusCode, str] | None = None

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise _Aborted()


class _Servicer:
    _log = log.get("test.edge")

    @edge
    def Call(self, request: Any, context: Any) -> str:
        self._log.info("inside", app="explicit")  # an explicit value wins over the request's
        return "ok"

    @edge
    def Missing(self, request: Any, context: Any) -> str:
        raise NotFound("no such thing", kind="thing")

    @edge
    def Stream(self, request: Any, context: Any) -> Iterator[int]:
        yield 1
        self._log.info("streaming")
        raise NotFound("gone mid-stream")

    @edge
    async def Async(self, request: Any, context: Any) -> str:
        self._log.info("async inside")
        return "ok"


def test_log_lines_name_the_rpc_and_the_requests_ids_only_while_it_is_served(log_lines: io.StringIO) -> None:
    servicer, context = _Servicer(), _SyncContext()
    assert servicer.Call(_Request(), context) == "ok"
    assert asyncio.run(servicer.Async(_Request(), context)) == "ok"
    log.get("test.edge").info("outside")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    inside, async_inside, outside = lines
    assert (inside["rpc"], inside["app"], inside["component"], inside["caller"]) == (
        "Call",
        "explicit",
        "parser",
        "cloud-1",
    )
    assert "node" not in inside
    assert (async_inside["rpc"], async_inside["app"]) == ("Async", "shop")
    assert "rpc" not in outside and "app" not in outside


def test_a_sync_handlers_error_becomes_its_status_with_details() -> None:
    servicer, context = _Servicer(), _SyncContext()
    with pytest.raises(_Aborted):
        servicer.Missing(_Request(), context)
    assert context.status == (grpc.StatusCode.NOT_FOUND, "no such thing")
    ((key, value),) = context.trailing
    assert key == ERROR_METADATA_KEY and json.loads(value)["attrs"] == {"kind": "thing"}

    context = _SyncContext()
    stream = servicer.Stream(_Request(), context)
    assert next(stream) == 1
    with pytest.raises(_Aborted):
        next(stream)
    assert context.status == (grpc.StatusCode.NOT_FOUND, "gone mid-stream")


_BURST_CLIENT = """
import json, sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    grpc.channel_ready_future(channel).result(timeout=30)
    block = channel.unary_unary("/test.Blocker/Block")(b"", timeout=60)  # holds the server's event loop
    stub = health_pb2_grpc.HealthStub(channel)
    calls = [stub.Check.future(health_pb2.HealthCheckRequest(), timeout=120) for _ in range(int(sys.argv[2]))]
    codes = {}
    for call in calls:
        code = call.code().name
        codes[code] = codes.get(code, 0) + 1
print(json.dumps(codes))
"""


def test_calls_arriving_while_the_event_loop_is_busy_wait_instead_of_being_cancelled() -> None:
    """gRPC's core cancels the calls an asyncio server has not taken up past 1,000 of them (the caller sees a
    bare CANCELLED): thousands of agents heartbeating into a control plane whose loop was busy for a moment
    lost hundreds of heartbeats so. The server raises that limit: the calls wait within their deadlines."""
    import subprocess
    import sys
    import threading
    import time

    from neon.rpc.servers import create_server
    from neon.security.tls import Credentials

    burst = 2500
    blocked = threading.Event()

    def block(request: bytes, context: Any) -> bytes:
        blocked.set()
        time.sleep(2.0)  # holds the loop (a stand-in for a long synchronous reconcile step)
        return b""

    async def blocker(request: bytes, context: Any) -> bytes:
        return block(request, context)

    handler = grpc.method_handlers_generic_handler(
        "test.Blocker", {"Block": grpc.unary_unary_rpc_method_handler(blocker)}
    )
    ready: dict[str, Any] = {}
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            server, port = create_server(
                "127.0.0.1:0", lambda s: s.add_generic_rpc_handlers((handler,)), [], Credentials.insecure()
            )
            await server.start()
            ready["port"] = port
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await server.stop(None)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while "port" not in ready and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _BURST_CLIENT, f"127.0.0.1:{ready['port']}", str(burst)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr
        codes = json.loads(out.stdout)
        assert blocked.is_set(), "the loop was never held"
        assert codes == {"OK": burst}, f"calls that arrived while the loop was held: {codes}"
    finally:
        stop.set()
        thread.join(30)
