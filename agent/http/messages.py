"""wasi:http's messages as host objects: fields (headers and trailers), the incoming request and its body,
the outgoing response and its body, and the response-outparam, tied to a :class:`Responder` that sends
what the guest writes (the front door's connection, or a buffer in tests).

The spec's rules are kept: a field name is an HTTP token and a value holds no CR, LF or NUL; hop-by-hop
fields are refused (the server frames the message); headers handed out by a request or response are
immutable; a body's stream is handed out once and must be dropped before the body is finished; a
response-outparam is set once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from wasmtime.component import Variant

from agent.http.streams import InputStream, OutputStream, Source, err, ok
from agent.runtime.glue import HostTrap

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
FORBIDDEN = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host"})
STATUS = range(100, 1000)


def header_error(name: str, value: bytes | None = None) -> Variant | None:
    """``header-error`` for a field the spec refuses, else None."""
    if not _TOKEN.match(name.encode("utf-8", "replace")):
        return Variant("invalid-syntax")
    if value is not None and any(c in value for c in b"\r\n\0"):
        return Variant("invalid-syntax")
    if name.lower() in FORBIDDEN:
        return Variant("forbidden")
    return None


class Fields:
    def __init__(self, entries: list[tuple[str, bytes]] | None = None, mutable: bool = True) -> None:
        self.entries = list(entries or [])
        self.mutable = mutable

    def get(self, name: str) -> list[bytes]:
        key = name.lower()
        return [v for k, v in self.entries if k.lower() == key]

    def set(self, name: str, values: list[bytes]) -> Variant:
        refused = self._refused(name, values)
        if refused is not None:
            return refused
        key = name.lower()
        self.entries = [(k, v) for k, v in self.entries if k.lower() != key] + [(name, v) for v in values]
        return ok()

    def delete(self, name: str) -> Variant:
        refused = self._refused(name, [])
        if refused is not None:
            return refused
        key = name.lower()
        self.entries = [(k, v) for k, v in self.entries if k.lower() != key]
        return ok()

    def append(self, name: str, value: bytes) -> Variant:
        refused = self._refused(name, [value])
        if refused is not None:
            return refused
        self.entries.append((name, value))
        return ok()

    def frozen(self) -> Fields:
        return Fields(self.entries, mutable=False)

    def _refused(self, name: str, values: list[bytes]) -> Variant | None:
        if not self.mutable:
            return err(Variant("immutable"))
        for value in values or [None]:  # type: ignore[list-item]
            problem = header_error(name, value)
            if problem is not None:
                return err(problem)
        return None

    @classmethod
    def from_list(cls, entries: list[tuple[str, bytes]]) -> Variant:
        for name, value in entries:
            problem = header_error(name, value)
            if problem is not None:
                return err(problem)
        return ok(cls(entries))


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def method_variant(method: str) -> Variant:
    """wasi:http's ``method`` for an HTTP method name."""
    return Variant(method.lower()) if method in METHODS else Variant("other", method)


def scheme_variant(scheme: str) -> Variant:
    """wasi:http's ``scheme`` for a URL scheme."""
    return Variant("HTTPS") if scheme == "https" else Variant("HTTP") if scheme == "http" else Variant("other", scheme)


class ResponseClosed(ConnectionError):
    """The response can take no more: the client went away, or the front door answered already."""


class Responder(Protocol):
    """Where a response goes. ``write`` and ``flush`` may block the guest's thread (backpressure)."""

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None: ...
    def write(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def finish(self, trailers: list[tuple[str, bytes]] | None) -> None: ...
    def fail(self, reason: str) -> None: ...


@dataclass
class IncomingRequest:
    method: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    source: Source
    scheme: str = "http"
    authority: str = ""
    consumed: bool = False

    def consume(self) -> Variant:
        if self.consumed:
            return err()
        self.consumed = True
        return ok(IncomingBody(self.source))


@dataclass
class IncomingBody:
    source: Source
    stream_taken: bool = False
    stream_open: bool = False

    def stream(self) -> Variant:
        if self.stream_taken:
            return err()
        self.stream_taken = self.stream_open = True
        return ok(InputStream(self.source, parent=self))

    def finish(self) -> FutureTrailers:
        if self.stream_open:
            raise HostTrap("incoming-body.finish while its input-stream is alive (drop the stream first)")
        return FutureTrailers()


@dataclass
class FutureTrailers:
    taken: bool = False

    def get(self) -> Any:
        # option<result<result<option<trailers>, error-code>>>: the trailers once, then err
        if self.taken:
            return err()
        self.taken = True
        return ok(ok(None))


@dataclass
class OutgoingBody:
    """A response's body: what is written before the response is set is kept, then sent."""

    responder: Responder | None = None
    pending: list[bytes] = field(default_factory=list)
    stream_taken: bool = False
    stream_open: bool = False
    finished: bool = False
    trailers: list[tuple[str, bytes]] | None = None

    def write(self) -> Variant:
        if self.stream_taken:
            return err()
        self.stream_taken = self.stream_open = True
        return ok(OutputStream(self._sink, self._flush, parent=self))

    def _sink(self, data: bytes) -> None:
        if self.responder is None:
            self.pending.append(data)
        else:
            self.responder.write(data)

    def _flush(self) -> None:
        if self.responder is not None:
            self.responder.flush()

    def attach(self, responder: Responder) -> None:
        self.responder = responder
        for chunk in self.pending:
            responder.write(chunk)
        self.pending = []
        if self.finished:
            responder.finish(self.trailers)

    def finish(self, trailers: Fields | None) -> Variant:
        if self.stream_open:
            raise HostTrap("outgoing-body.finish while its output-stream is alive (drop the stream first)")
        if self.finished:
            raise HostTrap("outgoing-body.finish called twice")
        self.finished = True
        self.trailers = list(trailers.entries) if trailers is not None else None
        if self.responder is not None:
            self.responder.finish(self.trailers)
        return ok()


@dataclass
class OutgoingResponse:
    headers: Fields
    status: int = 200
    body: OutgoingBody | None = None

    def set_status(self, code: int) -> Variant:
        if code not in STATUS:
            return err()
        self.status = code
        return ok()

    def take_body(self) -> Variant:
        if self.body is not None:
            return err()
        self.body = OutgoingBody()
        return ok(self.body)


@dataclass
class ResponseOutparam:
    responder: Responder
    set: bool = False

    def answer(self, response: Variant) -> None:
        if self.set:
            raise HostTrap("response-outparam.set called twice")
        self.set = True
        if response.tag != "ok":
            self.responder.fail(f"the component answered with an error: {_describe(response.payload)}")
            return
        answer = response.payload
        if not isinstance(answer, OutgoingResponse):
            raise HostTrap("response-outparam.set was given no response")
        self.responder.start(answer.status, list(answer.headers.entries))
        if answer.body is None:
            self.responder.finish(None)  # no body was asked for: the response is complete
        else:
            answer.body.attach(self.responder)


def _describe(code: Any) -> str:
    if isinstance(code, Variant):
        return code.tag + (f" ({code.payload})" if code.payload is not None else "")
    return str(code)
