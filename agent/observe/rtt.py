"""Round trips to peers, measured for network-aware placement."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, tls
from neon.security.tls import Credentials


class RttProber:
    """Round trips to peers' data planes, over the standard gRPC health check."""

    def __init__(self, samples: int = 3, timeout: float = 2.0, creds: Credentials | None = None) -> None:
        self.creds = creds or Credentials.insecure()
        self.samples = samples
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def measure(self, peers: Iterable[tuple[str, str]]) -> dict[str, float]:
        """Peer name -> median round trip in ms; unreachable peers are left out. Channels to addresses no longer
        among ``peers`` (a peer restarted on another port, or gone) are closed."""
        pairs = list(peers)
        live = {address for _, address in pairs}
        for gone in [a for a in self._channels if a not in live]:
            await self._channels.pop(gone).close(None)
        results = await asyncio.gather(*(self._one(address) for _, address in pairs))
        return {name: ms for (name, _), ms in zip(pairs, results, strict=True) if ms is not None}

    async def _one(self, address: str) -> float | None:
        channel = self._channels.get(address)
        if channel is None:
            channel = tls.aio_channel(address, self.creds, pki.AGENT_NAME, CHANNEL_OPTIONS)
            self._channels[address] = channel
        stub = health_pb2_grpc.HealthStub(channel)
        times = []
        try:
            for _ in range(self.samples):
                start = time.perf_counter()
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
                times.append((time.perf_counter() - start) * 1000.0)
        except grpc.aio.AioRpcError:
            return None
        return round(statistics.median(times), 3)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
