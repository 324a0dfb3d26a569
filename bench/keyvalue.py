"""Key-value from a guest (wasi:keyvalue) against the same store called directly from Python, in the same run.

1. node backend (SQLite on the node's disk): a guest gets and sets one key in a loop on an opened bucket (one
   call into the guest, many host calls); the baseline is the agent's own ``NodeBucket`` called from Python
   the same number of times. Two guests: ``kv-loop`` in freestanding C, whose loop costs next to nothing, so
   its time is the platform's (the agent's wasi:keyvalue, the canonical ABI, wasmtime); and the kv-probe
   guest (componentize-py), which adds its own interpreter's time to each call. Target: a node-local get
   from the C guest within 3x the direct call. Each guest runs twice: with the get in native code, as the
   agent runs it (agent/platform/kv_native.py), and with the get in Python, for comparison.
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
from cli.devcluster.guests import build_c_guest, build_python_guest, cache_dir  # noqa: E402
from cli.devcluster.wasi_wit import with_wasi  # noqa: E402
from neon.bucket_spec import BucketSpec  # noqa: E402

GUEST = ROOT / "tests" / "support" / "guests" / "kv-probe"
CABI = ROOT / "examples" / "log-analyzer" / "native" / "cabi.c"
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


def guest_loops(pool: InstancePool, kind: str, times: int) -> tuple[float, float]:
    """A guest's get and set, each per operation, from its loops on the bench bucket."""

    def guest_get() -> None:
        found = pool.call(FunctionRef("", "get-loop"), ["bench", "key", times])
        assert found == times, f"the {kind} guest found the key {found} times of {times}"

    def guest_set() -> None:
        pool.call(FunctionRef("", "set-loop"), ["bench", "key", VALUE, times])

    return per_op_us(guest_get, times), per_op_us(guest_set, times)


def node_backend(guests: dict[str, Path], times: int) -> dict[str, float]:
    """Each guest's get and set loops on a node bucket, and the same store called directly, in one run."""

    async def no_cluster(*_args: Any, **_fields: Any) -> Any:
        raise AssertionError("a node bucket called the control plane")

    spec = BucketSpec("bench", "node", 1 << 20, 1 << 30)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Path(tmp) / "compiled")
        buckets = Buckets(Path(tmp) / "kv", no_cluster)
        direct = buckets.opener("bench", "kv", spec)()
        direct.set("key", VALUE.encode())
        data = VALUE.encode()

        def direct_get() -> None:
            for _ in range(times):
                direct.get("key")

        def direct_set() -> None:
            for _ in range(times):
                direct.set("key", data)

        out = {"direct_get_us": per_op_us(direct_get, times), "direct_set_us": per_op_us(direct_set, times)}
        library = buckets.native()
        assert library is not None, "the native get could not be built (a C compiler is needed): see the log"
        for kind, wasm in guests.items():
            component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
            for host_kind, native in (("", library), ("_python_host", None)):  # the agent's path, and without
                openers = {"bench": buckets.opener("bench", "kv", spec)}
                host = KeyValueHost(runtime.engine, component, "bench/kv", openers, native)
                label = f"bench/kv-{kind}"
                pool = InstancePool(ComponentTemplate(runtime, component, label, {}, host=host, denials=DenialLog("b")))
                pool.warm()
                before = library.counts()[0]
                out[f"{kind}{host_kind}_get_us"], out[f"{kind}{host_kind}_set_us"] = guest_loops(pool, kind, times)
                answered = library.counts()[0] - before
                assert (answered > 0) == (native is not None), f"{answered} gets answered natively ({host_kind})"
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
    wit = with_wasi(GUEST / "wit", cache_dir())
    wasm = build_python_guest(wit, "kv-probe", GUEST / "py")
    native = build_c_guest(wit, "kv-loop", (GUEST / "c" / "kv_loop.c", CABI))
    node = node_backend({"c": native, "python": wasm}, args.times)
    cluster = cluster_backend(wasm, args.cluster_times)
    for op in ("get", "set"):
        for kind in ("c", "python"):
            node[f"{kind}_{op}_ratio"] = node[f"{kind}_{op}_us"] / node[f"direct_{op}_us"]
            print(
                f"node     {op} from the {kind:6s} guest {node[f'{kind}_{op}_us']:8.1f} us   "
                f"direct {node[f'direct_{op}_us']:8.1f} us   {node[f'{kind}_{op}_ratio']:5.2f}x"
            )
    for kind in ("c", "python"):
        node[f"{kind}_python_host_get_ratio"] = node[f"{kind}_python_host_get_us"] / node["direct_get_us"]
        print(
            f"node     get from the {kind:6s} guest {node[f'{kind}_python_host_get_us']:8.1f} us   "
            f"direct {node['direct_get_us']:8.1f} us   {node[f'{kind}_python_host_get_ratio']:5.2f}x"
            "   (the get in Python, without the native library)"
        )
    for op in ("get", "set"):
        cluster[f"{op}_ratio"] = cluster[f"guest_{op}_us"] / cluster[f"direct_{op}_us"]
        print(
            f"cluster  {op} from the python guest {cluster[f'guest_{op}_us']:8.1f} us   "
            f"direct {cluster[f'direct_{op}_us']:8.1f} us   {cluster[f'{op}_ratio']:5.2f}x"
        )
    results: dict[str, Any] = {"node": node, "cluster": cluster}
    target = node["c_get_ratio"] <= 3.0
    results["pass"] = target
    print(f"node-local get within 3x the direct call (C guest): {'yes' if target else 'NO'}")
    save(args.json, results)
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
