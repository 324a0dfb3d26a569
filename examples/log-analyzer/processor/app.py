"""The batch processor guest: parses every line through the linked parser."""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.processor import ParsedBatch
from wit_world.imports import parser


class Processor(exports.Processor):
    def parse_batch(self, raw_logs: list[str]) -> ParsedBatch:
        entries, errors = [], []
        for number, line in enumerate(raw_logs, 1):
            try:
                entries.append(parser.parse(line))
            except Err as err:
                errors.append(f"line {number}: {err.value}")
        return ParsedBatch(entries=entries, errors=errors)

    def process_batch(self, raw_logs: list[str]) -> int:
        ok = 0
        for number, line in enumerate(raw_logs, 1):
            try:
                parser.parse(line)
            except Err as err:
                print(f"line {number}: {err.value}", file=sys.stderr)
                continue
            ok += 1
        return ok
