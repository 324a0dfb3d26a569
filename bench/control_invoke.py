"""Control.Invoke against what it is made of: a forwarded call plus one mutual-TLS gRPC hop, in one run.

A user's invoke crosses one hop more than a forwarded call: client -> control plane -> agent, where a split
link's call goes agent -> agent. So its baseline is the p50 of a forwarded call of the same function (the
agent's own forwarder, as node cloud-1, to the parser on edge-1) plus the p50 of a plain grpcio echo over
mutual TLS on loopback; target: Invoke's p50 within 1.5x that sum. Starts etcd, a control plane and two
agents (separate processes, mutual TLS), runs the C parser on the edge (its parse takes microseconds, so
the figures are the path's), and times one `parse` call at a time, each way taking turns in slices. Then 16
callers at once against one: concurrent invokes must not queue behind each other.

    python bench/control_invoke.py [--calls 1500]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pair import edge_and_cloud, pair  # noqa: E402
from _results import save  # noqa: E402
from forwarding import echo_server, forwarder  # noqa: E402

from cli.devcluster.guests import EXAMPLES, build_log_analyzer_native  # noqa: E402
from neon import manifest  # noqa: E402
from neon._proto import calls_pb2, control_pb2_grpc, values_pb2  # noqa: E402
from neon.rpc.servers import CHANNEL_OPTIONS  # noqa: E402
from neon.security import pki  # noqa: E402
from neon.security.tls import Credentials, sync_channel  # noqa: E402

TARGET = 1.5
SLICES = 6
CONCURRENT = 16


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3


def taking_turns(calls: dict[str, Callable[[], Any]], per_call: int) -> dict[str, list[float]]:
    """Round trips of each call, one at a time, in alternating slices."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(SLICES):
        for name, call in calls.items():
            for _ in range(per_call // SLICES):
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    return samples


def throughput(call: Callable[[], Any], callers: int, calls: int) -> float:
    """Calls per second with ``callers`` calling at once."""
    with ThreadPoolExecutor(callers) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: call(), range(calls)))
        return calls / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="calls of each kind, one at a time")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "control_invoke.json")
    args = parser.parse_args()
    line = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()[0]
    c_guests = build_log_analyzer_native()
    built = {"parser": c_guests["parser"], "processor": c_guests["processor"]}

    def apps(digests: dict[str, str]) -> list[manifest.AppSpec]:
        return [pair("c", digests, "cloud")]  # the parser on the edge, the processor in the cloud

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        address, control = stack.enter_context(edge_and_cloud(work, built, apps))
        forward = stack.enter_context(forwarder(work, "c", address["edge-1"], built["parser"]))
        echo, _ = stack.enter_context(echo_server(work / "pki"))
        channel = stack.enter_context(
            sync_channel(control, Credentials.from_dir(work / "pki", "admin"), pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS)
        )
        stub = control_pb2_grpc.ControlStub(channel)
        as_json = calls_pb2.InvokeRequest(app="c", component="parser", function="parse", args_json=json.dumps([line]))
        typed = calls_pb2.InvokeRequest(
            app="c",
            component="parser",
            function="parse",
            args=values_pb2.ValueList(values=[values_pb2.Value(string=line)]),
        )
        payload = typed.SerializeToString()
        assert "ok" in json.loads(stub.Invoke(as_json, timeout=30).result_json)
        assert stub.Invoke(typed, timeout=30).result.case.index == 0  # ok
        assert forward(line) is not None
        calls = {
            "invoke (JSON)": lambda: stub.Invoke(as_json, timeout=30),
            "invoke (typed)": lambda: stub.Invoke(typed, timeout=30),
            "forwarded call": lambda: forward(line),
            "mTLS echo": lambda: echo(payload),
        }
        for call in calls.values():
            for _ in range(100):
                call()  # warm
        samples = taking_turns(calls, args.calls)
        one = throughput(calls["invoke (JSON)"], 1, args.calls // 3)
        many = throughput(calls["invoke (JSON)"], CONCURRENT, args.calls)

    baseline = p50_ms(samples["forwarded call"]) + p50_ms(samples["mTLS echo"])
    rows = {name: {"p50_ms": p50_ms(s), "p99_ms": p99_ms(s)} for name, s in samples.items()}
    print(f"one call at a time ({args.calls} each, in {SLICES} alternating slices), C parser on edge-1:")
    print(f"{'':<18} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in rows.items():
        print(f"{name:<18} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f}")
    result: dict[str, Any] = {"calls": rows, "baseline_p50_ms": baseline, "target": TARGET}
    print(f"baseline: forwarded call + one mTLS hop = {baseline:.3f} ms")
    for name in ("invoke (JSON)", "invoke (typed)"):
        ratio = rows[name]["p50_ms"] / baseline
        result[f"ratio {name}"] = ratio
        print(f"{name}: {ratio:.2f}x the baseline ({'ok' if ratio <= TARGET else 'MISSED'}; target {TARGET}x)")
    result["calls_per_second"] = {"1 caller": one, f"{CONCURRENT} callers": many}
    print(
        f"invoke throughput: {one:.0f} calls/s with 1 caller, {many:.0f} with {CONCURRENT} at once "
        f"({many / one:.2f}x: {'they do not serialize' if many / one > 1.2 else 'SERIALIZED'})"
    )
    save(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
