"""Many simulated agents against one control plane, from one process (for bench/controlplane_load.py).

Each registers (its own gRPC connection), opens its WatchAssignments stream,
reports an empty status, then heartbeats every lease TTL / 3 like a real agent.
Runs for --seconds after every agent has registered, then prints one JSON line:
heartbeat latency percentiles, assignment snapshots received, failures.

    python bench/_simulated_agents.py --control ADDR --agents 1000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neon._proto import control_pb2, control_pb2_grpc  # noqa: E402


def spawn(control: str, agents: int, seconds: float) -> subprocess.Popen[str]:
    """This script as another process (its stdout a pipe: read the "registered" line, then the summary)."""
    argv = [sys.executable, __file__, "--control", control, "--agents", str(agents), "--seconds", str(seconds)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


class Sim:
    def __init__(self, control: str, count: int) -> None:
        self.control = control
        self.count = count
        self.heartbeats: list[float] = []
        self.registers: list[float] = []
        self.snapshots = 0
        self.assigned: set[str] = set()
        self.failures = 0
        self.registered = asyncio.Event()
        self._done = 0
        self.stop = asyncio.Event()

    async def agent(self, index: int) -> None:
        name = f"sim-{index:05d}"
        tier = "edge" if index % 4 else "cloud"
        async with grpc.aio.insecure_channel(self.control) as channel:
            stub = control_pb2_grpc.AgentControlStub(channel)
            start = time.perf_counter()
            reply = await stub.Register(
                control_pb2.RegisterRequest(
                    name=name,
                    labels={"tier": tier, "zone": f"z{index % 10}"},
                    dataplane_address=f"10.{index // 250}.{index % 250}.1:7500",
                    memory_bytes=8 << 30,
                    instance_slots=64,
                    version="sim",
                    capabilities=["volumes", "wasi-filesystem", "wasi-sockets"],
                ),
                timeout=60,
            )
            self.registers.append(time.perf_counter() - start)
            self._done += 1
            if self._done == self.count:
                self.registered.set()
            watch = stub.WatchAssignments(control_pb2.WatchAssignmentsRequest(name=name))
            watcher = asyncio.create_task(self._watch(name, watch))
            await stub.ReportStatus(control_pb2.StatusReport(node=name), timeout=30)
            interval = max(reply.lease_ttl_seconds / 3.0, 0.5)
            await asyncio.sleep(interval * (index % 97) / 97)  # spread the heartbeats like real agents' starts
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    await stub.Heartbeat(
                        control_pb2.HeartbeatRequest(name=name, lease_id=reply.lease_id), timeout=interval
                    )
                    self.heartbeats.append(time.perf_counter() - start)
                except grpc.aio.AioRpcError:
                    self.failures += 1
                try:
                    await asyncio.wait_for(self.stop.wait(), interval)
                except TimeoutError:
                    pass
            watcher.cancel()
            watch.cancel()

    async def _watch(self, name: str, watch: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        try:
            async for snapshot in watch:
                self.snapshots += 1
                if snapshot.assignments:
                    self.assigned.add(name)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", required=True)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sim = Sim(args.control, args.agents)
    tasks = [asyncio.create_task(sim.agent(i)) for i in range(args.agents)]
    started = time.perf_counter()
    await asyncio.wait_for(sim.registered.wait(), 300)
    print(json.dumps({"event": "registered", "seconds": time.perf_counter() - started}), flush=True)
    await asyncio.sleep(args.seconds)
    sim.stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    beats = sorted(sim.heartbeats)
    print(
        json.dumps(
            {
                "event": "done",
                "agents": args.agents,
                "heartbeats": len(beats),
                "heartbeat_p50_ms": statistics.median(beats) * 1e3 if beats else None,
                "heartbeat_p99_ms": beats[int(0.99 * (len(beats) - 1))] * 1e3 if beats else None,
                "register_p50_ms": statistics.median(sim.registers) * 1e3,
                "snapshots": sim.snapshots,
                "agents_with_assignments": len(sim.assigned),
                "failures": sim.failures,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
