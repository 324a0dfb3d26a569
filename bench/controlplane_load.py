"""Control-plane load: many agents registering, heartbeating and watching one control plane.

Starts etcd and a control plane (a process; plaintext, so that the figure is the control plane's own work
and not TLS), measures both idle for a baseline, then lets N simulated agents (bench/_simulated_agents.py,
several processes, a connection each) register, watch their assignments and heartbeat every TTL/3 as real
agents do, applies an application placed on 100 of them, and measures the control plane, etcd and the
simulator over the same window: CPU (as a share of one core), resident memory, the bytes on the control
plane's connections, and what the agents saw (heartbeat latency, assignment snapshots, every failed call).

It fails (exit 1) when any registration, heartbeat, report or watch failed, when any node was reported
Unreachable, or when the heartbeats' p99 is not well under a third of the lease TTL (at most half of it).

    python bench/controlplane_load.py [--agents 1000] [--seconds 30] [--node-ttl 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _results import save  # noqa: E402
from _simulated_agents import Fleet  # noqa: E402

from cli.client import ControlClient  # noqa: E402
from cli.devcluster.etcd_launcher import EtcdServer  # noqa: E402
from cli.devcluster.guests import build_log_analyzer  # noqa: E402
from cli.devcluster.processes import spawn_controlplane  # noqa: E402
from neon import manifest  # noqa: E402
from neon.security.tls import Credentials  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def window(pids: dict[str, list[int]], seconds: float, port: int) -> dict[str, dict[str, float]]:
    """Each named group of processes' CPU share of one core and memory over ``seconds``; under ``wire``, the
    bytes that crossed the control plane's connections (``port``) meanwhile, both ways."""
    cpu0, wire0, t0 = {k: _cpu(v) for k, v in pids.items()}, wire_bytes(port), time.monotonic()
    peak = {k: _rss(v) for k, v in pids.items()}
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        peak = {k: max(peak[k], _rss(v)) for k, v in pids.items()}
    elapsed = time.monotonic() - t0
    out: dict[str, dict[str, float]] = {
        k: {"cpu_percent": (_cpu(v) - cpu0[k]) / elapsed * 100, "rss_mib": _rss(v), "peak_rss_mib": peak[k]}
        for k, v in pids.items()
    }
    out["wire"] = {"bytes": wire_bytes(port) - wire0, "seconds": elapsed}
    return out


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def _rss(pids: list[int]) -> float:
    return sum(rss_mib(p) for p in pids)


def wire_bytes(port: int) -> int:
    """Bytes sent and received so far on the established TCP connections to ``port`` (the kernel's counts,
    framing and all; a connection's counts restart when it does, and there are none here that do)."""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    total = 0
    for field in out.split():
        for name in ("bytes_acked:", "bytes_received:"):
            if field.startswith(name):
                total += int(field[len(name) :])
    return total


class Unreachables(threading.Thread):
    """Counts the NodeUnreachable events the control plane records while it runs."""

    def __init__(self, control: str) -> None:
        super().__init__(daemon=True)
        self.control = control
        self.kinds: Counter[str] = Counter()

    def run(self) -> None:
        try:
            with ControlClient(self.control, Credentials.insecure()) as client:
                for event in client.events(history=0, follow=True):
                    self.kinds[event.kind] += 1
        except Exception:  # noqa: BLE001 - the control plane stopped at the end of the run
            pass


def spread_app(digest: str, replicas: int) -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "spread"},
            "spec": {
                "components": [
                    {
                        "name": "parser",
                        "artifact": digest,
                        "replicas": replicas,
                        "placement": {"nodeSelector": {"tier": "edge"}},
                    }
                ]
            },
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--node-ttl", type=int, default=10, help="the agents' lease TTL; they beat every TTL/3")
    parser.add_argument("--workers", type=int, default=0, help="simulator processes (0: one per 2,500 agents)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "controlplane_load.json")
    args = parser.parse_args()
    parser_wasm = build_log_analyzer()["parser"]
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp) / "etcd") as etcd:
        work = Path(tmp)
        cp = spawn_controlplane(etcd.url, work, node_ttl=args.node_ttl, extra=["--allow-unsigned"])
        fleet = None
        try:
            control = cp.wait_ready()
            port = int(control.rsplit(":", 1)[1])
            assert etcd.process is not None
            pids = {"controlplane": [cp.process.pid], "etcd": [etcd.process.pid]}
            time.sleep(2.0)
            idle = window(pids, min(args.seconds, 10.0), port)
            print(
                f"idle: control plane {idle['controlplane']['cpu_percent']:.1f}% CPU, "
                f"{idle['controlplane']['rss_mib']:.0f} MiB; etcd {idle['etcd']['cpu_percent']:.1f}%, "
                f"{idle['etcd']['rss_mib']:.0f} MiB",
                flush=True,
            )
            events = Unreachables(control)
            events.start()
            fleet = Fleet(control, args.agents, args.seconds, workers=args.workers)
            registered = fleet.registered()
            print(f"{args.agents} agents registered in {registered['seconds']:.1f}s", flush=True)
            with ControlClient(control, Credentials.insecure()) as client:
                digest = client.upload(parser_wasm).digest
                start = time.perf_counter()
                client.apply(spread_app(digest, args.replicas))
                deadline = time.monotonic() + 120
                while len((app := client.get_app("spread")).components[0].replicas) < args.replicas:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"spread was not placed: {app.phase}: {app.reason}")
                    time.sleep(0.05)
                placed_s = time.perf_counter() - start
                nodes = client.list_nodes()
            time.sleep(5.0)  # heartbeats settle after the burst of assignments
            fleet.measure()
            loaded = window({**pids, "simulator": fleet.pids}, args.seconds, port)
            done = fleet.done()
        finally:
            if fleet is not None:
                fleet.kill()
            cp.stop()
    return report(args, idle, loaded, registered, done, placed_s, nodes, events.kinds)


