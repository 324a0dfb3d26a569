"""Time from `neon apply` to the first successful invoke of the log analyzer, cold and warm.

On a real cluster (etcd, a control plane, an edge and a cloud agent as
processes, mutual TLS), applies examples/log-analyzer/app.yaml and calls
`ingestor.ingest` until it answers: placement, fusing the edge group, fetching,
checking signatures, compiling, instantiating. Cold: nothing compiled or fused
yet. Warm: the application is deleted and applied again (fused artifact and
compiled code cached). Baselines measured in the same run, in this process:
compiling the same artifacts with wasmtime (cold), and loading them from a
compiled cache (warm).

    python bench/apply_to_invoke.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wasmtime  # noqa: E402
from _pair import edge_and_cloud  # noqa: E402
from _results import save  # noqa: E402
from wasmtime import component as wc  # noqa: E402

from cli.client import ControlClient  # noqa: E402
from cli.devcluster.guests import EXAMPLES, build_log_analyzer  # noqa: E402
from neon.errors import NeonGridError, NotFound  # noqa: E402
from neon.security.tls import Credentials  # noqa: E402

APP = EXAMPLES / "log-analyzer" / "app.yaml"
SAMPLE = (EXAMPLES / "log-analyzer" / "sample.log").read_text()


def apply_until_served(client: ControlClient) -> float:
    start = time.perf_counter()
    client.apply_file(APP)
    while True:
        try:
            if client.invoke("log-analyzer", "ingestor", "ingest", [SAMPLE], timeout=10)[0] == 5:
                return time.perf_counter() - start
        except NeonGridError:
            time.sleep(0.05)
        if time.perf_counter() - start > 300:
            raise SystemExit("the log analyzer did not answer within 300 s")


def deleted(client: ControlClient) -> None:
    client.delete_app("log-analyzer")
    deadline = time.monotonic() + 60
    while any(n.instances for n in client.list_nodes()):
        if time.monotonic() > deadline:
            raise SystemExit("instances did not stop after delete")
        time.sleep(0.1)
    try:
        client.get_app("log-analyzer")
        raise SystemExit("still there after delete")
    except NotFound:
        pass


def raw_work(built: dict[str, Path]) -> tuple[float, float]:
    """Compile every artifact; then load each from its compiled (serialized) form (seconds)."""
    config = wasmtime.Config()
    engine = wasmtime.Engine(config)
    start = time.perf_counter()
    compiled = [wc.Component(engine, path.read_bytes()) for path in built.values()]
    compile_s = time.perf_counter() - start
    blobs = [c.serialize() for c in compiled]
    start = time.perf_counter()
    for blob in blobs:
        wc.Component.deserialize(engine, blob)
    warm_s = time.perf_counter() - start
    return compile_s, warm_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiler", default="", help="the agents' --compiler (default: theirs, tiered)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "apply_to_invoke.json")
    args = parser.parse_args()
    built = build_log_analyzer()
    with (
        tempfile.TemporaryDirectory() as tmp,
        edge_and_cloud(Path(tmp), built, lambda _: [], compiler=args.compiler or None) as (_, control),
    ):
        with ControlClient(control, Credentials.from_dir(Path(tmp) / "pki", "admin")) as client:
            cold = apply_until_served(client)
            deleted(client)
            warm = apply_until_served(client)
            start = time.perf_counter()
            client.invoke("log-analyzer", "ingestor", "ingest", [SAMPLE])
            steady = time.perf_counter() - start
    names = ["ingestor", "processor", "parser", "archiver"]
    compile_s, load_s = raw_work({n: built[n] for n in names})
    result = {
        "compiler": args.compiler or "the agents' default",
        "cold_apply_to_invoke_s": cold,
        "warm_apply_to_invoke_s": warm,
        "steady_invoke_ms": steady * 1e3,
        "baseline_compile_4_artifacts_s": compile_s,
        "baseline_load_4_from_compiled_cache_s": load_s,
        "cold_ratio_vs_compile": cold / compile_s,
        "warm_ratio_vs_load": warm / load_s,
    }
    print(
        f"apply -> first successful invoke, cold {cold:.2f} s  (compiling the 4 artifacts in process: "
        f"{compile_s:.2f} s; {result['cold_ratio_vs_compile']:.2f}x)"
    )
    print(
        f"apply -> first successful invoke, warm {warm:.2f} s  (loading them from a compiled cache: "
        f"{load_s:.2f} s; {result['warm_ratio_vs_load']:.1f}x);  a steady invoke {steady * 1e3:.1f} ms"
    )
    save(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
