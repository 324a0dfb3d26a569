"""The archiver guest: appends entries to a JSON-lines file on its granted volume.

The manifest grants the volume at /archive and runs one instance, so there is
one writer. Without the grant the guest sees no /archive and every call fails
with a message saying so.

Its retention limit comes from its config (``retention``: how many entries are kept, read through
wasi:config/store on every append, so a new value applies at once): past it by a tenth, the oldest
entries are dropped down to the limit. Without one, everything is kept.

The count of entries archived per level is kept in the application's ``counts`` key-value bucket
(wasi:keyvalue; a cluster bucket in the example's manifest), under one key, compare-and-swapped with every
append: the counts outlive the archive's node, and survive the archiver moving to another one.
"""

import json
import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import atomics
from wit_world.imports import wasi_config_store as config
from wit_world.imports import wasi_keyvalue_store as kv
from wit_world.imports.types import Level, LevelCounts, LogEntry

COUNTS, LEVELS = "counts", "levels"  # the bucket, and its key

ARCHIVE = "/archive/entries.jsonl"


def _retention() -> int | None:
    value = config.get("retention")
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise RuntimeError(f"config retention must be a whole number of entries above 0, got {value!r}")
    return int(value)


def _trim(keep: int, count: int) -> int:
    """Keep the newest ``keep`` of the archive's ``count`` entries (streamed line by line into a new file, then
    renamed over the archive: the guest's memory does not grow with the archive, as a wasm memory never
    shrinks once grown)."""
    global _counted
    kept = 0
    with open(ARCHIVE, "rb") as archive, open(ARCHIVE + ".new", "wb") as out:
        for i, line in enumerate(archive):
            if i >= count - keep:
                out.write(line)
                kept += 1
    os.replace(ARCHIVE + ".new", ARCHIVE)
    _counted = (os.path.getsize(ARCHIVE), kept)
    return kept


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


def _counts() -> kv.Bucket:
    try:
        return kv.open(COUNTS)
    except Err as err:
        raise RuntimeError(f"the {COUNTS} bucket cannot be opened ({err.value}): grant it (grants.keyValue)") from None


def _levels(value: bytes | None) -> dict[str, int]:
    held = json.loads(value) if value else {}
    return {level.name: int(held.get(level.name, 0)) for level in Level}


def _counted_levels(entries: list[LogEntry]) -> None:
    """Add the entries' levels to the counts: one key holding all four, compare-and-swapped (one write to the
    bucket an append, however many levels it has), again if another writer got there first."""
    if not entries:
        return
    bucket = _counts()
    for _ in range(20):
        try:
            cas = atomics.Cas.new(bucket, LEVELS)
            levels = _levels(cas.current())
            for e in entries:
                levels[e.level.name] += 1
            atomics.swap(cas, json.dumps(levels, sort_keys=True).encode())
            return
        except Err as err:
            if not isinstance(err.value, atomics.CasError_CasFailed):
                raise RuntimeError(f"counting in the {COUNTS} bucket failed: {err.value}") from None
    raise RuntimeError(f"the counts in the {COUNTS} bucket kept changing; try again")


class Archiver(exports.Archiver):
    def append(self, entries: list[LogEntry]) -> int:
        _check_volume()
        _counted_levels(entries)  # first: a bucket that cannot be reached fails the call before anything is written
        with open(ARCHIVE, "a", encoding="utf-8") as out:
            for e in entries:
                doc = {"timestamp": e.timestamp, "level": e.level.name, "source": e.source, "message": e.message}
                out.write(json.dumps(doc) + "\n")
        count = _entries()
        limit = _retention()
        if limit is not None and count > limit + max(1, limit // 10):
            count = _trim(limit, count)
        return count

    def counts(self) -> LevelCounts:
        try:
            found = _levels(_counts().get(LEVELS))
        except Err as err:
            raise RuntimeError(f"reading the {COUNTS} bucket failed: {err.value}") from None
        return LevelCounts(debug=found["DEBUG"], info=found["INFO"], warn=found["WARN"], error=found["ERROR"])
