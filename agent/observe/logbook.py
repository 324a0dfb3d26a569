"""The last lines each component wrote on this node, for ``neon logs``.

Guest stdout and stderr arrive from worker threads; so do the agent's own
notes about a component (started, trapped, denied). Each component keeps a
bounded ring; each follower gets new lines through its own bounded queue,
dropped (with a marker line) when it falls too far behind rather than slowing
the guest. Followers are read from the data plane's worker threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
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
        self._followers: dict[Key, list[Follower]] = {}
        self._lock = threading.Lock()

    def add(self, key: Key, stream: str, text: str) -> None:
        line = Line(time.time(), stream, text[:MAX_LINE])
        with self._lock:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = deque(maxlen=self.size)
            ring.append(line)
            followers = list(self._followers.get(key, ()))
        for follower in followers:
            follower.offer(line)

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

    def follow(self, key: Key, tail: int = 0) -> Follower:
        """The last ``tail`` lines (0: all kept), then new ones as they come, until the follower is closed."""
        follower = Follower(self.follower_queue, lambda f: self._forget(key, f))
        with self._lock:
            past = list(self._rings.get(key, ()))
            self._followers.setdefault(key, []).append(follower)
        follower.past = past[-tail:] if tail > 0 else past
        return follower

    def _forget(self, key: Key, follower: Follower) -> None:
        with self._lock:
            followers = self._followers.get(key, [])
            if follower in followers:
                followers.remove(follower)


class Follower:
    """One reader of a component's lines: iterate (blocking) until :meth:`close`, from any thread."""

    def __init__(self, limit: int, forget: Callable[[Follower], None]) -> None:
        self.limit = limit
        self.past: list[Line] = []
        self._forget = forget
        self._queue: deque[Line | None] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def offer(self, line: Line) -> None:
        """Queue the line; a reader ``limit`` lines behind gets one marker, then nothing until it catches up."""
        with self._cond:
            waiting = len(self._queue)
            if waiting < self.limit:
                self._queue.append(line)
            elif waiting == self.limit:
                self._queue.append(None)
            else:
                return
            self._cond.notify()

    def close(self) -> None:
        """End the iteration (the reader went away); safe to call more than once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._forget(self)

    def __iter__(self) -> Iterator[Line]:
        try:
            yield from self.past
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    got = self._queue.popleft()
                yield got if got is not None else Line(time.time(), "agent", _DROPPED)
        finally:
            self.close()


class _Sink:
    """Where one component's guest output goes: ``sink(stream, text)``."""

    def __init__(self, book: LogBook, key: Key) -> None:
        self.book, self.key = book, key

    def __call__(self, stream: str, text: str) -> None:
        self.book.add(self.key, stream, text)
