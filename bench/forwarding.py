"""Cost of a split link: a forwarded call vs a raw grpcio echo, measured in one run.

Starts etcd, a control plane and two agents (separate processes), deploys the
log analyzer twice - once split (processor in the cloud, parser on the edge)
and once co-located (both on the edge, host-linked: `fuse: false`) - and times `process-batch` on N lines
through each agent's data plane directly. The difference divided by N is what
one forwarded `parse` call costs on top of a local (host-linked) one. The
baseline is a plain grpcio unary echo of a payload of the same size between
two processes on loopback, over mutual TLS as every Neon Grid hop is (the
plaintext echo is printed too, to show what TLS itself costs). A third echo
server answers through :mod:`neon.rpc.inline`, as the agent's data plane serves
``Call`` (in the thread that received it): forwarded ÷ that echo is what the
codec, the call guard, the pool and the guest add to the agent's transport.

Then the same comparison call by call, at concurrency 1, 8 and 64: the agent's own
forwarder (the host function a split link installs: WIT-typed encode, gRPC
call with deadline, decode), running in this process as node cloud-1, calls the
parser on edge-1, against the echo of the same payload at the same concurrency.
The Python guest, the C guest and the echo take turns in slices (``ROUNDS``
per level, the echo server up all along), so a machine that slows down or
speeds up during the run weighs on each alike, not on whichever ran last.
p50, p99 and calls/s for each, and the CPU each call cost the serving process
(the edge agent, or the echo server) and the calling one (this process). Under
concurrency the forwarder coalesces calls to the node into batches
(agent/dataplane/lane.py), as it does in an agent; the echo sends one RPC per call. The
parser is called twice over: the Python guest (componentize-py: the parse
itself runs a Python interpreter inside wasm) and the C guest (the parse costs
a few microseconds), which shows what forwarding costs apart from the guest.

    python bench/forwarding.py [--lines 110] [--rounds 30] [--calls 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pair import agent_channel, edge_and_cloud, pair  # noqa: E402
from _results import save  # noqa: E402

from agent.dataplane.forwarder import Router  # noqa: E402
from agent.runtime.engine import FunctionRef, Runtime  # noqa: E402
from agent.values.signature import Signature  # noqa: E402
from cli.devcluster.etcd_launcher import free_port  # noqa: E402
from cli.devcluster.guests import EXAMPLES, build_log_analyzer, build_log_analyzer_native  # noqa: E402
from neon import manifest  # noqa: E402
from neon._proto import calls_pb2, dataplane_pb2, dataplane_pb2_grpc, values_pb2  # noqa: E402
from neon.security import pki  # noqa: E402
from neon.security.tls import Credentials, sync_channel  # noqa: E402

ECHO_SERVER = textwrap.dedent("""
    import sys, grpc
    from concurrent import futures
    def echo(request, context):
        return request
    handler = grpc.unary_unary_rpc_method_handler(echo)
    pool = futures.ThreadPoolExecutor(max_workers=4)
    server = grpc.server(pool)
    if sys.argv[2] == "inline":  # the same echo, served as the agent's data plane serves Call
        sys.path.insert(0, sys.argv[3])
        from neon.rpc import inline
        served = inline.attach(server, pool)
        served.add("/bench.Echo/Echo", handler, lambda request: True)
    else:  # plain grpcio
        served = None
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    if len(sys.argv) > 4:  # ca, cert, key: mutual TLS like every Neon Grid hop
        ca, cert, key = (open(p, "rb").read() for p in sys.argv[4:7])
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
        server.add_secure_port("127.0.0.1:" + sys.argv[1], creds)
    else:
        server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    server.start()
    if served is not None:
        served.start()
    print("ready", flush=True)
    server.wait_for_termination()