def report(
    args: argparse.Namespace,
    idle: dict[str, dict[str, float]],
    loaded: dict[str, dict[str, float]],
    registered: dict[str, Any],
    done: dict[str, Any],
    placed_s: float,
    nodes: list[Any],
    kinds: Counter[str],
) -> int:
    cp, cp_idle, etcd = loaded["controlplane"], idle["controlplane"], loaded["etcd"]
    beat_every = args.node_ttl / 3
    failures = done["failures"]  # every failed call from the first registration to the end (the workers count on)
    not_ready = [n.name for n in nodes if n.state != "Ready"]
    wire = loaded["wire"]["bytes"] / args.agents / loaded["wire"]["seconds"] * 60
    result = {
        "agents": args.agents,
        "node_ttl_seconds": args.node_ttl,
        "heartbeat_every_seconds": beat_every,
        "nodes_listed": len(nodes),
        "idle": idle,
        "loaded": loaded,
        "cpu_percent_per_100_agents": (cp["cpu_percent"] - cp_idle["cpu_percent"]) / args.agents * 100,
        "memory_ratio_loaded_vs_idle": cp["rss_mib"] / cp_idle["rss_mib"],
        "kib_per_agent": (cp["rss_mib"] - cp_idle["rss_mib"]) * 1024 / args.agents,
        "etcd_kib_per_agent": (etcd["rss_mib"] - idle["etcd"]["rss_mib"]) * 1024 / args.agents,
        "wire_bytes_per_agent_minute": wire,
        "register_all_seconds": registered["seconds"],
        "register_p50_ms": registered["register_p50_ms"],
        "apply_to_placed_seconds": placed_s,
        "agents_view": done,
        "failures": failures,
        "unreachable_events": kinds["NodeUnreachable"],
        "nodes_not_ready": len(not_ready),
        "heartbeat_p99_vs_interval": (done["heartbeat_p99_ms"] or 0) / 1e3 / beat_every,
    }
    print(
        f"with {args.agents} agents heartbeating every {beat_every:.1f}s and watching: control plane "
        f"{cp['cpu_percent']:.1f}% of a core (idle {cp_idle['cpu_percent']:.1f}%), {cp['rss_mib']:.0f} MiB "
        f"({result['kib_per_agent']:.0f} KiB per agent); etcd {etcd['cpu_percent']:.1f}%, {etcd['rss_mib']:.0f} MiB; "
        f"simulator {loaded['simulator']['cpu_percent']:.1f}% ({loaded['simulator']['rss_mib']:.0f} MiB)"
    )
    print(
        f"registered all in {registered['seconds']:.1f}s (p50 {registered['register_p50_ms']:.0f} ms); heartbeat "
        f"p50 {done['heartbeat_p50_ms']:.2f} ms, p99 {done['heartbeat_p99_ms']:.2f} ms, max "
        f"{done['heartbeat_max_ms']:.0f} ms ({result['heartbeat_p99_vs_interval']:.3f} of the interval); "
        f"{done['heartbeats']} heartbeats; {wire / 1024:.1f} KiB per agent per minute on the wire "
        f"({done['payload_bytes_per_agent_minute'] / 1024:.1f} KiB of messages); {done['watches_open']} watches "
        f"open; {done['agents_with_assignments']} agents got assignments ({args.replicas} replicas placed "
        f"{placed_s:.2f}s after apply)"
    )
    save(args.json, result)
    problems = []
    if failures:
        problems.append(f"failed calls: {failures}")
    if kinds["NodeUnreachable"] or not_ready:
        problems.append(f"{kinds['NodeUnreachable']} NodeUnreachable events; not Ready at the end: {not_ready[:10]}")
    if done["watches_open"] != args.agents:
        problems.append(f"only {done['watches_open']} of {args.agents} assignment watches were open at the end")
    if result["heartbeat_p99_vs_interval"] > 0.5:
        problems.append(
            f"heartbeat p99 {done['heartbeat_p99_ms']:.0f} ms is not well under the {beat_every:.1f}s interval"
        )
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
