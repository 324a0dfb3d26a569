"""Many simulated agents against one control plane, from several processes (for bench/controlplane_load.py).

Each agent has its own gRPC connection, as a real one does: it registers, opens its WatchAssignments stream,
reports an empty status, then heartbeats every lease TTL / 3. A heartbeat answered NOT_FOUND (its lease
expired) makes it register again, as a real agent does. Every failed call is counted by kind and status
code; nothing is retried silently.

The fleet is split over several worker processes (one asyncio loop each) so that the simulator is not the
limit: a worker prints one JSON line when its agents have all registered, measures for ``--seconds`` from
the line ``measure`` on its standard input (:meth:`Fleet.measure`), then prints one line of what it saw.

    python bench/_simulated_agents.py --worker --control ADDR --first 0 --count 2500 --seconds 30 --epoch T
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neon._proto import control_pb2, control_pb2_grpc  # noqa: E402

PER_WORKER = 2500  # agents one worker's loop keeps up with (its heartbeats' latency stays its own small part)


class Fleet:
    """``agents`` simulated agents in ``workers`` processes; ``seconds``: how long each measures from
    :meth:`measure`."""

    def __init__(self, control: str, agents: int, seconds: float, workers: int = 0, concurrency: int = 200) -> None:
        workers = workers or max(1, -(-agents // PER_WORKER))
        self.agents = agents
        self.epoch = time.time()
        self.workers: list[subprocess.Popen[str]] = []
        first = 0
        for w in range(workers):
            count = agents // workers + (1 if w < agents % workers else 0)
            argv = [sys.executable, __file__, "--worker", "--control", control, "--first", str(first)]
            argv += ["--count", str(count), "--seconds", str(seconds), "--epoch", repr(self.epoch)]
            argv += ["--concurrency", str(max(1, concurrency // workers))]
            self.workers.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            first += count

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def registered(self) -> dict[str, Any]:
        """Blocks until every worker's agents have registered: the seconds from the fleet's start until the last
        one had, and the registrations' latency and failures."""
        lines = [self._line(w, "registered") for w in self.workers]
        return {
            "seconds": max(line["seconds"] for line in lines),
            "register_p50_ms": _median([line["register_p50_ms"] for line in lines]),
            "failures": _merge(line["failures"] for line in lines),
        }

    def measure(self) -> None:
        """Start the measured window now (in every worker): heartbeats before it are not counted."""
        for w in self.workers:
            assert w.stdin is not None
            w.stdin.write("measure\n")
            w.stdin.flush()

    def done(self) -> dict[str, Any]:
        """Blocks until every worker has ended its run; what the fleet saw, merged."""
        lines = [self._line(w, "done") for w in self.workers]
        beats = sorted(ms for line in lines for ms in line["heartbeat_ms"])
        window = sum(line["window_seconds"] * line["agents"] for line in lines) / max(1, self.agents)
        return {
            "agents": self.agents,
            "heartbeats": len(beats),
            "heartbeat_p50_ms": _pct(beats, 0.50),
            "heartbeat_p99_ms": _pct(beats, 0.99),
            "heartbeat_max_ms": beats[-1] if beats else None,
            "failures": _merge(line["failures"] for line in lines),
            "snapshots": sum(line["snapshots"] for line in lines),
            "agents_with_assignments": sum(line["agents_with_assignments"] for line in lines),
            "watches_open": sum(line["watches_open"] for line in lines),
            "payload_bytes_per_agent_minute": sum(line["payload_bytes"] for line in lines)
            / max(1, self.agents)
            / max(window, 1e-9)
            * 60,
            "window_seconds": window,
        }

    def kill(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.kill()
                w.wait()

    def _line(self, worker: subprocess.Popen[str], event: str) -> dict[str, Any]:
        assert worker.stdout is not None
        text = worker.stdout.readline()
        if not text:
            raise SystemExit(f"simulated-agent worker {worker.pid} exited ({worker.wait()}) before '{event}'")
        line = json.loads(text)
        if line.get("event") != event:
            raise SystemExit(f"simulated-agent worker {worker.pid} said {line} where '{event}' was expected")
        return line


class _Worker:
    def __init__(self, control: str, first: int, count: int, concurrency: int) -> None:
        self.control = control
        self.first = first
        self.count = count
        self.gate = asyncio.Semaphore(concurrency)  # registrations in flight at once (a fleet's starts spread)
        self.failures: Counter[str] = Counter()
        self.registers: list[float] = []
        self.heartbeats: list[float] = []
        self.snapshots = 0
        self.assigned: set[str] = set()
        self.watches_open = 0
        self.payload = 0  # request and reply bytes while measuring
        self.measuring = False
        self.all_registered = asyncio.Event()
        self.stop = asyncio.Event()

    async def agent(self, index: int) -> None:
        name = f"sim-{index:05d}"
        async with grpc.aio.insecure_channel(self.control) as channel:
            stub = control_pb2_grpc.AgentControlStub(channel)
            request = _register_request(name, index)
            reply = await self._register(stub, request, first=True)
            watch = asyncio.create_task(self._watch(stub, name))
            try:
                await stub.ReportStatus(control_pb2.StatusReport(node=name), timeout=30)
            except grpc.aio.AioRpcError as err:
                self.failures[f"report {err.code().name}"] += 1
            interval = max(reply.lease_ttl_seconds / 3.0, 0.5)
            await self._pause(interval * ((index * 7919) % 1000) / 1000)  # spread like real agents' starts
            while not self.stop.is_set():
                beat = control_pb2.HeartbeatRequest(name=name, lease_id=reply.lease_id)
                start = time.perf_counter()
                try:
                    answer = await stub.Heartbeat(beat, timeout=interval)
                    if self.measuring:
                        self.heartbeats.append((time.perf_counter() - start) * 1e3)
                        self.payload += beat.ByteSize() + answer.ByteSize()
                except grpc.aio.AioRpcError as err:
                    self.failures[f"heartbeat {err.code().name}"] += 1
                    if err.code() == grpc.StatusCode.NOT_FOUND:
                        reply = await self._register(stub, request, first=False)
                await self._pause(interval)
            watch.cancel()

    async def _register(
        self, stub: control_pb2_grpc.AgentControlStub, request: control_pb2.RegisterRequest, first: bool
    ) -> control_pb2.RegisterResponse:
        while True:
            start = time.perf_counter()
            try:
                async with self.gate:
                    reply = await stub.Register(request, timeout=60)
                break
            except grpc.aio.AioRpcError as err:
                self.failures[f"register {err.code().name}"] += 1
                await asyncio.sleep(1.0)
        if first:
            self.registers.append((time.perf_counter() - start) * 1e3)
            if len(self.registers) == self.count:
                self.all_registered.set()
        return reply

    async def _watch(self, stub: control_pb2_grpc.AgentControlStub, name: str) -> None:
        call = stub.WatchAssignments(control_pb2.WatchAssignmentsRequest(name=name))
        self.watches_open += 1
        try:
            async for snapshot in call:
                self.snapshots += 1
                if self.measuring:
                    self.payload += snapshot.ByteSize()
                if snapshot.assignments:
                    self.assigned.add(name)
        except grpc.aio.AioRpcError as err:
            if not self.stop.is_set():
                self.failures[f"watch {err.code().name}"] += 1
        except asyncio.CancelledError:
            call.cancel()
        finally:
            self.watches_open -= 1

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass


def _register_request(name: str, index: int) -> control_pb2.RegisterRequest:
    return control_pb2.RegisterRequest(
        name=name,
        labels={"tier": "edge" if index % 4 else "cloud", "zone": f"z{index % 10}"},
        dataplane_address=f"10.{index // 62500}.{index // 250 % 250}.{index % 250 + 1}:7500",
        memory_bytes=8 << 30,
        instance_slots=64,
        version="sim",
        capabilities=["volumes", "wasi-filesystem", "wasi-sockets"],
    )


async def _run(args: argparse.Namespace) -> None:
    worker = _Worker(args.control, args.first, args.count, args.concurrency)
    tasks = [asyncio.create_task(worker.agent(i)) for i in range(args.first, args.first + args.count)]
    await worker.all_registered.wait()
    _say(
        event="registered",
        seconds=time.time() - args.epoch,
        register_p50_ms=_pct(sorted(worker.registers), 0.5),
        failures=dict(worker.failures),
    )
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # Fleet.measure: the window starts
    worker.measuring = True
    started = time.monotonic()
    await asyncio.sleep(args.seconds)
    worker.measuring = False
    window = time.monotonic() - started
    open_at_end = worker.watches_open
    worker.stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    _say(
        event="done",
        agents=args.count,
        heartbeat_ms=[round(ms, 3) for ms in worker.heartbeats],
        failures=dict(worker.failures),
        snapshots=worker.snapshots,
        agents_with_assignments=len(worker.assigned),
        watches_open=open_at_end,
        payload_bytes=worker.payload,
        window_seconds=window,
    )


def _say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _pct(ordered: list[float], q: float) -> float | None:
    return ordered[int(q * (len(ordered) - 1))] if ordered else None


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return _pct(known, 0.5)


def _merge(counters: Any) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counts in counters:
        total.update(counts)
    return dict(total)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--epoch", type=float, default=time.time())
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
