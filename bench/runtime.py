"""Agent runtime costs, each against a baseline measured in the same run.

1. dispatch: a call through the agent's instance pool (acquire, deadline, call,
   release, with the function's type read once: agent/runtime/functypes.py) vs calling
   the same function with wasmtime-py directly (which reads the type each call);
2. instantiation: a per-call instance (fresh store) vs taking a warm pooled one,
   and loading from the compiled cache vs compiling;
3. (the codec has its own: bench/codec.py)
4. cold start, per instance mode: from nothing to the first call's result
   (load, link, instantiate, call), from the artifact (compiling it) vs from
   the compiled cache;
5. per-call instances, for the C parser and the componentize-py parser, with
   wasmtime's pooling allocator and without it: instantiating, and a per-call
   call against a pooled one (issue 23's targets: instantiation within 100 us
   for C and 300 us for componentize-py, a per-call call within 3x a pooled one).

    python bench/runtime.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _results import per_call_us  # noqa: E402

from agent.runtime.allocator import DEFAULT_POOL  # noqa: E402
from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime  # noqa: E402
from agent.runtime.pool import InstancePool  # noqa: E402
from cli.devcluster.guests import build_log_analyzer, build_log_analyzer_native  # noqa: E402
from neon.runtime_spec import RuntimeSpec  # noqa: E402

PARSE = FunctionRef("cyber-systems:logs/parser@0.1.0", "parse")
LINE = "2026-11-24T08:00:02Z ERROR auth: login failed for user bob"


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "runtime.json")
    out = args.parse_args().json
    parser_wasm = build_log_analyzer()["parser"]
    digest = "sha256:" + hashlib.sha256(parser_wasm.read_bytes()).hexdigest()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Path(tmp))
        start = time.perf_counter()
        component = runtime.load(digest, parser_wasm)
        compile_s = time.perf_counter() - start
        reloaded = Runtime(Path(tmp))
        start = time.perf_counter()
        reloaded.load(digest, parser_wasm)
        cached_s = time.perf_counter() - start
        reloaded.close()
        results["load_ms"] = {
            "compile": compile_s * 1e3,
            "from_compiled_cache": cached_s * 1e3,
            "ratio": compile_s / cached_s,
        }

        template = ComponentTemplate(runtime, component, "bench/parser", {}, settings=RuntimeSpec(instances=1))
        pool = InstancePool(template)
        pool.warm()

        # 1. dispatch; the baseline is wasmtime-py's own call, which reads the function's type each time
        direct = template.instantiate()
        store = direct.store
        iface = direct.instance.get_export_index(store, PARSE.interface)
        func = direct.instance.get_func(store, direct.instance.get_export_index(store, PARSE.name, iface))
        assert func is not None

        def call_direct() -> Any:
            result = func(store, LINE)
            func.post_return(store)
            return result

        def call_pool() -> Any:
            return pool.call(PARSE, [LINE])

        direct_us = per_call_us(call_direct, 2000)
        pool_us = per_call_us(call_pool, 2000)
        results["dispatch_us"] = {"direct_wasmtime": direct_us, "agent_pool": pool_us, "ratio": pool_us / direct_us}

        # 2. instantiation
        per_call = InstancePool(
            ComponentTemplate(runtime, component, "bench/parser", {}, settings=RuntimeSpec(mode="per-call"))
        )
        inst_us = per_call_us(template.instantiate, 50, repeat=5)
        per_call_us_ = per_call_us(lambda: per_call.call(PARSE, [LINE]), 50, repeat=5)
        results["instantiate_us"] = {
            "pooled_call": pool_us,
            "per_call_call": per_call_us_,
            "instantiate_only": inst_us,
            "ratio_per_call_vs_pooled": per_call_us_ / pool_us,
        }

        runtime.close()

    # 4. cold start per instance mode, from the artifact (an empty cache) and from the compiled cache
    results["cold_start_ms"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in ("artifact", "compiled_cache"):
            for mode in ("pooled", "per-call"):
                fresh = Runtime(Path(tmp))
                if source == "artifact":
                    for old in fresh.code.directory.glob("*.cwasm*"):
                        old.unlink()
                start = time.perf_counter()
                loaded = fresh.load(digest, parser_wasm)
                cold = InstancePool(
                    ComponentTemplate(fresh, loaded, "bench/parser", {}, settings=RuntimeSpec(mode=mode, instances=1))
                )
                cold.warm()
                assert cold.call(PARSE, [LINE]) is not None
                results["cold_start_ms"][f"{source}/{mode}"] = (time.perf_counter() - start) * 1e3
                fresh.close()
    results["instances"] = instance_figures(
        {"c": build_log_analyzer_native()["parser"], "componentize-py": parser_wasm}
    )
    cs = results["cold_start_ms"]
    cs["ratio_artifact_vs_cache_pooled"] = cs["artifact/pooled"] / cs["compiled_cache/pooled"]

    print(
        f"load parser artifact      compile {results['load_ms']['compile']:.0f} ms   "
        f"from compiled cache {results['load_ms']['from_compiled_cache']:.0f} ms   "
        f"({results['load_ms']['ratio']:.0f}x faster)"
    )
    d = results["dispatch_us"]
    print(
        f"call parse                direct wasmtime {d['direct_wasmtime']:.1f} us   "
        f"through the agent's pool {d['agent_pool']:.1f} us   = {d['ratio']:.2f}x"
    )
    i = results["instantiate_us"]
    print(
        f"instance modes            pooled call {i['pooled_call']:.1f} us   per-call call {i['per_call_call']:.0f} us"
        f"   (instantiate {i['instantiate_only']:.0f} us)   = {i['ratio_per_call_vs_pooled']:.1f}x"
    )
    print(
        f"cold start to first call  pooled: artifact {cs['artifact/pooled']:.0f} ms, compiled cache "
        f"{cs['compiled_cache/pooled']:.0f} ms ({cs['ratio_artifact_vs_cache_pooled']:.0f}x);  per-call: artifact "
        f"{cs['artifact/per-call']:.0f} ms, compiled cache {cs['compiled_cache/per-call']:.0f} ms"
    )
    mark = {True: "✓", False: "✗"}
    for guest, by_allocator in results["instances"].items():
        for allocator, f in by_allocator.items():
            target = INSTANTIATE_TARGET_US[guest]
            print(
                f"per-call, {guest:<16} {allocator:<9} instantiate {f['instantiate_us']:.0f} us "
                f"(target {target} {mark[f['instantiate_us'] <= target]})   per-call call {f['per_call_us']:.0f} us "
                f"vs pooled {f['pooled_us']:.1f} us = {f['ratio']:.1f}x (target 3x {mark[f['ratio'] <= 3]})"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


INSTANTIATE_TARGET_US = {"c": 100, "componentize-py": 300}


def instance_figures(guests: dict[str, Path]) -> dict[str, Any]:
    """Per guest, with the pooling allocator and on demand: instantiation, and a per-call call beside a pooled one."""
    figures: dict[str, Any] = {}
    for guest, wasm in guests.items():
        figures[guest] = {}
        for allocator, limits in (("pooling", DEFAULT_POOL), ("on-demand", None)):
            with tempfile.TemporaryDirectory() as tmp:
                runtime = Runtime(Path(tmp), limits)
                figures[guest][allocator] = _instance_figures(runtime, wasm, guest)
                runtime.close()
    return figures


def _instance_figures(runtime: Runtime, wasm: Path, guest: str) -> dict[str, float]:
    component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)

    def template(mode: str) -> ComponentTemplate:
        return ComponentTemplate(runtime, component, f"bench/{guest}", {}, settings=RuntimeSpec(mode=mode))

    pooled, per_call = InstancePool(template("pooled")), InstancePool(template("per-call"))
    pooled.warm()
    pooled_us = per_call_us(lambda: pooled.call(PARSE, [LINE]), 1000)
    per_call_call_us = per_call_us(lambda: per_call.call(PARSE, [LINE]), 200)
    return {
        "instantiate_us": per_call_us(template("per-call").instantiate, 200),
        "pooled_us": pooled_us,
        "per_call_us": per_call_call_us,
        "ratio": per_call_call_us / pooled_us,
    }


if __name__ == "__main__":
    raise SystemExit(main())
