"""The ingestor guest: raw text in, parsed in batches, well-formed entries archived."""

import sys

from wit_world import exports
from wit_world.imports import archiver, processor

BATCH = 100  # lines per parse-batch call; one archive call per batch


class Ingestor(exports.Ingestor):
    def ingest(self, text: str) -> int:
        lines = [line for line in text.splitlines() if line.strip()]
        ok = 0
        for start in range(0, len(lines), BATCH):
            parsed = processor.parse_batch(lines[start : start + BATCH])
            for error in parsed.errors:
                print(error, file=sys.stderr)
            if parsed.entries:
                archiver.append(parsed.entries)
            ok += len(parsed.entries)
        return ok
