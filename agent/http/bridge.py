"""Between the front door's event loop and the thread that runs a guest: the request body pulled from the
connection as the guest reads it (:class:`StreamedBody`), and the response pushed to the connection as
the guest writes it (:class:`ResponseBridge`). Both bound what is in flight, so a slow client slows the
guest and never fills memory; both stop at the request's deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from agent.http.messages import ResponseClosed

CHUNK = 64 << 10
IN_FLIGHT = 4  # response chunks written by the guest and not yet taken by the connection
INLINE_LIMIT = 16 << 20  # bytes a guest running on the event loop's own thread may write (nothing drains it)


class PulledBody:
    """A request body pulled chunk by chunk as the guest reads it (an :class:`agent.http.streams.Source`): what
    came and was not read yet, and why it stopped early (``too_large``: 413; ``timed_out``: 408). A subclass says
    how the next chunk comes (:meth:`_fetch`, feeding :meth:`_took`)."""

    def __init__(self, limit: int, deadline: float, first: bytes = b"") -> None:
        self.limit = limit
        self.deadline = deadline  # time.monotonic() by which the whole request must be in
        self.pending = first
        self.received = len(first)
        self.eof = False
        self.too_large = self.received > limit
        self.timed_out = False

    def read(self, n: int, wait: bool) -> bytes | None:
        if not self.pending and not self.eof:
            self._fetch(wait)
        if self.pending:
            chunk, self.pending = self.pending[:n], self.pending[n:]
            return chunk
        return None if self.eof else b""

    def ready(self) -> bool:
        return bool(self.pending) or self.eof

    def wait(self) -> None:
        if not self.pending and not self.eof:
            self._fetch(True)

    def _fetch(self, wait: bool) -> None:
        """Take the next chunk into :meth:`_took` (when ``wait``, until it comes or the deadline passes)."""
        raise NotImplementedError

    def _took(self, chunk: bytes) -> None:
        if not chunk:
            self.eof = True
            return
        self.received += len(chunk)
        if self.received > self.limit:
            self._stop("too_large")
            return
        self.pending += chunk

    def _stop(self, why: str = "") -> None:
        if why:
            setattr(self, why, True)  # too_large or timed_out: the answer is 413 or 408
        self.eof = True
        self.pending = b""


def body_cut(source: Any) -> tuple[int, str] | None:
    """The answer owed instead of the guest's when the request body broke a limit (what the guest answered to a
    partial body is not sent): 413 or 408; None when it broke none."""
    if getattr(source, "too_large", False):
        return 413, "the request body is larger than the component takes"
    if getattr(source, "timed_out", False):
        return 408, "the request body did not arrive in time"
    return None


def no_start(source: Any, label: str, first_byte: float) -> tuple[int, str]:
    """The answer when the guest started no response in time: 408 when the client is slow (its body still
    coming), else 504."""
    if getattr(source, "timed_out", False) or not getattr(source, "eof", True):
        return 408, "the request body did not arrive in time"
    return 504, f"{label} did not start its response within {first_byte:g}s"


class StreamedBody(PulledBody):
    """A request body read from the client's connection on demand."""

    def __init__(self, loop: asyncio.AbstractEventLoop, content: Any, limit: int, deadline: float) -> None:
        super().__init__(limit, deadline)
        self.loop = loop
        self.content = content  # aiohttp's StreamReader

    def _fetch(self, wait: bool) -> None:
        if not wait:
            return  # nothing can be read without waiting for the event loop
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._stop("timed_out")
            return
        if not self.loop.is_running():  # the front door is stopping: the body ends here
            self._stop()
            return
        reading = self.content.readany()
        try:
            future = asyncio.run_coroutine_threadsafe(reading, self.loop)
        except RuntimeError:  # the loop closed in between: the read never starts (and is not left unawaited)
            reading.close()
            self._stop()
            return
        try:
            data = future.result(remaining)
        except FutureTimeout:
            future.cancel()
            self._stop("timed_out")
            return
        except Exception:  # noqa: BLE001 - the client went away mid-body: the guest sees the body end
            self._stop()
            return
        self._took(data)


class Responses:
    """A :class:`agent.http.messages.Responder` turning what a guest answers into events for whoever sends them
    on: ``("start", status, headers)``, ``("data", chunk)``, ``("end", trailers)``, ``("fail", reason)`` and,
    when the guest's call returned, ``("done", outcome)``. Writes go out in chunks of :data:`CHUNK`, at most
    :data:`IN_FLIGHT` of them not yet taken (:meth:`taken`), so a slow receiver slows the guest."""

    receiver = "the client"  # who takes the response, in the reasons a guest's write is refused

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.buffer = bytearray()
        self.credits = threading.Semaphore(IN_FLIGHT)
        self.closed = False  # answered already, or the receiver went away

    def _put(self, *event: Any) -> None:
        raise NotImplementedError

    def _room(self) -> None:
        """Wait until a chunk may go (or refuse it)."""
        if not self.credits.acquire(timeout=max(0.0, self.deadline - time.monotonic())):
            self.closed = True
            raise ResponseClosed(f"{self.receiver} did not take the response in time")

    # ------------------------------------------------------------------ the guest's thread --

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        if self.closed:
            raise ResponseClosed("the response was already answered")
        self._put("start", status, headers)

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ResponseClosed(f"{self.receiver} is gone or the response was already answered")
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        self._room()
        if self.closed:
            raise ResponseClosed(f"{self.receiver} is gone")
        chunk, self.buffer = bytes(self.buffer), bytearray()
        self._put("data", chunk)

    def finish(self, trailers: list[tuple[str, bytes]] | None) -> None:
        chunk, self.buffer = bytes(self.buffer), bytearray()
        if chunk:
            self._put("data", chunk)
        self._put("end", trailers)

    def fail(self, reason: str) -> None:
        self._put("fail", reason)

    def done(self, outcome: Any) -> None:
        """The guest's call returned (or trapped): the last event."""
        self._put("done", outcome)

    # ------------------------------------------------------------------------- the sender --

    def taken(self) -> None:
        """A chunk went out: the guest may write another."""
        self.credits.release()

    def close(self) -> None:
        self.closed = True
        self.credits.release()  # a guest blocked on a full pipe wakes up and sees the close


class ResponseBridge(Responses):
    """:class:`Responses` whose events the front door's event loop takes with :meth:`next`.

    ``inline``: the guest runs on the event loop's own thread, which takes the events only after it returns;
    so a write never waits for room, and a response longer than :data:`INLINE_LIMIT` is cut off."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float, inline: bool = False) -> None:
        super().__init__(deadline)
        self.loop = loop
        self.inline = inline
        self.written = 0
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def _put(self, *event: Any) -> None:
        if self.inline:
            self.events.put_nowait(event)  # this is the loop's thread
        else:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def _room(self) -> None:
        if not self.inline:
            super()._room()
            return
        self.written += len(self.buffer)
        if self.written > INLINE_LIMIT:
            self.closed = True
            raise ResponseClosed(f"the response is longer than {INLINE_LIMIT} bytes, which a quick request may send")

    async def next(self, timeout: float) -> tuple[Any, ...]:
        return await asyncio.wait_for(self.events.get(), max(0.0, timeout))

    def ready(self) -> tuple[Any, ...] | None:
        try:
            return self.events.get_nowait()
        except asyncio.QueueEmpty:
            return None