""")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


PARSE = FunctionRef("cyber-systems:logs/parser@0.1.0", "parse")
LEVELS = (1, 8, 64)
ROUNDS = 4  # slices each sweep is cut into, alternating between what is compared


@contextlib.contextmanager
def echo_server(pki_dir: Path | None = None, mode: str = "grpc") -> Iterator[tuple[Callable[[bytes], Any], int]]:
    """An echo server in another process (mutual TLS with ``pki_dir``, as the control plane), warmed
    up; yields a function calling it once with a payload, and its pid. ``mode``: ``grpc``, a plain
    grpcio server (the baseline); ``inline``, the echo served by :mod:`neon.rpc.inline`, as the agent serves Call."""
    port = free_port()
    tls_args = [str(pki_dir / n) for n in ("ca.pem", "controlplane.pem", "controlplane.key")] if pki_dir else []
    argv = [sys.executable, "-c", ECHO_SERVER, str(port), mode, str(ROOT), *tls_args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    creds = Credentials.from_dir(pki_dir, "admin") if pki_dir else Credentials.insecure()
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with sync_channel(f"127.0.0.1:{port}", creds, pki.CONTROLPLANE_NAME, []) as channel:
            echo: Callable[..., Any] = channel.unary_unary("/bench.Echo/Echo")
            for _ in range(200):
                echo(b"warm", timeout=5)
            yield (lambda payload: echo(payload, timeout=30)), proc.pid
    finally:
        proc.terminate()
        proc.wait()


def one_at_a_time(call: Callable[[], Any], calls: int) -> list[float]:
    """Round trips of ``call``, one after the other (seconds)."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sweep:
    """What calls from several threads at once gave: each call's latency, the wall time, and the CPU
    the serving process and this (calling) process spent on them."""

    samples: list[float] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def add(self, call: Callable[[], Any], concurrency: int, calls: int, server_pid: int) -> None:
        """``calls`` more calls from ``concurrency`` threads at once (after a warm-up)."""
        per_thread = max(1, calls // concurrency)

        def worker() -> list[float]:
            return one_at_a_time(call, per_thread)

        with ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(call) for _ in range(concurrency * 4)]:
                future.result()  # warm: channels and instances up
            server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
            start = time.perf_counter()
            results = [f.result() for f in [pool.submit(worker) for _ in range(concurrency)]]
            self.wall += time.perf_counter() - start
            self.server_cpu += _cpu_seconds(server_pid) - server_cpu
            self.client_cpu += time.process_time() - client_cpu
        self.samples.extend(s for r in results for s in r)

    def summary(self, concurrency: int) -> dict[str, float]:
        """p50/p99 (ms), calls per second, and CPU per call (µs) of the serving and the calling process."""
        n = len(self.samples)
        return {
            "concurrency": concurrency,
            "p50_ms": statistics.median(self.samples) * 1e3,
            "p99_ms": _percentile(self.samples, 0.99) * 1e3,
            "calls_per_second": n / self.wall,
            "server_cpu_us_per_call": self.server_cpu / n * 1e6,
            "client_cpu_us_per_call": self.client_cpu / n * 1e6,
        }


