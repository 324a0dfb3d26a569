"""The front door: the agent's HTTP server (aiohttp's low-level server), serving the routes of the HTTP
components running on this node.

The server runs on an event loop of its own, in its own thread, so that nothing it does can delay the
agent's control loop. A request is matched to the most specific route (:mod:`neon.routes`), checked
against its component's limits (413 body, 431 headers, 503 when it has no free slot), and run on an
instance in a worker thread; its body is read as the guest reads it and its response sent as the guest
writes it (:mod:`agent.http.bridge`). A request whose body is in hand, for a component whose requests are
quick (:meth:`agent.http.component.HttpComponent.quick`), runs on the server's thread itself.

The guest must set its response within ``firstByteTimeout`` (else 504) and
finish within ``requestTimeout`` (408 while the body was still coming, 504 after). A trap answers 500
with the incident id. Every answer is counted in ``neon_http_requests_total{app,component,route,code}``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.http.answers import abort, copy_headers, end_body, text
from agent.http.bridge import ResponseBridge, StreamedBody, body_cut, no_start
from agent.http.component import HttpComponent, Outcome, status_for
from agent.http.handed import serve_handed_over
from agent.http.handover import Handover
from agent.http.messages import IncomingRequest
from agent.http.streams import Buffered
from neon._proto import dataplane_pb2
from neon.errors import ComponentError, InvalidArgument
from neon.observe import log
from neon.observe.metrics import Registry
from neon.routes import Route, best, parse_route

_log = log.get("neon.agent.http")
_PARSER_LOG = logging.getLogger("neon.agent.http.parser")
_PARSER_LOG.setLevel(logging.CRITICAL)

BUFFERED = 64 << 10  # a body announced at most this long is read whole before the guest starts
PARSER_LIMIT = 64 << 10  # the longest request line or header field the parser takes (else 400)
WORKERS = 32
Key = tuple[str, str]


class FrontDoor:
    """The routes of this node's HTTP components, and the server that serves them."""

    def __init__(self, node: str, registry: Registry, workers: int = WORKERS) -> None:
        self.node = node
        self.components: dict[Key, HttpComponent] = {}
        self._routes: list[tuple[Route, tuple[HttpComponent, str]]] = []
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="http")
        self.requests = registry.counter(
            "neon_http_requests_total",
            "HTTP requests answered at this node's front door, by route and status code",
            ("app", "component", "route", "code"),
        )
        self.duration = registry.histogram(
            "neon_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response",
            ("app", "component", "route"),
        )
        self.unrouted = registry.counter(
            "neon_http_unrouted_total", "Requests no route of this node matched (answered 404)"
        )
        self.handover = Handover(node)  # the cluster's routes, for requests this node does not serve
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.inlined = 0  # requests run on the server's own thread (quick components, body in hand)
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------------------------ routes --

    def install(self, component: HttpComponent) -> HttpComponent | None:
        """Serve ``component``'s routes (replacing the same component's earlier version); returns the old."""
        key = (component.app, component.name)
        old = self.components.get(key)
        self.components[key] = component
        self._rebuild()
        return old

    def remove(self, app: str, name: str) -> HttpComponent | None:
        old = self.components.pop((app, name), None)
        self._rebuild()
        return old

    def _rebuild(self) -> None:
        self._routes = [
            (parse_route(text, "route"), (comp, text)) for comp in self.components.values() for text in comp.spec.routes
        ]

    # ------------------------------------------------------------------------------ server --

    async def start(self, listen: str, tls: ssl.SSLContext | None = None) -> int:
        """Serve on ``listen`` (``host:port``, port 0 for any) from the front door's own thread; the bound port."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_serve_until_stopped, args=(self._loop,), name="front-door", daemon=True)
        self._thread.start()
        try:
            return int(await self._on_door_loop(self._open(listen, tls)))
        except BaseException:
            await self.stop()
            raise

    async def _on_door_loop(self, coro: Any) -> Any:
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def _open(self, listen: str, tls: ssl.SSLContext | None) -> int:
        server = web.Server(
            self._handle,
            max_line_size=PARSER_LIMIT,
            max_field_size=PARSER_LIMIT,
            max_headers=256,
            logger=_PARSER_LOG,  # malformed requests are the clients' fault: answered 400, not logged as errors
        )
        self._runner = web.ServerRunner(server, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, _, port = listen.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]") or "0.0.0.0", int(port), ssl_context=tls, reuse_address=True)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"{'https' if tls else 'http'}://{host or '0.0.0.0'}:{bound}"
        _log.info("front door serving", url=self.url)
        return int(bound)

    async def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            if self._runner is not None:
                await self._on_door_loop(self._runner.cleanup())
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join)  # the thread closes the loop
            self._loop = self._thread = self._runner = None
        for comp in self.components.values():
            comp.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------ a request --

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        found = best(self._routes, request.host, request.path_qs)
        if found is None:
            target = self.handover.target(request.host, request.path_qs)
            if target is None:
                self.unrouted.inc()
                return text(404, f"no route on {self.node} or elsewhere in the cluster matches {request.path}\n")
            handed = await self.handover.forward(request, target, self.executor)
            self._count(target.app, target.component, target.route, handed.status, started)
            return handed
        comp, route = found
        response = await self._serve(comp, request, started)
        self._count(comp.app, comp.name, route, response.status, started)
        return response

    def _count(self, app: str, component: str, route: str, status: int, started: float) -> None:
        self.requests.inc(app, component, route, str(status))
        self.duration.observe(time.monotonic() - started, app, component, route)

    def serve_handed_over(self, frames: Iterator[dataplane_pb2.HttpFrame]) -> Iterator[dataplane_pb2.HttpFrame]:
        """A request another node's front door handed here (in a data-plane thread): its response's frames."""
        started = time.monotonic()
        first = next(frames, None)
        if first is None or first.WhichOneof("frame") != "request":
            raise InvalidArgument("a handed-over request starts with its head (an HttpRequest frame)", field="frame")
        head, status = first.request, 0
        try:
            for frame in serve_handed_over(self.node, self.components, head, frames, self.executor):
                if frame.WhichOneof("frame") == "response":
                    status = frame.response.status
                yield frame
        finally:
            self._count(head.app, head.component, f"(handed over by {head.via})", status, started)

    async def _serve(self, comp: HttpComponent, request: web.BaseRequest, started: float) -> web.StreamResponse:
        spec = comp.spec
        length = request.content_length
        refused = comp.too_large(length)
        if refused is not None:
            return text(413, f"{refused}\n")
        header_bytes = len(request.raw_path) + sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
        if header_bytes > spec.max_header_bytes:
            return text(
                431, f"the request line and headers are {header_bytes} bytes; the limit is {spec.max_header_bytes}\n"
            )
        if not comp.admit():
            return text(503, f"{comp.busy(self.node)}\n", retry=1)
        admitted = True
        try:
            loop = asyncio.get_running_loop()
            deadline = started + spec.request_timeout
            source: Any
            if not request.body_exists:
                source = Buffered(b"")
            elif length is not None and length <= BUFFERED:
                try:
                    body = await asyncio.wait_for(request.read(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    return text(408, "the request body did not arrive in time\n")
                source = Buffered(body)
            else:
                source = StreamedBody(loop, request.content, spec.max_body_bytes, deadline)
            incoming = IncomingRequest(
                method=request.method,
                path_with_query=request.raw_path,
                headers=[(k.decode("latin-1"), v) for k, v in request.raw_headers],
                source=source,
                scheme="https" if request.secure else "http",
                authority=request.host,
            )
            inline = isinstance(source, Buffered) and comp.quick()
            self.inlined += inline
            bridge = ResponseBridge(loop, deadline, inline)

            def run() -> None:
                try:
                    outcome = comp.run(incoming, bridge, inline)
                except Exception as err:  # noqa: BLE001 - the agent's own failure: 503, with the reason
                    _log.warning("request failed", component=comp.label, error=str(err))
                    outcome = Outcome(answered=False, error=ComponentError(str(err), component=comp.label))
                finally:
                    comp.release()
                bridge.done(outcome)

            admitted = False  # run() releases the slot when the guest is done
            if inline:
                run()
            else:
                loop.run_in_executor(self.executor, run)
            return await _respond(request, bridge, spec.first_byte_timeout, deadline, source, comp.label)
        finally:
            if admitted:
                comp.release()


async def _respond(
    request: web.BaseRequest, bridge: ResponseBridge, first_byte: float, deadline: float, source: Any, label: str
) -> web.StreamResponse:
    """Turn the guest's events into the response."""
    try:
        event = bridge.ready() or await bridge.next(min(first_byte, deadline - time.monotonic()))
    except TimeoutError:
        bridge.close()
        code, reason = no_start(source, label, first_byte)
        return text(code, f"{reason}\n")
    cut = _cut_short(source)  # the body broke a limit: what the guest answered to a partial body is not sent
    if event[0] != "start" or cut is not None:
        bridge.close()
        if cut is not None:
            return cut
        if event[0] == "fail":
            return text(500, f"{label}: {event[1]}\n")
        code, reason = status_for(event[1])
        return text(code, f"{reason}\n")
    _, status, headers = event
    chunks: list[bytes] = []
    ended = returned = False
    trailers: list[tuple[str, bytes]] = []
    while not ended and (more := bridge.ready()) is not None:  # small responses go out whole
        if more[0] == "data":
            chunks.append(more[1])
            bridge.taken()
        elif more[0] == "end":
            ended, trailers = True, more[1] or []
        elif more[0] == "done":
            returned = True
            break
    if ended and not trailers and _cut_short(source) is None:
        response = web.Response(status=status, body=b"".join(chunks))
        copy_headers(response, headers)
        bridge.close()
        return response
    streamed = web.StreamResponse(status=status)
    copy_headers(streamed, headers)
    writer = await streamed.prepare(request)
    assert writer is not None
    for chunk in chunks:
        await streamed.write(chunk)
    if ended and _cut_short(source) is None:  # whole, with trailers
        await end_body(streamed, writer, trailers)
        bridge.close()
        return streamed
    if returned or ended:  # the guest returned without finishing its body, or broke a limit: cut off
        bridge.close()
        abort(request)
        return streamed
    while True:
        try:
            event = await bridge.next(deadline - time.monotonic())
        except TimeoutError:
            bridge.close()
            abort(request)
            return streamed
        if event[0] == "data":
            await streamed.write(event[1])
            bridge.taken()
        elif event[0] == "end" and _cut_short(source) is None:
            await end_body(streamed, writer, event[1] or [])
            bridge.close()
            return streamed
        else:  # the guest trapped or returned before finishing its body: the response is cut off
            bridge.close()
            abort(request)
            return streamed


def _serve_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    """The front door's thread: its loop until stopped, then what is left on it cancelled (a guest's read of a
    body it never got to) before the loop closes."""
    asyncio.set_event_loop(loop)
    loop.run_forever()
    try:
        loop.run_until_complete(asyncio.sleep(0))  # callbacks scheduled from guests' threads become tasks
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    finally:
        loop.close()


def https_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Serve HTTPS with ``cert`` (a PEM chain) and ``key``; clients present no certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _cut_short(source: Any) -> web.Response | None:
    cut = body_cut(source)
    return None if cut is None else text(cut[0], f"{cut[1]}\n")
