"""Key-value from a guest (wasi:keyvalue) against the same store called directly from Python, in the same run.

1. node backend (SQLite on the node's disk): the kv-probe guest (componentize-py) gets and sets one key in a
   loop on an opened bucket (one call into the guest, many host calls); the baseline is the agent's own
   ``NodeBucket`` called from Python the same number of times. Target: a node-local get within 3x the direct
   call.
2. cluster backend (etcd through the control plane): a real cluster (etcd, a control plane, an agent process);
   the guest's loop runs in the agent, each get a KeyValue call to the control plane; the baseline is the
   control plane's ``KvStore`` reading the same etcd in-process (no agent, no gRPC hop).

    python bench/keyvalue.py [--times 2000]
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

from _results import save  # noqa: E402

from agent.platform.kv_buckets import Buckets  # noqa: E402
from agent.platform.kv_host import KeyValueHost  # noqa: E402
from agent.runtime.denials import DenialLog  # noqa: E402
from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime  # noqa: E402
from agent.runtime.pool import InstancePool  # noqa: E402
from cli.devcluster.guests import build_python_guest, cache_dir  # noqa: E402
from cli.devcluster.wasi_wit import with_wasi  # noqa: E402
from neon.bucket_spec import BucketSpec  # noqa: E402

GUEST = ROOT / "tests" / "support" / "guests" / "kv-probe"
VALUE = "v" * 100


def per_op_us(fn: Callable[[], Any], times: int, repeat: int = 5) -> float:
    """Median over ``repeat`` runs of ``fn()`` (which does ``times`` operations), per operation."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) / times * 1e6)
    return statistics.median(samples)


def node_backend(wasm: Path, times: int) -> dict[str, float]:
    async def no_cluster(*_args: Any, **_fields: Any) -> Any:
        raise AssertionError("a node bucket called the control plane")

    spec = BucketSpec("bench", "node", 1 << 20, 1 << 30)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Path(tmp) / "compiled")
        buckets = Buckets(Path(tmp) / "kv", no_cluster)
        component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        host = KeyValueHost(runtime.engine, component, "bench/kv", {"bench": buckets.opener("bench", "kv", spec)})
        pool = InstancePool(ComponentTemplate(runtime, component, "bench/kv", {}, host=host, denials=DenialLog("b")))
        pool.warm()
        direct = buckets.opener("bench", "kv", spec)()
        direct.set("key", VALUE.encode())

        def guest_get() -> None:
            assert pool.call(FunctionRef("", "get-loop"), ["bench", "key", times]) == times

        def guest_set() -> None:
            pool.call(FunctionRef("", "set-loop"), ["bench", "key", VALUE, times])

        def direct_get() -> None:
            for _ in range(times):
                direct.get("key")

        data = VALUE.encode()

        def direct_set() -> None:
            for _ in range(times):
                direct.set("key", data)

        out = {
            "guest_get_us": per_op_us(guest_get, times),
            "direct_get_us": per_op_us(direct_get, times),
            "guest_set_us": per_op_us(guest_set, times),
            "direct_set_us": per_op_us(direct_set, times),
        }
        pool.close()
        buckets.close()
        runtime.close()
    return out


def cluster_backend(wasm: Path, times: int) -> dict[str, float]:
    from tests.support.helpers import Cluster, wait_running

    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), Path(tmp) / "compiled", agents={"edge-1": {"tier": "edge"}})
        try:
            cluster.start()
            client = cluster.client
            assert client is not None
            manifest = Path(tmp) / "kv.yaml"
            manifest.write_text(
                "apiVersion: neon-grid.dev/v1\nkind: Application\nmetadata: {name: bench}\nspec:\n"
                "  buckets: [{name: bench, backend: cluster}]\n"
                f"  components: [{{name: kv, artifact: {wasm}, grants: {{keyValue: [bench]}}}}]\n"
            )
            client.apply_file(manifest)
            wait_running(client, "bench")
            client.invoke("bench", "kv", "set", ["bench", "key", VALUE])
            spec = BucketSpec("bench", "cluster", 64 << 10, 1 << 20)

            def guest_get() -> None:
                assert client.invoke("bench", "kv", "get-loop", ["bench", "key", times], timeout=300)[0] == {
                    "ok": times
                }

            def guest_set() -> None:
                client.invoke("bench", "kv", "set-loop", ["bench", "key", VALUE, times], timeout=300)

            async def gets(store: Any) -> None:
                for _ in range(times):
                    await store.kv.get("bench", spec, ["key"])

            async def sets(store: Any) -> None:
                for _ in range(times):
                    await store.kv.write("bench", spec, [("key", VALUE.encode())])

            return {
                "guest_get_us": per_op_us(guest_get, times, repeat=3),
                "direct_get_us": per_op_us(lambda: cluster.store(gets), times, repeat=3),
                "guest_set_us": per_op_us(guest_set, times, repeat=3),
                "direct_set_us": per_op_us(lambda: cluster.store(sets), times, repeat=3),
            }
        finally:
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=2000, help="operations per measured loop (node backend)")
    parser.add_argument("--cluster-times", type=int, default=200, help="operations per loop (cluster backend)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "keyvalue.json")
    args = parser.parse_args()
    wasm = build_python_guest(with_wasi(GUEST / "wit", cache_dir()), "kv-probe", GUEST / "py")
    node = node_backend(wasm, args.times)
    cluster = cluster_backend(wasm, args.cluster_times)
    results = {"node": node, "cluster": cluster}
    for name, r in results.items():
        for op in ("get", "set"):
            ratio = r[f"guest_{op}_us"] / r[f"direct_{op}_us"]
            r[f"{op}_ratio"] = ratio
            print(
                f"{name:8s} {op}: guest {r[f'guest_{op}_us']:8.1f} us   direct {r[f'direct_{op}_us']:8.1f} us   "
                f"{ratio:5.2f}x"
            )
    target = results["node"]["get_ratio"] <= 3.0
    results["pass"] = target
    print(f"node-local get within 3x the direct call: {'yes' if target else 'NO'}")
    save(args.json, results)
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
