"""etcd's history compacted, as kube-apiserver does, but in small steps: every replica samples etcd's revision
each ``step`` (a fifth of the interval), and the leader, at each step, compacts away every revision older than the
newest one sampled at least ``interval`` ago. So the history a watch may resume from is between one interval and
one interval plus a step long, and the database reaches its steady size within an interval plus a step of the
cluster's start instead of growing for two intervals (kube-apiserver's rule: compact every interval to what was
seen an interval before). A replica elected after another's death compacts at its next step with the samples it
already holds, rather than starting an interval of its own: no leader change lets the history grow longer.

Compaction frees pages inside etcd's database file but never shrinks it, so after a compaction each member whose
file has doubled since this leader last defragmented it (or, the first time, is over 16 MiB) is defragmented, one
member at a time (it pauses that member for the milliseconds a small database takes; k3s and etcd's operator
tooling do the same): the file, and the memory it is mapped into, stays near the size of what is kept. (etcd
3.5's own ``dbSizeInUse`` does not drop after a compaction, so it cannot say when.)"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import aetcd
from aetcd import rpc as aetcd_rpc

from controlplane.state.etcd import etcd_client
from controlplane.state.store import Store
from neon.errors import Unavailable
from neon.observe import log

_log = log.get("neon.controlplane.compaction")
INTERVAL = 300.0  # seconds of history kept at least, kube-apiserver's default
STEPS = 5  # samples (and compactions) per interval
FLOOR = 16 << 20  # bytes: a member's database smaller than this is never defragmented
GROWTH = 2.0  # a member's database is defragmented again once it is this many times its size after the last time


class RevisionClock:
    """etcd's revision at the times it was sampled, kept for one interval: which revision is old enough to drop.
    No I/O: the sampler feeds it, the compactor asks it."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.samples: deque[tuple[float, int]] = deque()  # (when, revision), oldest first

    @property
    def step(self) -> float:
        return self.interval / STEPS

    def note(self, now: float, revision: int) -> None:
        self.samples.append((now, revision))
        while len(self.samples) > 1 and now - self.samples[1][0] >= self.interval:
            self.samples.popleft()  # the next one is old enough on its own: this one is never asked for again

    def due(self, now: float) -> int:
        """The newest revision sampled at least one interval before ``now`` (0: none is that old yet)."""
        old = [revision for when, revision in self.samples if now - when >= self.interval]
        return old[-1] if old else 0


async def sample_revisions(store: Store, clock: RevisionClock) -> None:
    """Until cancelled (every replica runs it, so a newly elected one knows the past): one sample per step."""
    while True:
        try:
            clock.note(time.monotonic(), await store.revision())
        except Unavailable:
            pass  # etcd away: no sample this step
        await asyncio.sleep(clock.step)


class Compactor:
    def __init__(self, store: Store, clock: RevisionClock) -> None:
        self.store, self.clock = store, clock
        self.compacted = 0  # the last revision compacted to
        self.defragmented: dict[str, int] = {}  # member URL -> its database's size after this leader defragmented it

    async def run(self) -> None:
        """Until cancelled (the replica stops leading): at each step, compact to the revision an interval old."""
        while True:
            revision = self.clock.due(time.monotonic())
            if revision > self.compacted:
                await self.compact(revision)
            await asyncio.sleep(self.clock.step)

    async def compact(self, revision: int) -> None:
        try:
            await self.store.client.compact(revision, physical=True)  # returns once the pages are free
        except aetcd.ClientError as err:  # compacted already, past it (the leader before): nothing to do up to it
            _log.info("etcd compaction skipped", revision=revision, reason=str(err).splitlines()[0][:200])
            self.compacted = revision
            return
        except Unavailable as err:  # etcd away: the next step tries again
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
