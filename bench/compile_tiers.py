"""Compile tiers, per guest kind: how long each of wasmtime's compilers takes to make native code for the
guest (Cranelift optimizing, the agent's default; Cranelift without optimizations; Winch, the baseline
compiler), how fast the code it makes runs the guest's real work, and whether every tier gives the same answers.

    python bench/compile_tiers.py [--lines 2000] [--rounds 5] [--json bench/results/compile_tiers.json]

Guests: the log analyzer's monolith in C and in Python (componentize-py, 18 MB), counting a batch of
sample.log lines (for the Python one, mostly the host lowering the batch); the test suite's Python probe
spinning a loop of 300,000 iterations inside the guest (CPython's interpreter as each tier compiled it); and
the JavaScript hello-http guest (componentize-js, 12 MB), answering one request.
Each tier compiles into an empty cache, in this process, one after the other.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.http.component import HttpComponent  # noqa: E402
from agent.http.host import HttpHost  # noqa: E402
from agent.http.messages import IncomingRequest  # noqa: E402
from agent.http.outbound import Outbound  # noqa: E402
from agent.http.streams import Buffered  # noqa: E402
from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime  # noqa: E402
from bench._results import save  # noqa: E402
from cli.devcluster.guests import (  # noqa: E402
    EXAMPLES,
    build_js_http_guest,
    build_log_analyzer,
    build_log_analyzer_native,
    build_python_guest,
)
from neon.http_spec import HttpSpec  # noqa: E402
from neon.native.tiers import TIERS  # noqa: E402

BATCH = FunctionRef("", "process-batch")
SPIN = FunctionRef("", "spin")
PROBE = ROOT / "tests" / "support" / "guests" / "probe"


class _Collect:
    def __init__(self) -> None:
        self.body = bytearray()
        self.status = 0

    def start(self, status: int, _headers: Any) -> None:
        self.status = status

    def write(self, data: bytes) -> None:
        self.body += data

    def flush(self) -> None:
        return None

    def finish(self, _trailers: Any) -> None:
        return None

    def fail(self, reason: str) -> None:
        raise AssertionError(reason)


def _monolith(runtime: Runtime, component: Any, batch: list[str]) -> Callable[[], Any]:
    template = ComponentTemplate(runtime, component, "bench/monolith", {})
    instance = template.instantiate()
    return lambda: instance.call(BATCH, [batch])


def _spin(runtime: Runtime, component: Any, _batch: list[str]) -> Callable[[], Any]:
    instance = ComponentTemplate(runtime, component, "bench/probe", {}).instantiate()
    return lambda: instance.call(SPIN, [300_000])


def _http(runtime: Runtime, component: Any, _batch: list[str]) -> Callable[[], Any]:
    host = HttpHost(runtime.engine, component, "bench/hello", Outbound((), lambda _m: None))
    template = ComponentTemplate(runtime, component, "bench/hello", {}, host=host)
    served = HttpComponent("bench", "hello", template, host, HttpSpec(routes=("/...",)), lambda _e: "")

    def request() -> Any:
        out = _Collect()
        served.run(IncomingRequest("GET", "/hello/tiers", [("host", b"x")], Buffered(b"")), out)
        return out.status, bytes(out.body)

    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "compile_tiers.json")
    args = parser.parse_args()
    sample = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()
    batch = [sample[i % len(sample)] for i in range(args.lines)]
    js = EXAMPLES / "hello-http" / "js"
    guests: dict[str, tuple[Path, Callable[..., Callable[[], Any]]]] = {
        "C monolith": (build_log_analyzer_native()["monolith"], _monolith),
        "Python monolith": (build_log_analyzer()["monolith"], _monolith),
        "Python spin": (build_python_guest(PROBE / "wit", "probe", PROBE / "app"), _spin),
        "JS hello-http": (build_js_http_guest(js, "hello", js / "app.js"), _http),
    }
    results: dict[str, Any] = {}
    print(f"{'guest':<16} {'tier':<13} {'compile s':>9} {'vs Cranelift':>12} {'run ms':>8} {'vs Cranelift':>12}  same")
    for guest, (wasm, workload) in guests.items():
        digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
        rows: dict[str, Any] = {}
        answer: Any = None
        for tier in TIERS:
            with tempfile.TemporaryDirectory() as tmp:
                runtime = Runtime(Path(tmp), tier=tier)
                started = time.perf_counter()
                component = runtime.load(digest, wasm)
                compiled = time.perf_counter() - started
                run = workload(runtime, component, batch)
                got = run()
                answer = got if answer is None else answer
                times = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - started)
                rows[tier] = {"compile_s": compiled, "run_ms": statistics.median(times) * 1000, "same": got == answer}
                runtime.close()
        base = rows[TIERS[0]]
        for tier, row in rows.items():
            row["compile_vs_cranelift"] = row["compile_s"] / base["compile_s"]
            row["run_vs_cranelift"] = row["run_ms"] / base["run_ms"]
            print(
                f"{guest:<16} {tier:<13} {row['compile_s']:>9.2f} {row['compile_vs_cranelift']:>11.2f}x "
                f"{row['run_ms']:>8.2f} {row['run_vs_cranelift']:>11.2f}x  {'yes' if row['same'] else 'NO'}"
            )
        results[guest] = rows
    save(args.json, results)
    wrong = [f"{g}/{t}" for g, rows in results.items() for t, row in rows.items() if not row["same"]]
    if wrong:
        raise SystemExit(f"these tiers gave other answers than Cranelift's: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
