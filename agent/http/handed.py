"""Requests another node's front door handed here over the data plane, served by this node's instance of the
route's component, both bodies streamed: the request body is read from the call's frames as the guest reads it,
the response goes back in frames as the guest writes it. Each side holds at most a few chunks, so a body of any
size passes through in bounded memory, and a slow side slows the other (gRPC's flow control carries it on).

The guest runs in a worker thread of the front door; the call's thread sends what the guest writes. The limits
are the component's own, as at its own front door: body size (413), time for the body to arrive (408), time to
the response's first byte (504) and for the whole request, requests at once (503). A response cut off after its
head ends the call with an error, so the front door that handed it over cuts its client off too.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

from agent.http.bridge import CHUNK, IN_FLIGHT, PulledBody, Responses, body_cut, no_start
from agent.http.component import HttpComponent, Outcome, status_for
from agent.http.messages import IncomingRequest
from agent.http.streams import Buffered
from neon._proto import dataplane_pb2 as pb
from neon.errors import ComponentError, NotRunning

Frame = pb.HttpFrame


def headers_of(pairs: Any) -> list[pb.HttpHeader]:
    return [pb.HttpHeader(name=name, value=value) for name, value in pairs]


class FrameSource(PulledBody):
    """A request body arriving in the call's frames. A thread of its own takes the frames, at most
    :data:`IN_FLIGHT` chunks ahead of the guest, so that a guest's read can wait with the request's deadline (a
    gRPC iterator's own wait has none)."""

    def __init__(self, first: bytes, frames: Iterator[Frame], limit: int, deadline: float) -> None:
        super().__init__(limit, deadline, first)
        self.broken = False  # the frames stopped without an end (the other node went away, or sent garbage)
        self.trailers: list[tuple[str, bytes]] = []
        self._chunks: queue.Queue[bytes] = queue.Queue(IN_FLIGHT)
        self._stopped = threading.Event()
        self._reader = threading.Thread(target=self._take, args=(frames,), name="handover-body", daemon=True)
        self._reader.start()

    def _take(self, frames: Iterator[Frame]) -> None:
        ended = False
        try:
            for frame in frames:
                kind = frame.WhichOneof("frame")
                if kind == "data":
                    if frame.data and not self._put(frame.data):
                        return
                elif kind == "end":
                    self.trailers = [(h.name, h.value) for h in frame.end.trailers]
                    ended = True
                    break
        except Exception:  # noqa: BLE001 - the call ended (the other side went away) or a frame was garbage
            pass
        self.broken = not ended  # a body cut off is not taken for a whole one: the answer is 400
        self._put(b"")  # the end

    def _put(self, chunk: bytes) -> bool:
        while not self._stopped.is_set():
            try:
                self._chunks.put(chunk, timeout=0.5)
                return True
            except queue.Full:
                continue  # the guest is slow to read: wait (the call's deadline ends the frames otherwise)
        return False

    def ready(self) -> bool:
        return super().ready() or not self._chunks.empty()

    def _fetch(self, wait: bool) -> None:
        try:
            if wait:
                chunk = self._chunks.get(timeout=max(0.0, self.deadline - time.monotonic()))
            else:
                chunk = self._chunks.get_nowait()
        except queue.Empty:
            if wait:
                self._stop("timed_out")
            return
        self._took(chunk)

    def _stop(self, why: str = "") -> None:
        super()._stop(why)
        self._stopped.set()  # the reader thread ends

    def close(self) -> None:
        """Read no more (the guest is done); the reader thread ends."""
        self._stop()


class FrameResponder(Responses):
    """:class:`agent.http.bridge.Responses` whose events the call's thread takes with :meth:`next`."""

    receiver = "the node that handed the request over"

    def __init__(self, deadline: float) -> None:
        super().__init__(deadline)
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()

    def _put(self, *event: Any) -> None:
        self.events.put(event)

    def next(self, timeout: float) -> tuple[Any, ...] | None:
        try:
            return self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def ready(self) -> tuple[Any, ...] | None:
        try:
            return self.events.get_nowait()
        except queue.Empty:
            return None


def answer(node: str, status: int, text: str) -> Iterator[Frame]:
    """The node's own short answer, in frames."""
    head = pb.HttpResponse(
        status=status,
        headers=headers_of([("content-type", b"text/plain; charset=utf-8")]),
        body=(text + "\n").encode(),
        served_by=node,
    )
    yield Frame(response=head)
    yield Frame(end=pb.HttpEnd())


def serve_handed_over(
    node: str,
    components: dict[tuple[str, str], HttpComponent],
    request: pb.HttpRequest,
    frames: Iterator[Frame],
    executor: Executor,
) -> Iterator[Frame]:
    """Serve ``request`` (its head; its body's frames follow in ``frames`` unless it is whole), which another
    node's front door handed here; the response's frames."""
    comp = components.get((request.app, request.component))
    if comp is None:
        raise NotRunning(
            f"{request.app}/{request.component} serves no HTTP on node {node}",
            app=request.app,
            component=request.component,
            node=node,
        )
    spec = comp.spec
    length = request.content_length if request.HasField("content_length") else None
    refused = comp.too_large(len(request.body) if request.whole else length)
    if refused is not None:
        yield from answer(node, 413, refused)
        return
    if not comp.admit():
        yield from answer(node, 503, comp.busy(node))
        return
    started = time.monotonic()
    deadline = started + spec.request_timeout
    source: Buffered | FrameSource
    source = (
        Buffered(request.body) if request.whole else FrameSource(request.body, frames, spec.max_body_bytes, deadline)
    )
    responder = FrameResponder(deadline)
    incoming = IncomingRequest(
        method=request.method,
        path_with_query=request.path_with_query,
        headers=[(h.name, h.value) for h in request.headers],
        source=source,
        scheme=request.scheme or "http",
        authority=request.authority,
    )

    def run() -> None:
        try:
            outcome = comp.run(incoming, responder)
        except Exception as err:  # noqa: BLE001 - the agent's own failure: 500, with the reason
            outcome = Outcome(answered=False, error=ComponentError(str(err), component=comp.label))
        finally:
            comp.release()
        responder.done(outcome)

    try:
        executor.submit(run)
    except RuntimeError:  # the front door is stopping
        comp.release()
        yield from answer(node, 503, f"{comp.label} is stopping on {node}")
        return
    try:
        yield from _frames(node, comp, responder, source)
    finally:
        responder.close()
        if isinstance(source, FrameSource):
            source.close()


def _frames(node: str, comp: HttpComponent, responder: FrameResponder, source: Any) -> Iterator[Frame]:
    spec = comp.spec
    event = responder.next(min(spec.first_byte_timeout, responder.deadline - time.monotonic()))
    if event is None:
        yield from answer(node, *no_start(source, comp.label, spec.first_byte_timeout))
        return
    if (cut := body_cut(source)) is not None:
        yield from answer(node, *cut)
        return
    if getattr(source, "broken", False):
        yield from answer(node, 400, f"the request body handed over to {node} broke off")
        return
    if event[0] == "fail":
        yield from answer(node, 500, f"{comp.label}: {event[1]}")
        return
    if event[0] == "done":
        code, reason = status_for(event[1])
        yield from answer(node, code, reason)
        return
    head = pb.HttpResponse(status=event[1], headers=headers_of(event[2]), served_by=node)
    while (event := responder.ready()) is not None and event[0] == "data":  # what is written already goes along
        head.body += event[1]
        responder.taken()
    yield Frame(response=head)
    while True:
        if event is None:
            event = responder.next(responder.deadline - time.monotonic())
            if event is None:
                raise ComponentError(
                    f"{comp.label} did not finish its response within {spec.request_timeout:g}s", component=comp.label
                )
        if event[0] == "data":
            data = event[1]
            responder.taken()
            while len(data) < CHUNK and (event := responder.ready()) is not None and event[0] == "data":
                data += event[1]  # a guest flushing small writes: sent in fewer, larger frames
                responder.taken()
            yield Frame(data=data)
            if event is not None and event[0] != "data":
                continue  # the event taken after the data is handled next
        elif event[0] == "end":
            yield Frame(end=pb.HttpEnd(trailers=headers_of(event[1] or [])))
            return
        else:  # the guest trapped or returned before finishing its body: the response is cut off
            raise ComponentError(f"{comp.label} did not finish its response", component=comp.label)
        event = None
