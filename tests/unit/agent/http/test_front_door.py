"""The front door in-process, with real guests (componentize-py, wasi:http/proxy@0.2.0), a real HTTP client on
loopback and a real HTTP server for outbound requests: routes, fresh and reused instances, streamed bodies
both ways, every limit's status, traps and misbehaving guests, hostile clients, and handles not leaking."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.http.component import MAX_LIVE_HANDLES, WARMUP, HttpComponent
from agent.http.front_door import FrontDoor
from agent.http.host import HttpHost
from agent.http.messages import IncomingRequest
from agent.http.outbound import Outbound
from agent.http.streams import Buffered
from agent.runtime.engine import ComponentTemplate, Runtime
from cli.devcluster.guests import (
    EXAMPLES,
    build_hello_http,
    build_hello_http_c,
    build_http_guest,
    build_js_http_guest,
)
from neon.errors import ComponentError, DeadlineExceeded, NeonGridError
from neon.http_spec import HttpSpec
from neon.observe.metrics import Registry
from neon.outbound_hosts import parse_host_pattern
from tests.support.helpers import GUESTS, LoopThread, assert_eventually
from tests.support.raw_http import exchange


@pytest.fixture(scope="module")
def runtime(compiled_cache: Path) -> Iterator[Runtime]:
    rt = Runtime(compiled_cache)
    yield rt
    rt.close()


def _load(runtime: Runtime, wasm: Path) -> Any:
    return runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)


@pytest.fixture(scope="module")
def hello(runtime: Runtime) -> Any:
    return _load(runtime, build_hello_http())


@pytest.fixture(scope="module")
def hello_js(runtime: Runtime) -> Any:
    root = EXAMPLES / "hello-http" / "js"
    return _load(runtime, build_js_http_guest(root, "hello", root / "app.js"))


@pytest.fixture(scope="module")
def hello_c(runtime: Runtime) -> Any:
    return _load(runtime, build_hello_http_c())


@pytest.fixture(scope="module")
def probe(runtime: Runtime) -> Any:
    root = GUESTS / "http-probe"
    return _load(runtime, build_http_guest(root, "http-probe", root / "app"))


@dataclass
class Door:
    """A front door on loopback and what its components reported."""

    door: FrontDoor
    port: int
    registry: Registry
    traps: list[NeonGridError] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def count(self, code: int) -> float:
        return sum(v for labels, v in self.door.requests.items() if labels[-1] == str(code))


@pytest.fixture
def door(runtime: Runtime) -> Iterator[Any]:
    loop = LoopThread()
    opened: list[Door] = []

    def open_door(component: Any, spec: HttpSpec, allowed: tuple[str, ...] = ()) -> Door:
        registry = Registry()
        front = FrontDoor("node-1", registry)
        made = Door(front, 0, registry)
        patterns = tuple(parse_host_pattern(p, "test") for p in allowed)
        host = HttpHost(runtime.engine, component, "app/web", Outbound(patterns, made.denied.append))
        template = ComponentTemplate(runtime, component, "app/web", {}, host=host)

        def on_trap(err: NeonGridError) -> str:
            made.traps.append(err)
            return f"incident{len(made.traps)}"

        served = HttpComponent("app", "web", template, host, spec, on_trap)
        served.warm()
        front.install(served)
        made.port = loop.run(front.start("127.0.0.1:0"))
        opened.append(made)
        return made

    yield open_door
    for made in opened:
        loop.run(made.door.stop())
    loop.close()


@pytest.mark.parametrize("mode", ["fresh", "reuse"])
def test_routes_reach_the_component_in_both_instance_modes(door: Any, hello: Any, mode: str) -> None:
    d = door(hello, HttpSpec(routes=("/hello/...",), instances=mode))
    assert d.request("GET", "/hello/ada?x=1") == (200, b"hello, ada (you asked for /hello/ada?x=1)\n")
    assert d.request("POST", "/hello/echo", b"some bytes") == (200, b"some bytes")
    status, text = d.request("GET", "/elsewhere")
    assert status == 404 and b"no route on node-1 or elsewhere in the cluster matches /elsewhere" in text
    assert d.count(200) == 2 and d.door.unrouted.value() == 1


def test_a_componentize_js_guest_runs_unchanged(door: Any, hello_js: Any) -> None:
    """StarlingMonkey's fetch event, wasi:http 0.2.10 with WASI 0.2.12 beside it: a fresh instance each time
    (it answers one fetch event per instance)."""
    d = door(hello_js, HttpSpec(routes=("/hello/...",), instances="fresh"))
    for i in range(3):
        assert d.request("GET", f"/hello/js{i}?q=1") == (
            200,
            f"hello, js{i} (you asked for /hello/js{i}?q=1)\n".encode(),
        )
    assert d.request("POST", "/hello/x", b"from node") == (200, b"from node")


@pytest.mark.parametrize("mode", ["fresh", "reuse"])
def test_a_c_guest_with_no_runtime_inside_is_served_in_both_instance_modes(door: Any, hello_c: Any, mode: str) -> None:
    """The C guest writes the canonical ABI by hand: resources, a result in a return pointer, a list of tuples."""
    d = door(hello_c, HttpSpec(routes=("/hello/...",), instances=mode))
    for i in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        conn.request("GET", f"/hello/c{i}?q=1")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, f"hello, c{i} (you asked for /hello/c{i}?q=1)\n".encode())
        assert response.getheader("content-type") == "text/plain; charset=utf-8"
        conn.close()
    served = d.door.components[("app", "web")]

    # The client has the whole answer before the serving thread gives the instance back and counts the request.
    def all_counted() -> None:
        assert served.served == 3, f"{served.served} of 3 requests counted as finished"

    assert_eventually(all_counted, timeout=10)
    assert served.first_requests == (3 if mode == "fresh" else 1)
    assert served.live_handles() == ([] if mode == "fresh" else [0])  # the guest dropped every handle it held


def test_bodies_stream_both_ways(door: Any, probe: Any) -> None:
    d = door(probe, HttpSpec(routes=("/...",), instances="reuse", max_body_bytes=8 << 20))
    payload = bytes(range(256)) * 8192  # 2 MiB, far past what is buffered before the guest starts
    assert d.request("POST", "/echo", payload) == (200, payload)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    conn.request("POST", "/echo", body=chunks(), encode_chunked=True)  # no length announced
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, payload)
    conn.close()
    assert d.request("GET", "/big?n=3000000") == (200, b"x" * 3_000_000)


def test_each_limit_answers_its_status(door: Any, probe: Any) -> None:
    d = door(
        probe,
        HttpSpec(
            routes=("/...",),
            max_body_bytes=1000,
            max_header_bytes=2048,
            max_concurrent=1,
            first_byte_timeout=0.5,
            request_timeout=2.0,
        ),
    )
    status, text = d.request("POST", "/echo", b"x" * 1001)
    assert status == 413 and b"at most 1000" in text

    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    conn.request("POST", "/read", body=iter([b"y" * 600, b"y" * 600]), encode_chunked=True)
    assert conn.getresponse().status == 413, "a streamed body over the limit"
    conn.close()

    status, text = d.request("GET", "/", **{"x-big": "z" * 3000})
    assert status == 431 and b"the limit is 2048" in text

    # The guest that read the cut-off body may still be finishing its answer in the one slot (503 until then).
    def never() -> float:
        started = time.monotonic()
        status, text = d.request("GET", "/never")
        assert status == 504 and b"did not start its response within 0.5s" in text, (status, text)
        return time.monotonic() - started

    assert assert_eventually(never, timeout=10) < 1.9
    # The guest still spins until its request deadline: the one slot is taken, so the next is turned away.
    status, text = d.request("GET", "/")
    assert status == 503 and b"retry" in text
    assert_eventually(lambda: d.traps and isinstance(d.traps[-1], DeadlineExceeded), timeout=10)
    assert_eventually(lambda: d.request("GET", "/")[0] == 200, timeout=10)


def test_misbehaving_guests_get_their_status_and_the_door_keeps_serving(door: Any, probe: Any) -> None:
    d = door(probe, HttpSpec(routes=("/...",), instances="reuse"))
    status, text = d.request("GET", "/trap")
    assert status == 500 and b"incident1" in text, text
    status, text = d.request("GET", "/silent")
    assert status == 500 and b"returned without setting a response" in text
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        d.request("GET", "/unfinished")  # a body begun and never finished is cut off, not passed off as whole
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        d.request("GET", "/twice")  # the second set traps (in the guest: its handle was moved) after the first
    assert len(d.traps) == 2 and "trapped" in d.traps[-1].message, d.traps
    assert d.request("GET", "/fine") == (200, b"probe Method_Get /fine 0")


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f"upstream saw {self.path}".encode()
        self.send_response(201)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


def test_outbound_http_goes_only_to_allowed_hosts(door: Any, probe: Any) -> None:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        port = upstream.server_address[1]
        d = door(probe, HttpSpec(routes=("/...",)), allowed=(f"http://127.0.0.1:{port}",))
        assert d.request("GET", f"/fetch?url=http://127.0.0.1:{port}/x") == (200, b"201 upstream saw /x")
        status, text = d.request("GET", f"/fetch?url=http://localhost:{port}/x")
        assert status == 502 and b"HttpRequestDenied" in text, text
        status, text = d.request("GET", f"/fetch?url=http://127.0.0.1:{port + 1}/x")
        assert status == 502 and b"HttpRequestDenied" in text, "another port of an allowed host"
        assert len(d.denied) == 2 and f"http://localhost:{port}" in d.denied[0]
    finally:
        upstream.shutdown()


def _raw(port: int, data: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _status(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0].split()
    assert len(line) >= 2 and line[0].startswith(b"HTTP/1."), f"not an HTTP answer: {answer[:80]!r}"
    return int(line[1])


def test_hostile_clients_are_cut_off_and_nothing_else_is_disturbed(door: Any, probe: Any) -> None:
    d = door(probe, HttpSpec(routes=("/...",), request_timeout=1.0, first_byte_timeout=1.0))
    assert _status(_raw(d.port, b"GARBAGE\r\n\r\n")) == 400
    assert _status(_raw(d.port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")) == 400
    assert _status(_raw(d.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")) == 400
    # A body announced and never sent in full: cut off at the request deadline, answered 408.
    slow = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    slow.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a")
    started = time.monotonic()
    answer = slow.recv(65536)
    assert _status(answer) == 408, answer[:80]
    assert time.monotonic() - started < 5
    slow.close()
    # Gone mid-body.
    _raw(d.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n" + b"a" * 100_000, read=False)
    assert d.request("GET", "/after") == (200, b"probe Method_Get /after 0")


@pytest.mark.parametrize(("mode", "requests"), [("fresh", 1000), ("reuse", 10_000)])
def test_handles_do_not_pile_up(runtime: Runtime, hello: Any, mode: str, requests: int) -> None:
    """A reused instance outlives 10,000 requests without its handles growing past the bound; a fresh one
    per request is never kept (1,000 are enough to show it: none holds anything after its request)."""
    host = HttpHost(runtime.engine, hello, "app/web", Outbound((), lambda _m: None))
    template = ComponentTemplate(runtime, hello, "app/web", {}, host=host)
    served = HttpComponent("app", "web", template, host, HttpSpec(routes=("/...",), instances=mode), str)

    class Sink:
        def start(self, status: int, headers: Any) -> None:
            assert status == 200

        def write(self, data: bytes) -> None:
            return None

        def flush(self) -> None:
            return None

        def finish(self, trailers: Any) -> None:
            return None

        def fail(self, reason: str) -> None:
            raise AssertionError(reason)

    for i in range(requests):
        assert served.admit()
        try:
            outcome = served.run(IncomingRequest("GET", f"/hello/{i}", [], Buffered(b"")), Sink())
        finally:
            served.release()
        assert outcome.answered and outcome.error is None
    live = served.live_handles()
    if mode == "reuse":
        assert live and max(live) <= MAX_LIVE_HANDLES, f"live handles per kept instance: {live}"
        assert served.first_requests == 1 + served.retired, (served.first_requests, served.retired)
    else:
        assert live == [] and served.first_requests == requests  # each on an instance of its own, none kept


def test_routes_served_elsewhere_are_handed_over_or_refused_with_the_reason(door: Any, hello: Any) -> None:
    from agent.http.handover import WHOLE, RouteTarget
    from neon._proto import dataplane_pb2 as pb

    d = door(hello, HttpSpec(routes=("/hello/...",)))
    handover = d.door.handover
    sent: list[tuple[str, list[Any]]] = []

    def open_call(endpoint: str, frames: Iterator[Any], timeout: float) -> Iterator[Any]:
        taken = list(frames)  # the whole request, as the other node's reader would take it
        sent.append((endpoint, taken))
        body = b"".join(f.request.body if f.HasField("request") else f.data for f in taken if not f.HasField("end"))
        yield pb.HttpFrame(response=pb.HttpResponse(status=201, body=b"from " + endpoint.encode(), served_by="far"))
        yield pb.HttpFrame(data=b" got %d" % len(body))
        yield pb.HttpFrame(end=pb.HttpEnd(trailers=[pb.HttpHeader(name="x-got", value=b"%d" % len(body))]))

    handover.open = open_call
    handover.rtt = {"near": 0.001, "far": 0.050}.get
    handover.set_routes(
        [
            RouteTarget("/shop/...", "shop", "web", ("far", "near", "node-1"), ("10.0.0.3:1", "10.0.0.2:1", "me:1")),
            RouteTarget("/gone", "old", "web", (), ()),
        ],
    )
    assert handover.order(handover.target("h", "/shop/x")) == [("near", "10.0.0.2:1"), ("far", "10.0.0.3:1")]
    assert d.request("POST", "/shop/cart", b"items") == (201, b"from 10.0.0.2:1 got 5")  # the nearest, not itself
    endpoint, frames = sent[0]
    head = frames[0].request
    assert len(frames) == 1 and head.whole and head.content_length == 5  # a short body travels in the head
    assert (head.app, head.component, head.method, head.path_with_query, head.body, head.via) == (
        "shop",
        "web",
        "POST",
        "/shop/cart",
        b"items",
        "node-1",
    )
    # A long body streams after the head, and the trailers come back at the end of a chunked response.
    big = bytes(range(256)) * (3 * WHOLE // 256)
    answer = exchange(d.port, "POST", "/shop/big", big, {"TE": "trailers"})
    assert (answer.status, answer.body) == (201, b"from 10.0.0.2:1 got %d" % len(big)), answer
    assert answer.chunked and answer.trailers == {"x-got": str(len(big))}, answer
    assert answer.headers["via"] == "1.1 far"
    frames = sent[1][1]
    assert not frames[0].request.whole and frames[-1].HasField("end") and len(frames) > 2, [
        f.WhichOneof("frame") for f in frames
    ]
    assert frames[0].request.body + b"".join(f.data for f in frames[1:-1]) == big

    status, text = d.request("GET", "/gone")
    assert status == 503 and b"/gone is served by old/web, which runs on no node now" in text
    assert d.request("GET", "/hello/here")[0] == 200  # what runs here is served here

    class Down(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAVAILABLE

        def details(self) -> str:
            return "connection refused"

    def unreachable(endpoint: str, frames: Iterator[Any], timeout: float) -> Iterator[Any]:
        raise Down()

    handover.open = unreachable  # every node running it fails: one answer says which and why
    status, text = d.request("GET", "/shop/x")
    assert status == 502 and b"no node serving shop/web answered: near: connection refused; far:" in text, text
    status, text = d.request("POST", "/shop/x", big)  # a streamed body goes to the nearest only
    assert status == 502 and b"near: connection refused" in text and b"far:" not in text, text


def _handed(head: Any, chunks: list[bytes] = [], end: bool = True) -> Iterator[Any]:  # noqa: B006 - read only
    from neon._proto import dataplane_pb2 as pb

    for chunk in chunks:
        yield pb.HttpFrame(data=chunk)
    if end:
        yield pb.HttpFrame(end=pb.HttpEnd())


def test_a_handed_over_request_is_served_with_both_bodies_streamed(runtime: Runtime, hello: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from agent.http.handed import serve_handed_over
    from neon._proto import dataplane_pb2 as pb
    from neon.errors import NotRunning

    host = HttpHost(runtime.engine, hello, "app/web", Outbound((), lambda _m: None))
    template = ComponentTemplate(runtime, hello, "app/web", {}, host=host)
    spec = HttpSpec(routes=("/hello/...",), max_body_bytes=20 << 20)
    served = HttpComponent("app", "web", template, host, spec, str)
    components = {("app", "web"): served}
    pool = ThreadPoolExecutor(4)

    def serve(head: Any, chunks: list[bytes] = [], end: bool = True) -> tuple[Any, bytes, list[Any]]:  # noqa: B006
        frames = list(serve_handed_over("edge-9", components, head, _handed(head, chunks, end), pool))
        first = frames[0].response
        body = first.body + b"".join(f.data for f in frames[1:] if f.HasField("data"))
        assert frames[-1].HasField("end"), [f.WhichOneof("frame") for f in frames]
        return first, body, list(frames[-1].end.trailers)

    def ask(body: bytes, whole: bool = True, **more: Any) -> Any:
        return pb.HttpRequest(
            app="app", component="web", method="POST", path_with_query="/hello/x", body=body, whole=whole, **more
        )

    try:
        head, body, _ = serve(ask(b"hi"))
        assert (head.status, body, head.served_by) == (200, b"hi", "edge-9")
        # More than the 16 MiB a handed-over request could carry whole before, in 1 MiB frames, with trailers.
        big = [bytes([i]) * (1 << 20) for i in range(17)]
        te = [pb.HttpHeader(name="te", value=b"trailers")]
        head, body, trailers = serve(ask(b"", whole=False, headers=te), big)
        assert head.status == 200 and body == b"".join(big), (head.status, len(body))
        assert [(t.name, t.value) for t in trailers] == [("x-echoed-bytes", b"%d" % (17 << 20))]
        # A body that breaks off (the other node went away) is not taken for a whole one.
        head, body, _ = serve(ask(b"", whole=False), [b"part"], end=False)
        assert head.status == 400 and b"broke off" in body, body
        too_big = ask(b"", whole=False, content_length=(20 << 20) + 1)
        assert serve(too_big)[0].status == 413
        grown = serve(ask(b"", whole=False), [b"x" * (1 << 20)] * 21)  # unannounced, found too large as it came
        assert grown[0].status == 413, grown[1]

        def every_slot() -> list[bool]:  # once the guests answered early (413, 400) above have returned
            slots = [served.admit() for _ in range(served.spec.max_concurrent)]
            if not all(slots):
                for _ in range(sum(slots)):
                    served.release()
                raise AssertionError(f"{slots.count(False)} requests still hold a slot")
            return slots

        slots = assert_eventually(every_slot, timeout=60)
        busy, text, _ = serve(ask(b"hi"))
        assert busy.status == 503 and b"app/web is serving 64 requests on edge-9; retry" in text
        for _ in slots:
            served.release()
        # A body that stops coming: the component's request timeout answers 408 (the frames' own wait has none).
        stalled, release = threading.Event(), threading.Event()

        def stalling(head: Any) -> Iterator[Any]:
            yield pb.HttpFrame(data=b"first part")
            stalled.set()
            release.wait(30)

        slow_spec = HttpSpec(routes=("/hello/...",), request_timeout=1.0)
        slow = HttpComponent("app", "web", template, host, slow_spec, str)
        frames = list(serve_handed_over("edge-9", {("app", "web"): slow}, ask(b"", whole=False), stalling(None), pool))
        release.set()  # (had the wait not been cut, the frames would end here unfinished: 400, not 408)
        assert stalled.is_set() and frames[0].response.status == 408, frames[0]
        with pytest.raises(NotRunning, match="app/other serves no HTTP on node edge-9"):
            list(serve_handed_over("edge-9", components, pb.HttpRequest(app="app", component="other"), iter(()), pool))
    finally:
        pool.shutdown()


def test_a_guests_trailers_end_its_chunked_response(door: Any, hello: Any) -> None:
    d = door(hello, HttpSpec(routes=("/hello/...",)))
    asked = exchange(d.port, "POST", "/hello/t", b"with trailers", {"TE": "trailers"})
    assert (asked.status, asked.body, asked.chunked) == (200, b"with trailers", True), asked
    assert asked.trailers == {"x-echoed-bytes": "13"} and asked.headers["x-body-length"] == "13", asked
    plain = exchange(d.port, "POST", "/hello/t", b"no trailers")
    assert (plain.status, plain.body, plain.trailers) == (200, b"no trailers", {}), plain  # chunked or not: in time


def test_the_front_door_serves_https_with_a_given_certificate(runtime: Runtime, hello: Any, tmp_path: Path) -> None:
    import ssl

    from agent.http.front_door import https_context
    from neon.security import pki

    ca = pki.create_ca()
    issued = pki.issue(ca, "edge-1", pki.AGENT, hosts=("127.0.0.1",))
    (tmp_path / "cert.pem").write_bytes(issued.cert)
    (tmp_path / "key.pem").write_bytes(issued.key)
    host = HttpHost(runtime.engine, hello, "app/web", Outbound((), lambda _m: None))
    template = ComponentTemplate(runtime, hello, "app/web", {}, host=host)
    front = FrontDoor("node-1", Registry())
    front.install(HttpComponent("app", "web", template, host, HttpSpec(routes=("/hello/...",)), str))
    loop = LoopThread()
    try:
        port = loop.run(front.start("127.0.0.1:0", https_context(tmp_path / "cert.pem", tmp_path / "key.pem")))
        assert front.url.startswith("https://")
        trusting = ssl.create_default_context(cadata=ca.cert.decode())
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=trusting)
        conn.request("GET", "/hello/tls")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello, tls (you asked for /hello/tls)\n")
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # plaintext to the TLS port: no answer
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            plain.request("GET", "/hello/x")
            plain.getresponse()
    finally:
        loop.run(front.stop())
        loop.close()


def test_quick_requests_run_on_the_door_thread_until_one_stalls(door: Any, probe: Any) -> None:
    d = door(probe, HttpSpec(routes=("/...",), instances="reuse", first_byte_timeout=0.5, request_timeout=1.0))
    served = _until_quick(d, "/")
    assert d.request("GET", "/")[0] == 200 and d.door.inlined >= 1, (served.typical, d.door.inlined)
    inlined = d.door.inlined
    assert d.request("GET", "/big?n=300000") == (200, b"x" * 300_000)  # more than a chunk, on the quick path
    assert d.door.inlined == inlined + 1
    # The big answer may have raised the component's typical time past the quick budget on a busy machine:
    # quick again (the next request must run on the door's thread), as the rest of the test needs.
    _until_quick(d, "/")
    # On the door's thread nothing can answer 504 at the first-byte timeout: the guest spins to its deadline,
    # and the component never runs there again.
    status, text = d.request("GET", "/never")
    assert status == 504 and b"did not answer in time" in text, (status, text)
    assert not served.quick() and not served.may_inline
    inlined = d.door.inlined
    started = time.monotonic()
    status, text = d.request("GET", "/never")
    assert status == 504 and b"did not start its response within 0.5s" in text, (status, text)
    assert time.monotonic() - started < 0.95 and d.door.inlined == inlined


def test_an_answer_too_long_for_the_quick_path_is_cut_off(door: Any, probe: Any, monkeypatch: Any) -> None:
    from agent.http import bridge

    monkeypatch.setattr(bridge, "INLINE_LIMIT", 200_000)
    d = door(probe, HttpSpec(routes=("/...",), instances="reuse"))
    _until_quick(d, "/")
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        d.request("GET", "/big?n=1000000")
    assert d.request("GET", "/")[0] == 200


def test_a_component_that_may_wait_on_the_network_never_runs_on_the_door_thread(door: Any, hello: Any) -> None:
    d = door(hello, HttpSpec(routes=("/hello/...",), instances="reuse"), allowed=("http://127.0.0.1:*",))
    served = d.door.components[("app", "web")]
    for _ in range(WARMUP + 5):
        assert d.request("GET", "/hello/x")[0] == 200
    assert not served.may_inline and not served.quick() and d.door.inlined == 0


def _until_quick(d: Door, path: str) -> HttpComponent:
    """Serve requests until the component counts as quick (its first requests are slower: the guest warms up)."""
    served: HttpComponent = d.door.components[("app", "web")]
    for _ in range(500):
        if served.quick():
            return served
        assert d.request("GET", path)[0] == 200
    raise AssertionError(f"after 500 requests {served.label} still takes {served.typical * 1000:.1f} ms a request")


def test_a_request_no_instance_can_be_made_for_is_answered_503_with_the_reason(
    door: Any, hello: Any, monkeypatch: Any
) -> None:
    d = door(hello, HttpSpec(routes=("/hello/...",), instances="fresh"))
    served = d.door.components[("app", "web")]

    def refuse() -> Any:
        raise ComponentError("app/web failed to instantiate: maximum concurrent limit of 2 reached (raise ...)")

    with monkeypatch.context() as patch:
        patch.setattr(served.template, "instantiate", refuse)
        status, text = d.request("GET", "/hello/x")
        assert status == 503 and b"could not start an instance" in text and b"maximum concurrent limit" in text
    assert d.request("GET", "/hello/x")[0] == 200


def test_linking_an_http_component_again_and_again_keeps_nothing_of_the_templates_dropped(
    runtime: Runtime, hello: Any
) -> None:
    """A hot swap links the component's template anew; the old one, its host functions and their readers and
    writers go with it (a cache of those once kept 1.8 MB of every template, and a node grew by that per swap)."""
    import gc
    import tracemalloc

    def link_once() -> None:
        host = HttpHost(runtime.engine, hello, "test/swap", Outbound((), lambda _m: None))
        ComponentTemplate(runtime, hello, "test/swap", {}, host=host).instantiate()

    link_once()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            link_once()
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 200_000, f"5 templates linked and dropped left {kept:,} bytes behind"


def test_a_handover_that_does_not_start_with_its_head_is_refused_and_counted(door: Any, hello: Any) -> None:
    from neon._proto import dataplane_pb2 as pb
    from neon.errors import InvalidArgument

    d = door(hello, HttpSpec(routes=("/hello/...",)))
    for frames in ([pb.HttpFrame(data=b"no head")], [pb.HttpFrame(end=pb.HttpEnd())], []):
        with pytest.raises(InvalidArgument, match="starts with its head"):
            list(d.door.serve_handed_over(iter(frames)))
    head = pb.HttpRequest(app="app", component="web", method="GET", path_with_query="/hello/h", whole=True, via="n2")
    answered = list(d.door.serve_handed_over(iter([pb.HttpFrame(request=head)])))
    assert answered[0].response.status == 200 and answered[-1].HasField("end")
    counted = {labels: v for labels, v in d.door.requests.items() if labels[-1] == "200"}
    assert counted == {("app", "web", "(handed over by n2)", "200"): 1.0}, counted