def interleaved(
    targets: dict[str, tuple[Callable[[], Any], int]], concurrency: int, calls: int, rounds: int = ROUNDS
) -> dict[str, dict[str, float]]:
    """``calls`` calls to each target (name -> (call, serving pid)) at ``concurrency``, in ``rounds``
    alternating slices, so that a machine getting slower or faster meanwhile weighs on each alike."""
    sweeps = {name: Sweep() for name in targets}
    for _ in range(rounds):
        for name, (call, pid) in targets.items():
            sweeps[name].add(call, concurrency, max(concurrency, calls // rounds), pid)
    return {name: sweep.summary(concurrency) for name, sweep in sweeps.items()}


@contextlib.contextmanager
def forwarder(work: Path, app: str, edge: str, parser: Path) -> Iterator[Callable[..., Any]]:
    """The agent's forwarder as node cloud-1 (a certificate from the PKI), to ``app``'s parser on edge-1."""
    ca = pki.load(work / "pki", "ca")
    issued = pki.issue(ca, "cloud-1", pki.AGENT)
    router = Router("cloud-1", creds=Credentials(ca.cert, issued.cert, issued.key))
    runtime = Runtime(work / "sweep-cache")
    digest = "sha256:" + hashlib.sha256(parser.read_bytes()).hexdigest()
    signature = Signature.of(runtime.exports(runtime.load(digest, parser))[PARSE], str(PARSE))
    forward = router.forwarder(app, "processor", "parser", PARSE.interface, PARSE.name, signature)
    router.set_routes(app, "parser", (edge,))
    try:
        yield forward
    finally:
        router.close()
        runtime.close()


def timed_batches(work: Path, address: str, app: str, lines: list[str], rounds: int) -> list[float]:
    request = calls_pb2.InvokeRequest(
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
    parser.add_argument("--calls", type=int, default=2000, help="calls per concurrency level")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "forwarding.json")
    args = parser.parse_args()

    sample = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()
    lines = [sample[i % len(sample)] for i in range(args.lines)]
    python_guests = build_log_analyzer()
    c_guests = build_log_analyzer_native()
    built = {
        "parser": python_guests["parser"],
        "processor": python_guests["processor"],
        "parser-c": c_guests["parser"],
        "processor-c": c_guests["processor"],
    }

    def apps(digests: dict[str, str]) -> list[manifest.AppSpec]:
        # split, and host-linked on one node: the same call, minus the network; and split with C guests
        c_digests = {"parser": digests["parser-c"], "processor": digests["processor-c"]}
        return [
            pair("log-analyzer", digests, "cloud"),
            pair("log-analyzer-local", digests, "edge", fused=False),
            pair("log-analyzer-c", c_digests, "cloud"),
        ]

    payload = dataplane_pb2.CallRequest(
        app="log-analyzer",
        component="parser",
        interface="cyber-systems:logs/parser@0.1.0",
        function="parse",
        args=[values_pb2.Value(string=lines[0])],
        caller="cloud-1",
    ).SerializeToString()
    pids: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        address, _ = stack.enter_context(edge_and_cloud(work, built, apps, pids))
        split_s = timed_batches(work, address["cloud-1"], "log-analyzer", lines, args.rounds)
        local_s = timed_batches(work, address["edge-1"], "log-analyzer-local", lines, args.rounds)
        forward = stack.enter_context(forwarder(work, "log-analyzer", address["edge-1"], built["parser"]))
        forward_c = stack.enter_context(forwarder(work, "log-analyzer-c", address["edge-1"], built["parser-c"]))
        echo, echo_pid = stack.enter_context(echo_server(work / "pki"))
        plain, _ = stack.enter_context(echo_server())
        inline_echo, inline_pid = stack.enter_context(echo_server(work / "pki", "inline"))
        assert forward(lines[0]) is not None and forward_c(lines[0]) is not None
        plain_s = one_at_a_time(lambda: plain(payload), args.calls)
        echo_s = one_at_a_time(lambda: echo(payload), args.calls)
        targets = {
            "python": (lambda: forward(lines[0]), pids["edge-1"]),
            "c": (lambda: forward_c(lines[0]), pids["edge-1"]),
            "echo": (lambda: echo(payload), echo_pid),
            "inline-echo": (lambda: inline_echo(payload), inline_pid),
        }
        swept = {n: interleaved(targets, n, args.calls) for n in LEVELS}

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
        "concurrency": [
            {
                "concurrency": n,
                "guest": guest,
                "forwarded": swept[n][guest],
                "raw_echo": swept[n]["echo"],
                "inline_echo": swept[n]["inline-echo"],
                "p50_ratio_vs_inline_echo": swept[n][guest]["p50_ms"] / swept[n]["inline-echo"]["p50_ms"],
                "p50_ratio": swept[n][guest]["p50_ms"] / swept[n]["echo"]["p50_ms"],
                "throughput_ratio": swept[n][guest]["calls_per_second"] / swept[n]["echo"]["calls_per_second"],
            }
            for guest in ("python", "c")
            for n in LEVELS
        ],
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
    print(f"\none forwarded parse call (the agent's forwarder, {len(payload)} B) vs the mutual-TLS echo:")
    head = f"{'guest':>6} {'concurrency':>11}  {'forwarded p50/p99':>20}  {'echo p50/p99':>18}  {'p50 ratio':>9}"
    print(head + "  calls/s (fwd / echo)  server CPU/call (fwd / echo)  client CPU/call (fwd / echo)")
    for row in result["concurrency"]:
        f, e = row["forwarded"], row["raw_echo"]
        print(
            f"{row['guest']:>6} {row['concurrency']:>11}  {f['p50_ms']:>8.3f} / {f['p99_ms']:>7.3f} ms  "
            f"{e['p50_ms']:>6.3f} / {e['p99_ms']:>7.3f} ms  {row['p50_ratio']:>8.2f}x  "
            f"{f['calls_per_second']:>7.0f} / {e['calls_per_second']:<6.0f}  "
            f"{f['server_cpu_us_per_call']:>12.0f} / {e['server_cpu_us_per_call']:<4.0f} µs  "
            f"{f['client_cpu_us_per_call']:>17.0f} / {e['client_cpu_us_per_call']:.0f} µs"
        )
    print("\nthe same echo served by neon.rpc.inline, as the agent's data plane serves Call (the transport alone):")
    for n in LEVELS:
        i, e = swept[n]["inline-echo"], swept[n]["echo"]
        c = next(r for r in result["concurrency"] if r["guest"] == "c" and r["concurrency"] == n)
        print(
            f"{n:>18}  p50 {i['p50_ms']:.3f} ms = {i['p50_ms'] / e['p50_ms']:.2f}x the grpcio echo; "
            f"forwarded C-guest call {c['p50_ratio_vs_inline_echo']:.2f}x it"
        )
    save(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
