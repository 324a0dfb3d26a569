"""Parser and processor in one component, for benchmarks: the baseline a fused pair is held to.

It does the pair's work without the boundary: each line becomes the same
structured entry (the parser's ``log-entry``: timestamp, level enum, source,
message), malformed lines are reported on stderr, and well-formed ones counted.
"""

import sys
from dataclasses import dataclass
from enum import Enum

import wit_world
from logline import parse_line


class Level(Enum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


@dataclass
class LogEntry:
    timestamp: str
    level: Level
    source: str
    message: str


def parse(raw: str) -> LogEntry:
    timestamp, level, source, message = parse_line(raw)
    return LogEntry(timestamp=timestamp, level=Level[level], source=source, message=message)


class WitWorld(wit_world.WitWorld):
    def process_batch(self, raw_logs: list[str]) -> int:
        ok = 0
        for number, line in enumerate(raw_logs, 1):
            try:
                parse(line)
            except ValueError as err:
                print(f"line {number}: {err}", file=sys.stderr)
                continue
            ok += 1
        return ok
