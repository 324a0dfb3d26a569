"""Version 2 of the log parser (tests/guests): also accepts FATAL, as an error-level entry."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.parser import Level, LogEntry

_LEVELS = {
    "DEBUG": Level.DEBUG,
    "INFO": Level.INFO,
    "WARN": Level.WARN,
    "WARNING": Level.WARN,
    "ERROR": Level.ERROR,
    "FATAL": Level.ERROR,  # v2: fatal lines count as errors instead of being refused
}


def _looks_like_timestamp(text: str) -> bool:
    # 2026-11-24T08:00:00Z or with an offset / fraction; checked by shape.
    return (
        len(text) >= 20
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
        and text[:4].isdigit()
    )


class Parser(exports.Parser):
    def parse(self, raw: str) -> LogEntry:
        parts = raw.strip().split(" ", 2)
        if len(parts) < 3:
            raise Err(f"expected '<timestamp> <LEVEL> <source>: <message>', got {raw!r}")
        timestamp, level_name, rest = parts
        if not _looks_like_timestamp(timestamp):
            raise Err(f"bad timestamp {timestamp!r}")
        level = _LEVELS.get(level_name.upper())
        if level is None:
            raise Err(f"unknown level {level_name!r}")
        source, sep, message = rest.partition(": ")
        if not sep or not source or " " in source:
            raise Err(f"missing '<source>: ' in {rest!r}")
        return LogEntry(timestamp=timestamp, level=level, source=source, message=message)
