"""Blob anti-entropy: every control-plane replica keeps a copy of every artifact.

Artifact metadata lives in etcd; the bytes live on the replicas' disks. Each
replica compares the two and fetches what it lacks from a peer (the same
``FetchArtifact`` stream agents use), checking the sha256 as it writes, so
any replica can serve any artifact and losing one replica loses no blob.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from controlplane.state.blobs import BlobStore
from controlplane.state.keys import ARTIFACTS
from controlplane.state.store import Store
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import NeonGridError
from neon.observe import log
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, tls
from neon.security.tls import Credentials

_log = log.get("neon.controlplane.replication")


class BlobReplicator:
    def __init__(
        self, store: Store, blobs: BlobStore, identity: str, creds: Credentials, interval: float = 5.0
    ) -> None:
        self.store = store
        self.creds = creds
        self.blobs = blobs
        self.identity = identity
        self.interval = interval
        self._locks: dict[str, asyncio.Lock] = {}

    async def peers(self) -> list[str]:
        return [
            doc["address"]
            for ident, doc in sorted((await self.store.replicas.replicas()).items())
            if ident != self.identity
        ]

    async def ensure(self, digest: str) -> bool:
        """Make sure the blob is here, fetching it from a peer if needed; False when nobody has it."""
        if self.blobs.exists(digest):
            return True
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if self.blobs.exists(digest):
                return True
            for address in await self.peers():
                if await self._fetch(address, digest):
                    _log.info("artifact replicated", artifact=digest, source=address)
                    return True
            return False

    async def _fetch(self, address: str, digest: str) -> bool:
        async with tls.aio_channel(address, self.creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
            stub = control_pb2_grpc.AgentControlStub(channel)
            stream = stub.FetchArtifact(control_pb2.FetchArtifactRequest(digest=digest), timeout=300)

            async def chunks() -> Any:
                async for chunk in stream:
                    yield chunk.data

            try:
                await self.blobs.write(chunks(), expected=digest)
                return True
            except (grpc.aio.AioRpcError, NeonGridError) as err:
                _log.debug("peer could not serve the artifact", artifact=digest, peer=address, error=str(err))
                return False

    async def sync_once(self) -> int:
        """Fetch every stored artifact this replica lacks; returns how many are still missing."""
        missing = 0
        for digest in await self.store.artifacts.artifact_digests():
            if not await self.ensure(digest):
                missing += 1
        return missing

    async def run(self) -> None:
        while True:
            try:
                watch = await self.store.watch_prefix(ARTIFACTS)
                await self.sync_once()
                async for _ in watch:
                    await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - etcd or peers hiccup: try again later
                _log.warning("blob sync failed; retrying", error=str(err))
                await asyncio.sleep(self.interval)
