"""Requests a front door cannot serve itself, handed over the data plane to a node that runs the route's
component (the nearest by measured round trip first), and requests handed here, served by this node's
instance of the component.

The cluster's route table comes from the control plane with the heartbeats. A handed-over request travels
whole (its body read first, at most :data:`HANDOVER_MAX` bytes) and its response comes back whole; the
answer says which node served it (``Via``). When no node runs the route's component, the answer is 503
naming the route and the component.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import NamedTuple

import grpc
from aiohttp import web

from agent.http.answers import copy_headers, text
from agent.http.component import HttpComponent, status_for
from agent.http.messages import IncomingRequest
from agent.http.streams import Buffered
from neon._proto import dataplane_pb2
from neon.errors import NeonGridError, NotRunning, from_rpc_error
from neon.routes import Route, best, parse_route

HANDOVER_MAX = 16 << 20
HANDOVER_TIMEOUT = 60.0
Send = Callable[[str, dataplane_pb2.HttpRequest, float], dataplane_pb2.HttpResponse]


class RouteTarget(NamedTuple):
    route: str
    app: str
    component: str
    nodes: tuple[str, ...]
    endpoints: tuple[str, ...]


class Handover:
    """The cluster's routes as this node knows them, and the way to the nodes that serve them."""

    def __init__(self, node: str, send: Send | None = None, rtt: Callable[[str], float | None] | None = None):
        self.node = node
        self.send = send
        self.rtt = rtt or (lambda _node: None)
        self._routes: list[tuple[Route, RouteTarget]] = []

    def set_routes(self, targets: Iterable[RouteTarget]) -> None:
        self._routes = [(parse_route(t.route, "route"), t) for t in targets]

    def target(self, host: str, path: str) -> RouteTarget | None:
        return best(self._routes, host, path)

    def order(self, target: RouteTarget) -> list[tuple[str, str]]:
        """(node, endpoint) of the other nodes running it, nearest first (unmeasured ones last)."""
        others = [(n, e) for n, e in zip(target.nodes, target.endpoints, strict=True) if n != self.node]
        return sorted(others, key=lambda ne: (self.rtt(ne[0]) is None, self.rtt(ne[0]) or 0.0, ne[0]))

    async def forward(self, request: web.BaseRequest, target: RouteTarget, executor: Executor) -> web.Response:
        """Hand ``request`` to a node running ``target``'s component; its answer, or why there is none."""
        where = self.order(target)
        if not where or self.send is None:
            return text(
                503, f"{target.route} is served by {target.app}/{target.component}, which runs on no node now\n"
            )
        length = request.content_length
        if length is not None and length > HANDOVER_MAX:
            return text(413, f"a request handed to another node may carry at most {HANDOVER_MAX} bytes\n")
        body = await request.read()  # aiohttp's own client_max_size bounds an unannounced body
        message = dataplane_pb2.HttpRequest(
            app=target.app,
            component=target.component,
            method=request.method,
            path_with_query=request.raw_path,
            headers=[dataplane_pb2.HttpHeader(name=k.decode("latin-1"), value=v) for k, v in request.raw_headers],
            body=body,
            authority=request.host,
            scheme="https" if request.secure else "http",
            via=self.node,
        )
        loop = asyncio.get_running_loop()
        failures = []
        for node, endpoint in where:
            try:
                answer = await loop.run_in_executor(executor, self.send, endpoint, message, HANDOVER_TIMEOUT)
            except grpc.RpcError as err:
                failures.append(f"{node}: {from_rpc_error(err).message}")
                continue
            response = web.Response(status=answer.status, body=answer.body)
            copy_headers(response, ((h.name, h.value) for h in answer.headers))
            response.headers.add("Via", f"1.1 {answer.served_by or node}")
            return response
        return text(502, f"no node serving {target.app}/{target.component} answered: {'; '.join(failures)}\n")


class _Collect:
    """A responder that keeps the whole response, for a handed-over request."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, bytes]] = []
        self.body = bytearray()
        self.finished = False
        self.failure = ""

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        self.status, self.headers = status, headers

    def write(self, data: bytes) -> None:
        self.body += data

    def flush(self) -> None:
        return None

    def finish(self, trailers: list[tuple[str, bytes]] | None) -> None:
        self.finished = True

    def fail(self, reason: str) -> None:
        self.failure = reason


def serve_handed_over(
    node: str, components: dict[tuple[str, str], HttpComponent], request: dataplane_pb2.HttpRequest
) -> dataplane_pb2.HttpResponse:
    """Serve a request another node's front door handed here, whole, in the calling (gRPC) thread."""
    comp = components.get((request.app, request.component))
    if comp is None:
        raise NotRunning(
            f"{request.app}/{request.component} serves no HTTP on node {node}",
            app=request.app,
            component=request.component,
            node=node,
        )
    spec = comp.spec
    refused = comp.too_large(len(request.body))
    if refused is not None:
        return _answer(node, 413, refused)
    if not comp.admit():
        return _answer(node, 503, comp.busy(node))
    started = time.monotonic()
    collected = _Collect()
    try:
        incoming = IncomingRequest(
            method=request.method,
            path_with_query=request.path_with_query,
            headers=[(h.name, h.value) for h in request.headers],
            source=Buffered(request.body),
            scheme=request.scheme or "http",
            authority=request.authority,
        )
        try:
            outcome = comp.run(incoming, collected)
        except NeonGridError as err:
            return _answer(node, 500, f"{comp.label}: {err.message}")
    finally:
        comp.release()
    if collected.failure:
        return _answer(node, 500, f"{comp.label}: {collected.failure}")
    if not collected.status or not collected.finished or outcome.error is not None:
        code, reason = status_for(outcome)
        return _answer(node, code, reason)
    if time.monotonic() - started > spec.request_timeout:
        return _answer(node, 504, f"{comp.label} took longer than {spec.request_timeout:g}s")
    return dataplane_pb2.HttpResponse(
        status=collected.status,
        headers=[dataplane_pb2.HttpHeader(name=k, value=v) for k, v in collected.headers],
        body=bytes(collected.body),
        served_by=node,
    )


def _answer(node: str, status: int, text: str) -> dataplane_pb2.HttpResponse:
    return dataplane_pb2.HttpResponse(
        status=status,
        headers=[dataplane_pb2.HttpHeader(name="content-type", value=b"text/plain; charset=utf-8")],
        body=(text + "\n").encode(),
        served_by=node,
    )
