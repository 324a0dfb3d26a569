"""Fused vs host-linked vs split vs monolithic: the same batch, four shapes, one run.

The work: ``process-batch`` over N log lines, where the processor calls the
parser once per line. Two sets of the same guests (same WIT worlds, same line
rules): compiled from C (``examples/log-analyzer/native``, no language runtime
inside) and the example's Python guests (componentize-py). Four shapes of each:

- **monolithic**: one component that parses and counts (examples/log-analyzer/monolith,
  the same line parser compiled into the same kind of guest);
- **fused**: processor + parser composed into one component (what the control
  plane does for a co-located pair), so each `parse` stays inside wasmtime;
- **host-linked**: two instances, the processor's `parser` import satisfied by a
  host function that calls the parser instance (a link with ``fuse: false``);
- **split**: processor and parser on two agents, each `parse` forwarded over gRPC.

Part 1 measures in one process through the agent's runtime (no RPC around the
batch): the cost of the shapes themselves. Part 2 deploys the four shapes on a
real cluster (etcd, control plane, two agent processes) and invokes each
through the agents' data plane, as a user would.

    python bench/fusion.py [--lines 110] [--rounds 30] [--guests c,python]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pair import PARSER, agent_channel, edge_and_cloud, pair  # noqa: E402
from _results import save  # noqa: E402

from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime  # noqa: E402
from cli.client import ControlClient  # noqa: E402
from cli.devcluster.guests import EXAMPLES, build_log_analyzer, build_log_analyzer_native  # noqa: E402
from controlplane.wit.composer import fuse  # noqa: E402
from neon import manifest  # noqa: E402
from neon._proto import calls_pb2, dataplane_pb2_grpc  # noqa: E402
from neon.observe import log  # noqa: E402
from neon.security.tls import Credentials  # noqa: E402

BATCH = FunctionRef("", "process-batch")  # the monolith's root export
SHAPES = ("monolithic", "fused", "host-linked", "split")
GUESTS = {"c": ("C (zig cc)", build_log_analyzer_native), "python": ("Python (componentize-py)", build_log_analyzer)}


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def in_process(built: dict[str, Path], lines: list[str], expected: int, rounds: int, work: Path) -> dict[str, float]:
    """Per-batch milliseconds of each shape but split, called straight through the agent runtime."""
    work.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(work.parent / "compiled")
    fused_wasm = work / "fused.wasm"
    fuse(
        ("processor", built["processor"]), [("parser", built["parser"])], [("processor", PARSER, "parser")], fused_wasm
    )

    def template(path: Path, imports: dict[str, dict[str, Any]] | None = None) -> ComponentTemplate:
        component = runtime.load(_digest(path), path)
        return ComponentTemplate(runtime, component, path.stem, imports or {})

    mono = template(built["monolith"]).instantiate()
    fused = template(fused_wasm).instantiate()
    parser = template(built["parser"]).instantiate()
    parse = FunctionRef(PARSER, "parse")
    host_linked = template(built["processor"], {PARSER: {"parse": lambda raw: parser.call(parse, [raw])}}).instantiate()

    out = {}
    for name, instance in (("monolithic", mono), ("fused", fused), ("host-linked", host_linked)):
        batch = instance.template.resolve("process-batch")
        got = instance.call(batch, [lines])
        assert got == expected, f"{name} counted {got}, expected {expected}"
        out[name] = median_ms(lambda instance=instance, batch=batch: instance.call(batch, [lines]), rounds)
    runtime.close()
    return out


def _apps(prefix: str, built: dict[str, str]) -> list[manifest.AppSpec]:
    """The four shapes as applications named ``prefix-shape``; ``built`` maps a guest to its uploaded digest."""

    mono = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": f"{prefix}-monolithic"},
            "spec": {
                "components": [
                    {
                        "name": "processor",
                        "artifact": built["monolith"],
                        "placement": {"nodeSelector": {"tier": "edge"}},
                    }
                ]
            },
        }
    )
    return [
        mono,
        pair(f"{prefix}-fused", built, "edge"),
        pair(f"{prefix}-host-linked", built, "edge", fused=False),
        pair(f"{prefix}-split", built, "cloud"),
    ]


def on_cluster(
    sets: dict[str, dict[str, Path]],
    workloads: dict[str, dict[str, tuple[list[str], int]]],
    rounds: int,
    work: Path,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per guest set and workload, per-batch milliseconds of each shape, invoked through the agents' data plane."""
    built = {f"{guests}/{name}": path for guests, paths in sets.items() for name, path in paths.items()}

    def apps(digests: dict[str, str]) -> list[manifest.AppSpec]:
        return [
            app
            for guests in sets
            for app in _apps(guests, {k.split("/")[1]: v for k, v in digests.items() if k.startswith(f"{guests}/")})
        ]

    with edge_and_cloud(work, built, apps) as (address, control):
        with ControlClient(control, Credentials.from_dir(work / "pki", "admin")) as client:
            for guests in sets:
                modes = {
                    shape: sorted({r.mode for ln in client.get_app(f"{guests}-{shape}").links for r in ln.routes})
                    for shape in SHAPES
                }
                want = {"monolithic": [], "fused": ["fused"], "host-linked": ["local"], "split": ["remote"]}
                assert modes == want, (guests, modes)
        channels = {n: agent_channel(work, a) for n, a in address.items()}
        try:
            return {
                guests: {
                    w: _time_shapes(channels, guests, lines, expected, rounds)
                    for w, (lines, expected) in workloads[guests].items()
                }
                for guests in sets
            }
        finally:
            for channel in channels.values():
                channel.close()


