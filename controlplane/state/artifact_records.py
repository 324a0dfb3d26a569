"""What is known of each uploaded artifact, the composition cache, and the native code made of artifacts."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from controlplane.state.etcd import EtcdCalls
from controlplane.state.keys import ARTIFACTS, CODE, COMPOSITIONS, dump, etcd_key


def _code_key(artifact: str, engine: str) -> bytes:
    return etcd_key(CODE, artifact, hashlib.sha256(engine.encode()).hexdigest()[:16])


class ArtifactRecords:
    """What is known of each uploaded artifact, the composition cache, and the native code made of artifacts."""

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

    async def get_code(self, artifact: str, engine: str) -> dict[str, Any] | None:
        """The record of the native code made of ``artifact`` for ``engine``, if any."""
        got = await self.client.get(_code_key(artifact, engine))
        doc = json.loads(got.value) if got else None
        return doc if doc is not None and doc.get("engine") == engine else None

    async def put_code(self, artifact: str, engine: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Record native code unless another replica recorded some first; returns the record that holds."""
        key, tx = _code_key(artifact, engine), self.client.transactions
        put = tx.put(key, dump({**doc, "engine": engine}))
        made, _ = await self.client.transaction(compare=[tx.version(key) == 0], success=[put], failure=[])
        if made:
            return {**doc, "engine": engine}
        return await self.get_code(artifact, engine) or {**doc, "engine": engine}

    async def forget_code(self, artifact: str, engine: str, code: str) -> bool:
        """Drop the record when it still names ``code`` (refused by an agent); whether it did."""
        got = await self.get_code(artifact, engine)
        if got is None or got.get("code") != code:
            return False
        await self.client.delete(_code_key(artifact, engine))
        return True
