"""Control API reads on loopback: ListNodes, ListApplications and GetApplication with 100 nodes and 10 applications.

Starts etcd and a control plane (a process, plaintext so that the figure is the
control plane's own work), lets 100 simulated agents register and heartbeat
(bench/_simulated_agents.py, another process), applies 10 applications placed on
them, then times each read one call at a time on a warm channel, beside the
baseline of the same run: the gRPC health check on the same channel (a read that
touches nothing). Target: each read's p50 within 2 ms.

    python bench/control_reads.py [--agents 100] [--apps 10] [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _results import save  # noqa: E402
from _simulated_agents import Fleet  # noqa: E402

from cli.client import ControlClient  # noqa: E402
from cli.devcluster.etcd_launcher import EtcdServer  # noqa: E402
from cli.devcluster.guests import build_log_analyzer  # noqa: E402
from cli.devcluster.processes import spawn_controlplane  # noqa: E402
from neon import manifest  # noqa: E402
from neon._proto import control_pb2, control_pb2_grpc  # noqa: E402
from neon.security.tls import Credentials  # noqa: E402

TARGET_MS = 2.0


def app(name: str, digest: str, replicas: int) -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": name},
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


def timed(call: Callable[[], Any], calls: int) -> dict[str, float]:
    for _ in range(max(calls // 10, 5)):
        call()  # warm: the channel, the server's caches
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(0.99 * (len(times) - 1))] * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "control_reads.json")
    args = parser.parse_args()
    parser_wasm = build_log_analyzer()["parser"]
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp) / "etcd") as etcd:
        cp = spawn_controlplane(etcd.url, Path(tmp), node_ttl=10, extra=["--allow-unsigned"])
        sim = None
        try:
            control = cp.wait_ready()
            sim = Fleet(control, args.agents, 3600)
            sim.registered()
            with ControlClient(control, Credentials.insecure()) as client:
                digest = client.upload(parser_wasm).digest
                names = [f"app-{i:02d}" for i in range(args.apps)]
                for name in names:
                    client.apply(app(name, digest, args.replicas))
                deadline = time.monotonic() + 120
                for name in names:
                    while len(client.get_app(name).components[0].replicas) < args.replicas:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{name} was not placed on {args.replicas} nodes within 120 s")
                        time.sleep(0.05)
            with grpc.insecure_channel(control) as channel:
                stub = control_pb2_grpc.ControlStub(channel)
                health = health_pb2_grpc.HealthStub(channel)
                listed = len(stub.ListNodes(control_pb2.ListNodesRequest()).nodes)
                rows = {
                    "health check (baseline)": timed(lambda: health.Check(health_pb2.HealthCheckRequest()), args.calls),
                    "ListNodes": timed(lambda: stub.ListNodes(control_pb2.ListNodesRequest()), args.calls),
                    "ListApplications": timed(
                        lambda: stub.ListApplications(control_pb2.ListApplicationsRequest()), args.calls
                    ),
                    "GetApplication": timed(
                        lambda: stub.GetApplication(control_pb2.GetApplicationRequest(name="app-03")), args.calls
                    ),
                }
        finally:
            if sim is not None:
                sim.kill()
            cp.stop()
    base = rows["health check (baseline)"]["p50_ms"]
    print(f"{listed} nodes, {args.apps} applications of {args.replicas} replicas; one call at a time, warm channel")
    print(f"{'read':<26} {'p50 ms':>8} {'p99 ms':>8} {'vs health':>10} {'target':>8}")
    for name, row in rows.items():
        row["ratio_to_health"] = row["p50_ms"] / base
        mark = "" if name.startswith("health") else ("ok" if row["p50_ms"] <= TARGET_MS else "MISSED")
        print(f"{name:<26} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['ratio_to_health']:>9.1f}x {mark:>8}")
    save(args.json, {"nodes": listed, "apps": args.apps, "target_p50_ms": TARGET_MS, "reads": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
