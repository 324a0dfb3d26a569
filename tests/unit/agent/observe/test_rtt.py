"""Round trips to peers over the gRPC health check: measured, unreachable peers left out, and no channel kept to
an address no peer has any more (a peer restarted on another port)."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from agent.observe.rtt import RttProber


async def _server() -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def test_round_trips_are_measured_and_channels_to_addresses_no_peer_has_are_closed() -> None:
    async def run() -> None:
        first, first_address = await _server()
        second, second_address = await _server()
        prober = RttProber(samples=2, timeout=2.0)
        try:
            got = await prober.measure([("edge-2", first_address), ("cloud-1", second_address)])
            assert set(got) == {"edge-2", "cloud-1"} and all(ms > 0 for ms in got.values())
            await first.stop(None)  # edge-2 restarts on another port
            restarted, restarted_address = await _server()
            got = await prober.measure([("edge-2", restarted_address), ("cloud-1", second_address)])
            assert set(got) == {"edge-2", "cloud-1"}
            assert set(prober._channels) == {restarted_address, second_address}
            got = await prober.measure([("cloud-1", second_address), ("gone", first_address)])
            assert set(got) == {"cloud-1"}  # the unreachable one is left out
            await restarted.stop(None)
        finally:
            await prober.close()
            await second.stop(None)

    asyncio.run(run())
