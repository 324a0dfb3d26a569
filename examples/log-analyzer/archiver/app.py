"""The archiver guest: appends entries to a JSON-lines file on its granted volume.

The manifest grants the volume at /archive and runs one instance, so there is
one writer. Without the grant the guest sees no /archive and every call fails
with a message saying so.
"""

import json
import os

from wit_world import exports
from wit_world.imports.types import Level, LevelCounts, LogEntry

ARCHIVE = "/archive/entries.jsonl"


def _check_volume() -> None:
    if not os.path.isdir("/archive"):
        raise RuntimeError("no /archive: grant the archiver a volume at /archive")


class Archiver(exports.Archiver):
    def append(self, entries: list[LogEntry]) -> int:
        _check_volume()
        with open(ARCHIVE, "a", encoding="utf-8") as out:
            for e in entries:
                doc = {"timestamp": e.timestamp, "level": e.level.name, "source": e.source, "message": e.message}
                out.write(json.dumps(doc) + "\n")
        with open(ARCHIVE, encoding="utf-8") as archive:
            return sum(1 for _ in archive)

    def counts(self) -> LevelCounts:
        _check_volume()
        found = {level.name: 0 for level in Level}
        if os.path.exists(ARCHIVE):
            with open(ARCHIVE, encoding="utf-8") as archive:
                for line in archive:
                    found[json.loads(line)["level"]] += 1
        return LevelCounts(debug=found["DEBUG"], info=found["INFO"], warn=found["WARN"], error=found["ERROR"])
