"""A watched copy of what the control API reads most: applications, live nodes, members, placements, instance
reports and the leader, parsed once, so that a read answers from memory instead of a dozen etcd requests.

Reads stay consistent the way Kubernetes' API server serves them from its watch cache (KEP-2340, "consistent
reads from cache"): a read asks etcd for its current revision (one range request of one key, no values) and
answers from the copy once the copy has applied every change up to that revision; so it sees every write that
finished before it began, whichever replica made it. The watch covers the whole key space, so the copy's
revision follows etcd's even while only other keys change. An invoke may route on what the copy holds without
asking (:meth:`Mirror.view` ``fresh=False``): the watch is milliseconds behind, and a wrong node fails the call
cleanly. While the watch is not open (starting, etcd lost, the revision compacted away) every read goes to etcd
as before (:func:`read_view`).

A watch response's events are queued by aetcd without yielding to the event loop and applied here without
awaiting, so a reader woken by a revision never sees half of a transaction. Every view carries the copy's
change count (its ``stamp``): what is made from a view holds for every view of the same stamp, so answers can
be kept until a table changes (:meth:`controlplane.api.queries.Queries.memo`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aetcd

from controlplane.state.keys import APPS, LEADER, MEMBERS, NODES, PLACEMENTS, PREFETCH, ROLLOUTS, STATUS
from controlplane.state.store import Store, app_record, member_record
from controlplane.state.world import AppRecord
from neon.model import InstanceReport, NodeInfo
from neon.observe import log

_log = log.get("neon.controlplane.mirror")


@dataclass(frozen=True)
class View:
    """What the API reads, as of one moment."""

    apps: dict[str, AppRecord]
    nodes: dict[str, NodeInfo]  # holding a lease
    members: dict[str, tuple[NodeInfo, float]]  # every registered node, with when it became unreachable (0: not)
    placements: dict[str, dict[str, Any]]
    status: dict[str, list[InstanceReport]]
    leader: dict[str, Any] | None
    rollouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # app -> its held rollout (reconcile.prefetch)
    prefetch: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> what it has ready of its prefetch
    # The mirror's change count it was copied at: two views of one stamp hold the same (-1: read from etcd).
    stamp: int = -1

    def unreachable(self) -> dict[str, tuple[NodeInfo, float]]:
        """The members without a lease, with when they were found so (0: not yet)."""
        return {name: member for name, member in self.members.items() if name not in self.nodes}


def _status(value: bytes, revision: int) -> list[InstanceReport]:
    return [InstanceReport.from_dict(d) for d in json.loads(value)]


# Each table's prefix and how one of its values is parsed (value, mod revision).
_TABLES: dict[bytes, Callable[[bytes, int], Any]] = {
    APPS: app_record,
    NODES: lambda value, revision: NodeInfo.from_dict(json.loads(value)),
    MEMBERS: lambda value, revision: member_record(value),
    PLACEMENTS: lambda value, revision: json.loads(value),
    STATUS: _status,
    LEADER: lambda value, revision: json.loads(value),  # one key: its name is ""
    ROLLOUTS: lambda value, revision: json.loads(value),
    PREFETCH: lambda value, revision: json.loads(value),
}


async def read_view(store: Store) -> View:
    """The same view, read from etcd directly."""
    tables = {prefix: _table(prefix, await store.client.get_prefix(prefix)) for prefix in _TABLES}
    return _view(tables)


def _table(prefix: bytes, got: Any) -> dict[str, Any]:
    parse = _TABLES[prefix]
    return {bytes(kv.key[len(prefix) :]).decode(): parse(kv.value, kv.mod_revision) for kv in got}


def _view(tables: dict[bytes, dict[str, Any]], stamp: int = -1, copy: Callable[[Any], Any] = dict) -> View:
    return View(
        apps=copy(tables[APPS]),
        nodes=copy(tables[NODES]),
        members=copy(tables[MEMBERS]),
        placements=copy(tables[PLACEMENTS]),
        status=copy(tables[STATUS]),
        leader=tables[LEADER].get(""),
        rollouts=copy(tables[ROLLOUTS]),
        prefetch=copy(tables[PREFETCH]),
        stamp=stamp,
    )


def _same(table: Any) -> Any:
    return table


class Mirror:
    """The watched copy (:meth:`run` keeps it), and :meth:`view` to read it.

    Args:
        catch_up: How long a fresh read waits for the copy to reach etcd's revision before reading etcd itself.
    """

    def __init__(self, store: Store, catch_up: float = 1.0) -> None:
        self.store = store
        self.catch_up = catch_up
        self.revision = 0  # every change up to this revision is applied
        self.open = False  # the watch is open: the copy follows etcd
        self._tables: dict[bytes, dict[str, Any]] = {prefix: {} for prefix in _TABLES}
        self._read_at: dict[bytes, int] = {}
        self._moved = asyncio.Event()
        self.fallbacks = 0  # reads that went to etcd (the copy was not open or did not catch up)
        self.changes = 0  # grows whenever a table changes or is read again: what is derived from them is stale

    async def view(self, fresh: bool = True) -> View:
        """What the API reads; ``fresh`` (the default) sees every write finished before the call."""
        if self.open:
            if not fresh:
                return _view(self._tables, self.changes)
            if await self._reach(await self.store.revision()):
                return _view(self._tables, self.changes)
        self.fallbacks += 1
        return await read_view(self.store)

    def now(self) -> View:
        """The copy itself, not copied (a view costs a copy of every table, thousands of nodes in a large
        cluster): valid only until the caller next awaits, for answers made without awaiting. Open only."""
        return _view(self._tables, self.changes, copy=_same)

    async def _reach(self, revision: int) -> bool:
        deadline = time.monotonic() + self.catch_up
        while self.revision < revision:
            moved, left = self._moved, deadline - time.monotonic()
            if not self.open or left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), left)
        return True

    async def run(self) -> None:
        """Keep the copy: read each table, then follow one watch of the whole key space; again after a failure."""
        while True:
            try:
                await self._follow()
                await asyncio.sleep(0.1)  # etcd ended the watch: read and watch again
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - etcd lost or compacted: reads go to etcd until it is back
                _log.warning("read mirror lost its watch; reading etcd directly until it is back", error=str(err))
                await asyncio.sleep(1.0)
            finally:
                self.open = False

    async def _follow(self) -> None:
        tables, read_at = {}, {}
        for prefix in _TABLES:
            got = await self.store.client.get_prefix(prefix)
            tables[prefix] = _table(prefix, got)
            read_at[prefix] = int(got.header.revision)
        start = min(read_at.values())
        watch = await self.store.client.watch(b"\0", range_end=b"\0", start_revision=start + 1)
        self._tables, self._read_at, self.revision, self.open = tables, read_at, start, True
        self.changes += 1
        self._wake()
        try:
            async for event in watch:
                self._apply(event)
        finally:
            self.open = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch.cancel(), 1.0)

    def _apply(self, event: Any) -> None:
        """One change (no awaiting: see the module's docstring)."""
        key, revision = bytes(event.kv.key), int(event.kv.mod_revision)
        for prefix, parse in _TABLES.items():
            if not key.startswith(prefix):
                continue
            if revision > self._read_at[prefix]:
                name = key[len(prefix) :].decode()
                if event.kind == aetcd.rtypes.EventKind.PUT:
                    try:
                        self._tables[prefix][name] = parse(event.kv.value, revision)
                    except (ValueError, KeyError, TypeError) as err:
                        self._tables[prefix].pop(name, None)
                        _log.warning("unreadable value in etcd left out of the read mirror", key=key, error=str(err))
                else:
                    self._tables[prefix].pop(name, None)
                self.changes += 1
            break
        if revision > self.revision:
            self.revision = revision
            self._wake()

    def _wake(self) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
