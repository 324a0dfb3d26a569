"""A guest's stdout and stderr, logged line by line with the component's id."""

from __future__ import annotations

from typing import Callable

from neon.observe import log


class GuestOutput:
    """Collects a guest's stdout or stderr and logs it line by line with the component's id."""

    MAX_LINE = 8192

    def __init__(self, label: str, stream: str, sink: Callable[[str, str], None] | None = None) -> None:
        self.label = label
        self.stream = stream
        self.sink = sink
        self.pending = b""
        self.log = log.get("neon.guest")

    def __call__(self, data: bytes) -> None:
        self.pending += data
        while b"\n" in self.pending or len(self.pending) > self.MAX_LINE:
            line, sep, rest = self.pending.partition(b"\n")
            if not sep:
                line, rest = self.pending[: self.MAX_LINE], self.pending[self.MAX_LINE :]
            self.pending = rest
            text = line.decode("utf-8", "replace")
            emit = self.log.warning if self.stream == "stderr" else self.log.info
            emit(f"guest {self.stream}", guest=self.label, text=text)
            if self.sink is not None:
                self.sink(self.stream, text)
