"""Version 2 of the log parser (tests/support/guests): also accepts FATAL, as an error-level entry."""

from componentize_py_types import Err
from logline import parse_line
from wit_world import exports
from wit_world.imports.types import Level, LogEntry


class Parser(exports.Parser):
    def parse(self, raw: str) -> LogEntry:
        try:
            timestamp, level, source, message = parse_line(raw, extra_levels={"FATAL": "ERROR"})
        except ValueError as err:
            raise Err(str(err)) from None
        return LogEntry(timestamp=timestamp, level=Level[level], source=source, message=message)
