"""Control-plane load: many agents heartbeating and watching, with the control plane's CPU and memory.

Starts etcd and a control plane (a process; plaintext, so that the figure is the
control plane's own work and not TLS), measures it idle for a baseline, then
lets N simulated agents (bench/_simulated_agents.py, another process) register,
watch their assignments and heartbeat every TTL/3 as real agents do, applies an
application placed on 100 of them, and measures the control plane again over
the same window: CPU (as a share of one core), resident memory, and what the
agents saw (heartbeat latency, assignment snapshots).

    python bench/controlplane_load.py [--agents 1000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _results import save  # noqa: E402
from _simulated_agents import spawn as simulated_agents  # noqa: E402

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


def window(pid: int, seconds: float) -> dict[str, float]:
    """The process's CPU share of one core and its memory over ``seconds``."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    peak = rss_mib(pid)
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        peak = max(peak, rss_mib(pid))
    return {
        "cpu_percent": (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100,
        "rss_mib": rss_mib(pid),
        "peak_rss_mib": peak,
    }


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
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "controlplane_load.json")
    args = parser.parse_args()
    parser_wasm = build_log_analyzer()["parser"]
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp) / "etcd") as etcd:
        work = Path(tmp)
        cp = spawn_controlplane(etcd.url, work, node_ttl=10, extra=["--allow-unsigned"])
        sim = None
        try:
            control = cp.wait_ready()
            pid = cp.process.pid
            time.sleep(2.0)
            idle = window(pid, min(args.seconds, 10.0))
            print(f"control plane idle: {idle['cpu_percent']:.1f}% CPU, {idle['rss_mib']:.0f} MiB", flush=True)
            sim = simulated_agents(control, args.agents, args.seconds + 15)
            assert sim.stdout is not None
            registered = json.loads(sim.stdout.readline())
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
                nodes = len(client.list_nodes())
            time.sleep(5.0)  # heartbeats settle after the burst of assignments
            loaded = window(pid, args.seconds)
            done = json.loads(sim.stdout.readline())
            sim.wait(60)
        finally:
            if sim is not None and sim.poll() is None:
                sim.kill()
            cp.stop()
    result = {
        "agents": args.agents,
        "nodes_listed": nodes,
        "idle": idle,
        "loaded": loaded,
        "cpu_percent_per_100_agents": (loaded["cpu_percent"] - idle["cpu_percent"]) / args.agents * 100,
        "memory_ratio_loaded_vs_idle": loaded["rss_mib"] / idle["rss_mib"],
        "kib_per_agent": (loaded["rss_mib"] - idle["rss_mib"]) * 1024 / args.agents,
        "register_all_seconds": registered["seconds"],
        "apply_to_placed_seconds": placed_s,
        "agents_view": done,
    }
    print(
        f"with {args.agents} agents heartbeating every {10 / 3:.1f}s and watching: "
        f"{loaded['cpu_percent']:.1f}% of a core (idle {idle['cpu_percent']:.1f}%), "
        f"{loaded['rss_mib']:.0f} MiB (idle {idle['rss_mib']:.0f} MiB, {result['kib_per_agent']:.0f} KiB per agent)"
    )
    print(
        f"heartbeat p50 {done['heartbeat_p50_ms']:.2f} ms, p99 {done['heartbeat_p99_ms']:.2f} ms; "
        f"{done['heartbeats']} heartbeats, {done['failures']} failed; "
        f"{done['agents_with_assignments']} agents got assignments ({args.replicas} replicas placed "
        f"{placed_s:.2f}s after apply)"
    )
    save(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
