"""etcd's history compacted, as kube-apiserver does: every ``interval`` the leader compacts away every revision
older than the one it saw an interval ago, so the history a watch may resume from is at least one interval
long while the database stops growing with every heartbeat and report written (etcd keeps every revision
until told otherwise, and refuses writes once its quota is full)."""

from __future__ import annotations

import asyncio

import aetcd

from controlplane.state.store import Store
from neon.errors import Unavailable
from neon.observe import log

_log = log.get("neon.controlplane.compaction")
INTERVAL = 300.0  # seconds, kube-apiserver's default


class Compactor:
    def __init__(self, store: Store, interval: float = INTERVAL) -> None:
        self.store, self.interval = store, interval
        self.compacted = 0  # the last revision compacted to

    async def run(self) -> None:
        """Until cancelled (the replica stops leading): one compaction per interval."""
        seen = await self._revision()
        while True:
            await asyncio.sleep(self.interval)
            current = await self._revision()
            if seen > self.compacted:
                await self.compact(seen)
            seen = current

    async def compact(self, revision: int) -> None:
        try:
            await self.store.client.compact(revision)
        except (aetcd.ClientError, Unavailable) as err:  # compacted already (another leader), or etcd away
            _log.info("etcd compaction skipped", revision=revision, reason=str(err).splitlines()[0][:200])
            return
        self.compacted = revision
        _log.info("etcd history compacted", revision=revision)

    async def _revision(self) -> int:
        while True:
            try:
                return await self.store.revision()
            except Unavailable:
                await asyncio.sleep(min(self.interval, 5.0))
