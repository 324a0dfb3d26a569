"""The batch processor guest: parses every line through the linked parser."""

import sys

import wit_world
from componentize_py_types import Err
from wit_world.imports import parser


class WitWorld(wit_world.WitWorld):
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