def _time_shapes(
    channels: dict[str, grpc.Channel], guests: str, lines: list[str], expected: int, rounds: int
) -> dict[str, float]:
    request = json.dumps([lines])
    calls = {}
    for name in SHAPES:
        node = "cloud-1" if name == "split" else "edge-1"
        stub = dataplane_pb2_grpc.DataPlaneStub(channels[node])
        msg = calls_pb2.InvokeRequest(
            app=f"{guests}-{name}", component="processor", function="process-batch", args_json=request
        )
        reply = stub.Invoke(msg, timeout=60)
        assert json.loads(reply.result_json) == expected, (name, reply.result_json)
        for _ in range(3):
            stub.Invoke(msg, timeout=60)
        calls[name] = lambda stub=stub, msg=msg: stub.Invoke(msg, timeout=60)
    samples: dict[str, list[float]] = {n: [] for n in SHAPES}
    for _ in range(rounds):  # interleaved, so drift hits every shape alike
        for name in SHAPES:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return {n: statistics.median(s) * 1e3 for n, s in samples.items()}


def _workloads(built: dict[str, Path], lines: int, work: Path) -> dict[str, tuple[list[str], int]]:
    """The sample.log mix and its well-formed lines, ``lines`` long, each with the monolith's count."""
    sample = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()
    valid = [ln for ln in sample if not ln.startswith("this") and " FATAL " not in ln]
    runtime = Runtime(work / "compiled")
    mono = ComponentTemplate(runtime, runtime.load(_digest(built["monolith"]), built["monolith"]), "mono", {})
    workloads = {}
    for name, source in (("sample.log mix", sample), ("well-formed only", valid)):
        batch = [source[i % len(source)] for i in range(lines)]
        # The monolith is the reference answer: every shape must count the same lines.
        workloads[name] = (batch, mono.instantiate().call(BATCH, [batch]))
    runtime.close()
    return workloads


def _report(
    title: str, lines: int, rounds: int, name: str, counted: int, inner: dict[str, float], outer: dict[str, float]
) -> dict[str, Any]:
    ratios = {
        "fused_vs_monolithic": {
            "in_process": inner["fused"] / inner["monolithic"],
            "cluster": outer["fused"] / outer["monolithic"],
        },
        "host_linked_vs_fused": {
            "in_process": inner["host-linked"] / inner["fused"],
            "cluster": outer["host-linked"] / outer["fused"],
        },
        "split_vs_fused": {"cluster": outer["split"] / outer["fused"]},
    }
    print(f"\n{title}: process-batch of {lines} lines, {name} ({counted} well formed), median of {rounds} rounds")
    print(f"  {'shape':<13}{'in process':>14}{'via data plane':>18}")
    for shape in SHAPES:
        cell = f"{inner[shape]:.3f} ms" if shape in inner else "-"
        print(f"  {shape:<13}{cell:>14}{outer[shape]:>15.3f} ms")
    f, h = ratios["fused_vs_monolithic"], ratios["host_linked_vs_fused"]
    print(
        f"  fused / monolithic   {f['in_process']:.2f}x in process, {f['cluster']:.2f}x via data plane (target <= 1.2x)"
    )
    print(
        f"  host-linked / fused  {h['in_process']:.1f}x in process, {h['cluster']:.1f}x via data plane (target >= 10x)"
    )
    print(f"  split / fused        {ratios['split_vs_fused']['cluster']:.1f}x via data plane")
    per_call = (inner["fused"] - inner["monolithic"]) / lines * 1e3
    host = (inner["host-linked"] - inner["fused"]) / lines * 1e3
    print(f"  per parse call: the fused boundary adds {per_call:.2f} us, a host hop {host:.1f} us more")
    return {"counted": counted, "in_process_ms": inner, "cluster_ms": outer, "ratios": ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=110)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--guests", default="c,python", help="guest sets to compare, of: " + ", ".join(GUESTS))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "fusion.json")
    args = parser.parse_args()
    chosen = args.guests.split(",")
    if unknown := set(chosen) - set(GUESTS):
        parser.error(f"unknown guest set(s) {sorted(unknown)}; choose from {sorted(GUESTS)}")
    log.configure(level="error")  # the Python guests report malformed lines on stderr: not the point here

    sets = {guests: GUESTS[guests][1]() for guests in chosen}
    result: dict[str, Any] = {"lines": args.lines, "rounds": args.rounds, "guests": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        workloads = {guests: _workloads(built, args.lines, work / guests) for guests, built in sets.items()}
        local = {
            guests: {
                w: in_process(built, lines, n, args.rounds, work / guests / w.split()[0].replace(".", "-"))
                for w, (lines, n) in workloads[guests].items()
            }
            for guests, built in sets.items()
        }
        cluster = on_cluster(sets, workloads, args.rounds, work)

    for guests in sets:
        result["guests"][guests] = {
            name: _report(
                GUESTS[guests][0], args.lines, args.rounds, name, counted, local[guests][name], cluster[guests][name]
            )
            for name, (_, counted) in workloads[guests].items()
        }
    save(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
