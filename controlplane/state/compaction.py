"""etcd's history compacted, as kube-apiserver does: every ``interval`` the leader compacts away every revision
older than the one it saw an interval ago, so the history a watch may resume from is at least one interval
long while the database stops growing with every heartbeat and report written (etcd keeps every revision
until told otherwise, and refuses writes once its quota is full).

Compaction frees pages inside etcd's database file but never shrinks it, so after a compaction each member whose
file has doubled since this leader last defragmented it (or, the first time, is over 16 MiB) is defragmented, one
member at a time (it pauses that member for the milliseconds a small database takes; k3s and etcd's operator
tooling do the same): the file, and the memory it is mapped into, stays near the size of what is kept. (etcd
3.5's own ``dbSizeInUse`` does not drop after a compaction, so it cannot say when.)"""

from __future__ import annotations

import asyncio

import aetcd
from aetcd import rpc as aetcd_rpc

from controlplane.state.etcd import etcd_client
from controlplane.state.store import Store
from neon.errors import Unavailable
from neon.observe import log

_log = log.get("neon.controlplane.compaction")
INTERVAL = 300.0  # seconds, kube-apiserver's default
FLOOR = 16 << 20  # bytes: a member's database smaller than this is never defragmented
GROWTH = 2.0  # a member's database is defragmented again once it is this many times its size after the last time


class Compactor:
    def __init__(self, store: Store, interval: float = INTERVAL) -> None:
        self.store, self.interval = store, interval
        self.compacted = 0  # the last revision compacted to
        self.defragmented: dict[str, int] = {}  # member URL -> its database's size after this leader defragmented it

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
            await self.store.client.compact(revision, physical=True)  # returns once the pages are free
        except (aetcd.ClientError, Unavailable) as err:  # compacted already (another leader), or etcd away
            _log.info("etcd compaction skipped", revision=revision, reason=str(err).splitlines()[0][:200])
            return
        self.compacted = revision
        _log.info("etcd history compacted", revision=revision)
        for url in (u.strip() for u in self.store.url.split(",") if u.strip()):
            await self.defragment(url)

    async def defragment(self, url: str) -> bool:
        """Defragment the member at ``url`` when its database has grown enough since the last time; whether it was."""
        client = etcd_client(url, timeout=60.0, tls=self.store.tls)
        try:
            await client.connect()
            before = (await client.maintenancestub.Status(aetcd_rpc.StatusRequest(), timeout=10)).dbSize
            if before < max(FLOOR, GROWTH * self.defragmented.get(url, 0)):
                return False
            await client.defragment()
            after = (await client.maintenancestub.Status(aetcd_rpc.StatusRequest(), timeout=10)).dbSize
            self.defragmented[url] = after
            _log.info("etcd member defragmented", member=url, size_before=before, size_after=after)
            return True
        except Exception as err:  # noqa: BLE001 - a member away or busy: the next compaction tries again
            _log.info("etcd defragmentation skipped", member=url, reason=str(err).splitlines()[0][:200])
            return False
        finally:
            await client.close()

    async def _revision(self) -> int:
        while True:
            try:
                return await self.store.revision()
            except Unavailable:
                await asyncio.sleep(min(self.interval, 5.0))
