"""Lease-based leader election among control-plane replicas, in etcd.

Every replica holds one lease: it announces the replica under
``/neon/controlplanes/<identity>`` and, for the leader, carries ``/neon/leader``.
A follower tries to create the leader key each third of the TTL, so when the
leader dies its lease expires and another replica takes over within about
``ttl * 4/3`` seconds; a leader that cannot refresh its lease (etcd gone, or
the lease expired while it was cut off) steps down at once. A replica that
stops cleanly revokes its lease, handing over immediately.

Only the leader reconciles; every replica serves the API, agents and blobs
(etcd is the truth, and every write is a transaction).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from controlplane.state.store import Store
from neon.observe import log

_log = log.get("neon.controlplane.leader")


class Election:
    """Campaign for leadership and keep the replica's lease alive."""

    def __init__(
        self,
        store: Store,
        identity: str,
        address: str,
        ttl: int,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        http_address: str = "",
    ) -> None:
        self.store = store
        self.http_address = http_address
        self.identity = identity
        self.address = address
        self.ttl = ttl
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.leading = False
        self.lease_id = 0

    async def run(self) -> None:
        while True:
            try:
                self.lease_id = await self.store.replicas.new_lease(self.ttl)
                started = time.time()
                await self.store.replicas.put_replica(
                    self.identity,
                    {"address": self.address, "started": started, "http": self.http_address},
                    self.lease_id,
                )
                while True:
                    if not self.leading:
                        doc = {"identity": self.identity, "address": self.address, "since": time.time()}
                        if await self.store.replicas.campaign(doc, self.lease_id):
                            self.leading = True
                            _log.info("elected leader", identity=self.identity)
                            await self.on_elected()
                    await asyncio.sleep(self.ttl / 3)
                    await self.store.refresh_lease(self.lease_id)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - etcd unreachable or the lease expired: step down, retry
                _log.warning("lost the replica lease; stepping down", identity=self.identity, error=str(err))
                await self._step_down()
                await asyncio.sleep(min(1.0, self.ttl / 3))

    async def _step_down(self) -> None:
        if self.leading:
            self.leading = False
            await self.on_deposed()

    async def resign(self) -> None:
        """Stop leading and drop the lease, so another replica takes over now."""
        await self._step_down()
        if self.lease_id:
            await self.store.revoke_lease(self.lease_id)
            self.lease_id = 0
