"""What is known of each uploaded artifact, and the composition cache."""

from __future__ import annotations

import json
import time
from typing import Any

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import ARTIFACTS, COMPOSITIONS, dump, etcd_key


class ArtifactRecords:
    """What is known of each uploaded artifact, and the composition cache."""

    def __init__(self, client: EtcdCalls) -> None:
        self.client = client

    async def put_artifact(
        self,
        digest: str,
        name: str,
        size: int,
        interfaces: dict[str, Any],
        signatures: list[str] | None = None,
        inputs: list[str] | None = None,
    ) -> None:
        """Record an artifact; ``signatures`` (JSON documents) and ``inputs`` (a fused artifact's) as given."""
        doc = {
            "name": name,
            "size": size,
            "uploaded_at": time.time(),
            "interfaces": interfaces,
            "signatures": signatures or [],
            "inputs": inputs or [],
        }
        await self.client.put(etcd_key(ARTIFACTS, digest), dump(doc))

    async def artifact_digests(self) -> list[str]:
        return sorted(
            kv.key[len(ARTIFACTS) :].decode() for kv in await self.client.get_prefix(ARTIFACTS, keys_only=True)
        )

    async def get_composition(self, key: str) -> dict[str, Any] | None:
        got = await self.client.get(etcd_key(COMPOSITIONS, key))
        return json.loads(got.value) if got else None

    async def put_composition(self, key: str, doc: dict[str, Any]) -> None:
        await self.client.put(etcd_key(COMPOSITIONS, key), dump(doc))

    async def get_artifact(self, digest: str) -> dict[str, Any] | None:
        got = await self.client.get(etcd_key(ARTIFACTS, digest))
        return json.loads(got.value) if got else None
