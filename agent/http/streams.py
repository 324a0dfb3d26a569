"""wasi:io as the front door serves it: pollables, input streams fed by a request body (buffered, or
pulled from the connection as the guest reads), output streams into a response (or stdout/stderr).

A guest calls these from the thread that runs it; a stream backed by the connection blocks that thread
(never the server's event loop) until data comes or its deadline passes, which is the backpressure:
the guest reads no faster than the client sends, and a response is sent no faster than the client takes.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

from wasmtime.component import Variant

from agent.runtime.glue import HostTrap

CHUNK = 64 << 10  # what check-write offers, and the most a read hands back at once


def ok(value: Any = None) -> Variant:
    return Variant("ok", value)


def err(value: Any = None) -> Variant:
    return Variant("err", value)


CLOSED = err(Variant("closed"))


class Source(Protocol):
    """Where an input stream's bytes come from."""

    def read(self, n: int, wait: bool) -> bytes | None:
        """Up to ``n`` bytes; b"" when none are there yet and ``wait`` is False; None at the end."""

    def ready(self) -> bool:
        """Whether a read would return at once."""

    def wait(self) -> None:
        """Block until a read would return at once."""


class Buffered:
    """A body that is all here already."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def read(self, n: int, wait: bool) -> bytes | None:
        if self.pos >= len(self.data):
            return None
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += len(chunk)
        return chunk

    def ready(self) -> bool:
        return True

    def wait(self) -> None:
        return None


class Pollable:
    """Ready when ``ready()`` says so; ``block()`` waits for it (a deadline, or a source's data)."""

    def __init__(self, ready: Callable[[], bool], block: Callable[[], None], deadline_ns: int | None = None) -> None:
        self._ready = ready
        self._block = block
        self.deadline_ns = deadline_ns

    def ready(self) -> bool:
        return self._ready()

    def block(self) -> None:
        if not self._ready():
            self._block()

    @classmethod
    def now(cls) -> Pollable:
        return cls(lambda: True, lambda: None)

    @classmethod
    def at(cls, deadline_ns: int) -> Pollable:
        def ready() -> bool:
            return time.monotonic_ns() >= deadline_ns

        def block() -> None:
            delay = deadline_ns - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)

        return cls(ready, block, deadline_ns)


def poll(pollables: list[Pollable]) -> list[int]:
    """The indexes of the ready pollables, waiting for at least one (the soonest clock, or the first source)."""
    if not pollables:
        raise HostTrap("poll was given no pollables")
    while True:
        ready = [i for i, p in enumerate(pollables) if p.ready()]
        if ready:
            return ready
        timed = [p for p in pollables if p.deadline_ns is not None]
        if timed and len(timed) == len(pollables):
            min(timed, key=lambda p: p.deadline_ns or 0).block()
        else:
            # a source first; with a clock beside it, look again when the clock is due
            untimed = next(p for p in pollables if p.deadline_ns is None)
            if timed:
                soonest = min(p.deadline_ns or 0 for p in timed)
                time.sleep(max(0.0, min(0.001, (soonest - time.monotonic_ns()) / 1e9)))
            else:
                untimed.block()


class InputStream:
    def __init__(self, source: Source, parent: Any = None) -> None:
        self.source = source
        self.parent = parent  # a body: it may not be finished while this stream is alive

    def read(self, n: int, wait: bool) -> Variant:
        chunk = self.source.read(min(n, CHUNK), wait)
        return CLOSED if chunk is None else ok(chunk)

    def skip(self, n: int, wait: bool) -> Variant:
        result = self.read(n, wait)
        return ok(len(_bytes(result.payload))) if result.tag == "ok" else result

    def subscribe(self) -> Pollable:
        return Pollable(self.source.ready, self.source.wait)

    def dropped(self) -> None:
        if self.parent is not None:
            self.parent.stream_open = False


class OutputStream:
    """Bytes written go to ``sink``; ``flush`` asks it to send what it holds (and waits for room)."""

    def __init__(self, sink: Callable[[bytes], None], flush: Callable[[], None] | None = None, parent: Any = None):
        self.sink = sink
        self._flush = flush
        self.parent = parent
        self.closed = False

    def check_write(self) -> Variant:
        return CLOSED if self.closed else ok(CHUNK)

    def write(self, data: bytes) -> Variant:
        if self.closed:
            return CLOSED
        if len(data) > CHUNK:
            raise HostTrap(f"output-stream.write of {len(data)} bytes, more than check-write allowed ({CHUNK})")
        try:
            self.sink(data)
        except ConnectionError:
            self.closed = True
            return CLOSED
        return ok()

    def flush(self) -> Variant:
        if self.closed:
            return CLOSED
        if self._flush is not None:
            try:
                self._flush()
            except ConnectionError:
                self.closed = True
                return CLOSED
        return ok()

    def write_and_flush(self, data: bytes) -> Variant:
        result = self.write(data)
        return self.flush() if result.tag == "ok" else result

    def splice(self, source: InputStream, n: int, wait: bool) -> Variant:
        got = source.read(n, wait)
        if got.tag != "ok":
            return got
        data = _bytes(got.payload)
        written = self.write(data)
        return ok(len(data)) if written.tag == "ok" else written

    def subscribe(self) -> Pollable:
        return Pollable.now()

    def dropped(self) -> None:
        if self.parent is not None:
            self.parent.stream_open = False


def _bytes(value: Any) -> bytes:
    assert isinstance(value, bytes)
    return value
