"""The last lines each component wrote on this node, for ``neon logs``.

Guest stdout and stderr arrive from worker threads; so do the agent's own
notes about a component (started, trapped, denied). Each component keeps a
bounded ring; followers get new lines through an asyncio queue, dropped (with
a marker line) when they fall too far behind rather than slowing the guest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

Key = tuple[str, str]  # (app, component)
MAX_LINE = 4096  # characters kept of one line
_DROPPED = "... lines dropped: the reader fell too far behind"


@dataclass(frozen=True)
class Line:
    time: float
    stream: str  # stdout, stderr, agent
    text: str


class LogBook:
    def __init__(self, lines_per_component: int = 2000, follower_queue: int = 1000) -> None:
        self.size = lines_per_component
        self.follower_queue = follower_queue
        self._rings: dict[Key, deque[Line]] = {}
        self._followers: dict[Key, list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Line | None]]]] = {}
        self._lock = threading.Lock()

    def add(self, key: Key, stream: str, text: str) -> None:
        line = Line(time.time(), stream, text[:MAX_LINE])
        with self._lock:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = deque(maxlen=self.size)
            ring.append(line)
            followers = list(self._followers.get(key, ()))
        for loop, queue in followers:
            loop.call_soon_threadsafe(_offer, queue, line, self.follower_queue)

    def sink(self, key: Key) -> _Sink:
        return _Sink(self, key)

    def tail(self, key: Key, count: int = 0) -> list[Line]:
        with self._lock:
            lines = list(self._rings.get(key, ()))
        return lines[-count:] if count > 0 else lines

    def keep_only(self, keys: set[Key]) -> None:
        """Forget the lines of components no longer wanted on this node."""
        with self._lock:
            for key in [k for k in self._rings if k not in keys]:
                del self._rings[key]

    async def follow(self, key: Key, tail: int = 0) -> AsyncIterator[Line]:
        """The last ``tail`` lines (0: all kept), then new ones until the caller stops iterating."""
        queue: asyncio.Queue[Line | None] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            past = list(self._rings.get(key, ()))
            self._followers.setdefault(key, []).append(entry)
        try:
            for line in past[-tail:] if tail > 0 else past:
                yield line
            while True:
                got = await queue.get()
                yield got if got is not None else Line(time.time(), "agent", _DROPPED)
        finally:
            with self._lock:
                followers = self._followers.get(key, [])
                if entry in followers:
                    followers.remove(entry)


class _Sink:
    """Where one component's guest output goes: ``sink(stream, text)``."""

    def __init__(self, book: LogBook, key: Key) -> None:
        self.book, self.key = book, key

    def __call__(self, stream: str, text: str) -> None:
        self.book.add(self.key, stream, text)


def _offer(queue: asyncio.Queue[Line | None], line: Line, limit: int) -> None:
    """Queue the line; a reader ``limit`` lines behind gets one marker, then nothing until it catches up."""
    waiting = queue.qsize()
    if waiting < limit:
        queue.put_nowait(line)
    elif waiting == limit:
        queue.put_nowait(None)
