"""What agents report, on their leases: instance status, RTT metrics, telemetry."""

from __future__ import annotations

import json
from typing import Any

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import METRICS, PREFETCH, STATUS, TELEMETRY, dump, etcd_key
from neon.model import InstanceReport, NodeInfo


class Reports:
    """What agents report, on their leases: instance status, RTT metrics, telemetry."""

    def __init__(self, client: EtcdCalls) -> None:
        self.client = client

    async def put_status(self, node: NodeInfo, reports: list[InstanceReport]) -> None:
        await self.client.put(
            etcd_key(STATUS, node.name), dump([r.to_dict() for r in reports]), lease=node.lease_id or None
        )

    async def put_prefetch(self, node: NodeInfo, ready: list[str], failed: dict[str, str]) -> None:
        """What the node has ready of its prefetch lists (nothing: the key goes)."""
        key = etcd_key(PREFETCH, node.name)
        if not ready and not failed:
            await self.client.delete(key)
            return
        doc = {"ready": sorted(ready), "failed": dict(sorted(failed.items()))}
        await self.client.put(key, dump(doc), lease=node.lease_id or None)

    async def all_prefetch(self) -> tuple[dict[str, frozenset[str]], dict[str, dict[str, str]]]:
        """Node -> the artifacts it has ready of its prefetch lists; node -> those it could not, with why."""
        ready: dict[str, frozenset[str]] = {}
        failed: dict[str, dict[str, str]] = {}
        for kv in await self.client.get_prefix(PREFETCH):
            node, doc = kv.key[len(PREFETCH) :].decode(), json.loads(kv.value)
            ready[node] = frozenset(doc.get("ready", ()))
            failed[node] = dict(doc.get("failed", {}))
        return ready, failed

    async def put_metrics(self, node: NodeInfo, doc: dict[str, Any]) -> None:
        await self.client.put(etcd_key(METRICS, node.name), dump(doc), lease=node.lease_id or None)

    async def all_metrics(self) -> dict[str, dict[str, Any]]:
        return {kv.key[len(METRICS) :].decode(): json.loads(kv.value) for kv in await self.client.get_prefix(METRICS)}

    async def put_telemetry(self, node: NodeInfo, report: bytes) -> None:
        await self.client.put(etcd_key(TELEMETRY, node.name), report, lease=node.lease_id or None)

    async def all_telemetry(self) -> dict[str, bytes]:
        """Node -> its agent's last MetricsReport, serialized."""
        return {kv.key[len(TELEMETRY) :].decode(): bytes(kv.value) for kv in await self.client.get_prefix(TELEMETRY)}

    async def all_status(self) -> dict[str, list[InstanceReport]]:
        out: dict[str, list[InstanceReport]] = {}
        for kv in await self.client.get_prefix(STATUS):
            out[kv.key[len(STATUS) :].decode()] = [InstanceReport.from_dict(d) for d in json.loads(kv.value)]
        return out

    async def get_status(self, node: str) -> list[InstanceReport]:
        got = await self.client.get(etcd_key(STATUS, node))
        return [InstanceReport.from_dict(d) for d in json.loads(got.value)] if got else []
