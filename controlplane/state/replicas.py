"""The control-plane replicas' keys: leases, live replicas, the leader."""

from __future__ import annotations

import json
from typing import Any

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import LEADER, REPLICAS, dump, etcd_key


class Replicas:
    """The control-plane replicas' keys: leases, live replicas, the leader."""

    def __init__(self, client: EtcdCalls) -> None:
        self.client = client

    async def new_lease(self, ttl: int) -> int:
        return int((await self.client.lease(ttl)).id)

    async def put_replica(self, identity: str, doc: dict[str, Any], lease_id: int) -> None:
        """Announce a live control-plane replica (gone when its lease is)."""
        await self.client.put(etcd_key(REPLICAS, identity), dump(doc), lease=lease_id)

    async def replicas(self) -> dict[str, dict[str, Any]]:
        return {kv.key[len(REPLICAS) :].decode(): json.loads(kv.value) for kv in await self.client.get_prefix(REPLICAS)}

    async def campaign(self, doc: dict[str, Any], lease_id: int) -> bool:
        """Become the leader if nobody is: the key is created on ``lease_id`` only when absent."""
        tx = self.client.transactions
        ok, _ = await self.client.transaction(
            compare=[tx.version(LEADER) == 0], success=[tx.put(LEADER, dump(doc), lease_id)], failure=[]
        )
        return bool(ok)

    async def leader(self) -> dict[str, Any] | None:
        got = await self.client.get(LEADER)
        return json.loads(got.value) if got else None
