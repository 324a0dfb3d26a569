"""Cost of a split link: a forwarded call vs a raw grpcio echo, measured in one run.

Starts etcd, a control plane and two agents (separate processes), deploys the
log analyzer twice - once split (processor in the cloud, parser on the edge)
and once co-located (both on the edge, host-linked: `fuse: false`) - and times `process-batch` on N lines
through each agent's data plane directly. The difference divided by N is what
one forwarded `parse` call costs on top of a local (host-linked) one. The
baseline is a plain grpcio unary echo of a payload of the same size between
two processes on loopback, over mutual TLS as every Neon Grid hop is (the
plaintext echo is printed too, to show what TLS itself costs).

    python bench/forwarding.py [--lines 110] [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pair import agent_channel, edge_and_cloud, pair  # noqa: E402

from neon import manifest, pki  # noqa: E402
from neon._proto import dataplane_pb2, dataplane_pb2_grpc, values_pb2  # noqa: E402
from neon.etcd_server import free_port  # noqa: E402
from neon.guests import EXAMPLES, build_log_analyzer  # noqa: E402
from neon.tls import Credentials, sync_channel  # noqa: E402

ECHO_SERVER = textwrap.dedent("""
    import sys, grpc
    from concurrent import futures
    def echo(request, context):
        return request
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if len(sys.argv) > 2:  # ca, cert, key: mutual TLS like every Neon Grid hop
        ca, cert, key = (open(p, "rb").read() for p in sys.argv[2:5])
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
        server.add_secure_port("127.0.0.1:" + sys.argv[1], creds)
    else:
        server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()
""")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_echo(payload: bytes, calls: int, pki_dir: Path | None = None) -> list[float]:
    """Round trips of a plain grpcio echo server in another process; mutual TLS with ``pki_dir``."""
    port = free_port()
    tls_args = [str(pki_dir / n) for n in ("ca.pem", "controlplane.pem", "controlplane.key")] if pki_dir else []
    argv = [sys.executable, "-c", ECHO_SERVER, str(port), *tls_args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    creds = Credentials.from_dir(pki_dir, "admin") if pki_dir else Credentials.insecure()
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with sync_channel(f"127.0.0.1:{port}", creds, pki.CONTROLPLANE_NAME, []) as channel:
            echo = channel.unary_unary("/bench.Echo/Echo")
            for _ in range(200):
                echo(payload, timeout=5)
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                echo(payload, timeout=5)
                samples.append(time.perf_counter() - start)
        return samples
    finally:
        proc.terminate()
        proc.wait()


def timed_batches(work: Path, address: str, app: str, lines: list[str], rounds: int) -> list[float]:
    request = dataplane_pb2.InvokeRequest(
        app=app, component="processor", function="process-batch", args_json=json.dumps([lines])
    )
    with agent_channel(work, address) as channel:
        stub = dataplane_pb2_grpc.DataPlaneStub(channel)
        for _ in range(3):
            stub.Invoke(request, timeout=60)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            reply = stub.Invoke(request, timeout=60)
            samples.append(time.perf_counter() - start)
        expected = sum(1 for ln in lines if not ln.startswith("this") and " FATAL " not in ln)
        assert json.loads(reply.result_json) == expected, reply.result_json
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=110)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "forwarding.json")
    args = parser.parse_args()

    sample = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()
    lines = [sample[i % len(sample)] for i in range(args.lines)]
    built = build_log_analyzer()

    def apps(digests: dict[str, str]) -> list[manifest.AppSpec]:
        # split, and host-linked on one node: the same call, minus the network
        return [pair("log-analyzer", digests, "cloud"), pair("log-analyzer-local", digests, "edge", fused=False)]

    with tempfile.TemporaryDirectory() as tmp, edge_and_cloud(Path(tmp), built, apps) as (address, _):
        split_s = timed_batches(Path(tmp), address["cloud-1"], "log-analyzer", lines, args.rounds)
        local_s = timed_batches(Path(tmp), address["edge-1"], "log-analyzer-local", lines, args.rounds)

    payload = dataplane_pb2.CallRequest(
        app="log-analyzer",
        component="parser",
        interface="cyber-systems:logs/parser@0.1.0",
        function="parse",
        args=[values_pb2.Value(string=lines[0])],
        caller="cloud-1",
    ).SerializeToString()
    plain_s = raw_echo(payload, 2000)
    with tempfile.TemporaryDirectory() as tmp:
        pki.init(Path(tmp) / "pki")
        echo_s = raw_echo(payload, 2000, Path(tmp) / "pki")

    p50 = statistics.median
    per_call = (p50(split_s) - p50(local_s)) / args.lines
    result = {
        "lines": args.lines,
        "rounds": args.rounds,
        "raw_echo_ms": {
            "p50": p50(echo_s) * 1e3,
            "p99": _percentile(echo_s, 0.99) * 1e3,
            "payload_bytes": len(payload),
            "transport": "mutual TLS",
        },
        "plaintext_echo_ms": {"p50": p50(plain_s) * 1e3, "p99": _percentile(plain_s, 0.99) * 1e3},
        "batch_local_ms": {"p50": p50(local_s) * 1e3, "p99": _percentile(local_s, 0.99) * 1e3},
        "batch_split_ms": {"p50": p50(split_s) * 1e3, "p99": _percentile(split_s, 0.99) * 1e3},
        "forwarding_cost_per_call_ms": per_call * 1e3,
        "ratio_vs_raw_echo": per_call / p50(echo_s),
    }
    print(
        f"raw grpcio unary echo, plaintext ({len(payload)} B)              p50 "
        f"{result['plaintext_echo_ms']['p50']:.3f} ms   p99 {result['plaintext_echo_ms']['p99']:.3f} ms"
    )
    print(
        f"raw grpcio unary echo, mutual TLS ({len(payload)} B, loopback)   p50 {result['raw_echo_ms']['p50']:.3f} ms"
        f"   p99 {result['raw_echo_ms']['p99']:.3f} ms"
    )
    print(
        f"process-batch, {args.lines} lines, local link (edge-1)          p50 {result['batch_local_ms']['p50']:.2f} ms"
    )
    print(
        f"process-batch, {args.lines} lines, split link (cloud-1 -> edge-1) "
        f"p50 {result['batch_split_ms']['p50']:.2f} ms"
    )
    print(
        f"forwarding cost per call = (split - local) / {args.lines}          {per_call * 1e3:.3f} ms"
        f"   = {result['ratio_vs_raw_echo']:.2f}x the raw mutual-TLS echo"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
