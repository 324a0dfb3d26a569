"""Requests a front door cannot serve itself, handed over the data plane to a node that runs the route's
component, the nearest by measured round trip first.

The cluster's route table comes from the control plane with the heartbeats. Both bodies stream through the
call (:mod:`agent.http.handed` serves it on the other side): a request body announced at most :data:`WHOLE`
bytes long is read first and travels in the call's first frame, so that when that node cannot be reached the
request goes to the next one; a longer or unannounced body is read from the connection as the other node's
guest reads it, so it goes to the nearest node only. The response is relayed as it comes, with its trailers;
the answer says which node served it (``Via``). When no node runs the route's component, the answer is 503
naming the route and the component; when none answers, 502 naming each and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, NamedTuple

import grpc
from aiohttp import web

from agent.http.answers import abort, copy_headers, end_body, text
from neon._proto import dataplane_pb2 as pb
from neon.errors import from_rpc_error
from neon.routes import Route, best, parse_route

WHOLE = 64 << 10  # a body announced at most this long is read before it is handed over
HANDOVER_TIMEOUT = 60.0
Open = Callable[[str, Iterator[pb.HttpFrame], float], Iterator[pb.HttpFrame]]


class RouteTarget(NamedTuple):
    route: str
    app: str
    component: str
    nodes: tuple[str, ...]
    endpoints: tuple[str, ...]


class Handover:
    """The cluster's routes as this node knows them, and the way to the nodes that serve them."""

    def __init__(self, node: str, open: Open | None = None, rtt: Callable[[str], float | None] | None = None):
        self.node = node
        self.open = open
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

    async def forward(self, request: web.BaseRequest, target: RouteTarget, executor: Executor) -> web.StreamResponse:
        """Hand ``request`` to a node running ``target``'s component; its answer, or why there is none."""
        where = self.order(target)
        if not where or self.open is None:
            return text(
                503, f"{target.route} is served by {target.app}/{target.component}, which runs on no node now\n"
            )
        head = pb.HttpRequest(
            app=target.app,
            component=target.component,
            method=request.method,
            path_with_query=request.raw_path,
            headers=[pb.HttpHeader(name=k.decode("latin-1"), value=v) for k, v in request.raw_headers],
            authority=request.host,
            scheme="https" if request.secure else "http",
            via=self.node,
        )
        length = request.content_length
        if length is not None:
            head.content_length = length
        if not request.body_exists:
            head.whole = True
        elif length is not None and length <= WHOLE:
            head.body, head.whole = await request.read(), True
        loop = asyncio.get_running_loop()
        frames = RequestFrames(loop, head, request.content, time.monotonic() + HANDOVER_TIMEOUT)
        failures: list[str] = []
        try:
            for node, endpoint in where:
                if failures and not head.whole:
                    break  # the body went to the nearest node as it came: it cannot go to another
                try:
                    responses = self.open(endpoint, iter(frames), HANDOVER_TIMEOUT)
                    first = await loop.run_in_executor(executor, next, responses, None)
                except grpc.RpcError as err:
                    failures.append(f"{node}: {from_rpc_error(err).message}")
                    continue
                if first is None or first.WhichOneof("frame") != "response":
                    failures.append(f"{node}: no response")
                    continue
                return await relay(
                    request, first.response, responses, executor, f"1.1 {first.response.served_by or node}"
                )
        finally:
            frames.close()
        return text(502, f"no node serving {target.app}/{target.component} answered: {'; '.join(failures)}\n")


class RequestFrames:
    """A request's frames as gRPC's sending thread takes them: the head, then (unless the head holds the whole
    body) the body read from the client's connection on the front door's loop, chunk by chunk as the call takes
    them, and an end. A client too slow for the deadline, or gone, or a handover over, ends the frames without
    their end: the other node takes that for a body broken off (400), never for a whole one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, head: pb.HttpRequest, content: Any, deadline: float) -> None:
        self.loop, self.head, self.content, self.deadline = loop, head, content, deadline
        self.reading: Future[bytes] | None = None
        self.closed = False

    def __iter__(self) -> Iterator[pb.HttpFrame]:
        yield pb.HttpFrame(request=self.head)
        if self.head.whole:
            return
        while not self.closed:
            try:
                self.reading = asyncio.run_coroutine_threadsafe(self.content.readany(), self.loop)
                data = self.reading.result(max(0.0, self.deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - gone, too slow, cancelled by close(): ends without the end frame
                return
            if not data:
                yield pb.HttpFrame(end=pb.HttpEnd())
                return
            yield pb.HttpFrame(data=data)

    def close(self) -> None:
        """The handover is over: a read still waiting for the client is given up."""
        self.closed = True
        if self.reading is not None:
            self.reading.cancel()


async def relay(
    request: web.BaseRequest, head: pb.HttpResponse, frames: Iterator[pb.HttpFrame], executor: Executor, via: str
) -> web.StreamResponse:
    """Send the response another node streams back: whole when it is all in its first frames, else as it comes,
    with its trailers; a response cut off there is cut off here."""
    loop = asyncio.get_running_loop()

    async def following() -> pb.HttpFrame | None:
        try:
            return await loop.run_in_executor(executor, next, frames, None)
        except grpc.RpcError:
            return None  # the other node cut its response off

    frame = await following()
    if frame is not None and frame.WhichOneof("frame") == "end" and not frame.end.trailers:
        whole = web.Response(status=head.status, body=head.body)
        _head(whole, head, via)
        return whole
    streamed = web.StreamResponse(status=head.status)
    _head(streamed, head, via)
    writer = await streamed.prepare(request)
    assert writer is not None
    if head.body:
        await streamed.write(head.body)
    while frame is not None:
        kind = frame.WhichOneof("frame")
        if kind == "data":
            await streamed.write(frame.data)
        elif kind == "end":
            await end_body(streamed, writer, [(h.name, h.value) for h in frame.end.trailers])
            return streamed
        frame = await following()
    abort(request)
    return streamed


def _head(response: web.StreamResponse, head: pb.HttpResponse, via: str) -> None:
    copy_headers(response, ((h.name, h.value) for h in head.headers))
    response.headers.add("Via", via)
