"""Parser and processor in one component, for benchmarks: the baseline a fused pair is held to."""

import sys

import wit_world
from logline import parse_line


class WitWorld(wit_world.WitWorld):
    def process_batch(self, raw_logs: list[str]) -> int:
        ok = 0
        for number, line in enumerate(raw_logs, 1):
            try:
                parse_line(line)
            except ValueError as err:
                print(f"line {number}: {err}", file=sys.stderr)
                continue
            ok += 1
        return ok
