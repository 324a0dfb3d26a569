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


# How much of the archive has been counted: (bytes, entries in them). An append reads only what was written
# since (by this instance or any other), not the whole archive.
_counted = (0, 0)


def _entries() -> int:
    global _counted
    offset, count = _counted
    size = os.path.getsize(ARCHIVE) if os.path.exists(ARCHIVE) else 0
    if size < offset:  # the archive was replaced: count it again
        offset, count = 0, 0
    if size > offset:
        with open(ARCHIVE, "rb") as archive:
            archive.seek(offset)
            count += archive.read(size - offset).count(b"\n")
    _counted = (size, count)
    return count


class Archiver(exports.Archiver):
    def append(self, entries: list[LogEntry]) -> int:
        _check_volume()
        with open(ARCHIVE, "a", encoding="utf-8") as out:
            for e in entries:
                doc = {"timestamp": e.timestamp, "level": e.level.name, "source": e.source, "message": e.message}
                out.write(json.dumps(doc) + "\n")
        return _entries()

    def counts(self) -> LevelCounts:
        _check_volume()
        found = {level.name: 0 for level in Level}
        if os.path.exists(ARCHIVE):
            with open(ARCHIVE, encoding="utf-8") as archive:
                for line in archive:
                    found[json.loads(line)["level"]] += 1
        return LevelCounts(debug=found["DEBUG"], info=found["INFO"], warn=found["WARN"], error=found["ERROR"])
