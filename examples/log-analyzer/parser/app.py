"""The log parser guest: one line in, one structured entry (or a reason) out."""

from componentize_py_types import Err
from logline import parse_line
from wit_world import exports
from wit_world.imports.types import Level, LogEntry


class Parser(exports.Parser):
    def parse(self, raw: str) -> LogEntry:
        try:
            timestamp, level, source, message = parse_line(raw)
        except ValueError as err:
            raise Err(str(err)) from None
        return LogEntry(timestamp=timestamp, level=Level[level], source=source, message=message)
