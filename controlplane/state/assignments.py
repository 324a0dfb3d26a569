"""One etcd watch on every node's assignments, fanned out in memory to the agents' streams.

An agent's ``WatchAssignments`` stream waits here for a change under its own
node's keys instead of holding an etcd watch of its own, so etcd sees one watch
per control-plane replica, not one per agent. (With one watch each, 1,000
agents connecting at once cost the control plane a core: aetcd creates watches
one at a time and wakes every waiting creator after each one.) A subscriber is
woken, re-reads its node's assignments and sends them if they changed; when the
watch has to be opened again, every subscriber re-reads, so nothing changed in
between is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from controlplane.state.keys import ASSIGN
from controlplane.state.store import Store
from neon.observe import log

_log = log.get("neon.controlplane.assignments")


class AssignmentHub:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.watching = asyncio.Event()  # set while the etcd watch is open

    @contextlib.contextmanager
    def subscribe(self, node: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``node``'s assignments may have changed (clear it before re-reading)."""
        changed = asyncio.Event()
        self._waiters.setdefault(node, set()).add(changed)
        try:
            yield changed
        finally:
            waiters = self._waiters.get(node)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[node]

    @property
    def subscribers(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def _notify(self, node: str | None) -> None:
        """Wake ``node``'s subscribers, or everyone's with None."""
        if node is None:
            groups = list(self._waiters.values())
        else:
            groups = [self._waiters.get(node, set())]
        for waiters in groups:
            for changed in waiters:
                changed.set()

    async def run(self) -> None:
        while True:
            try:
                watch = await self.store.watch_prefix(ASSIGN)
                self.watching.set()
                self._notify(None)  # whatever changed while no watch was open is read now
                async for event in watch:
                    node = bytes(event.kv.key[len(ASSIGN) :]).split(b"/", 1)[0].decode()
                    self._notify(node)
                self.watching.clear()
                await asyncio.sleep(0.1)  # etcd ended the watch: open it again
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - etcd hiccups: watch again; subscribers re-read
                self.watching.clear()
                _log.warning("assignment watch failed; watching again", error=str(err))
                await asyncio.sleep(1.0)
