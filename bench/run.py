"""Every benchmark in one command: each prints its own table and writes its JSON, then one summary.

    ./run bench                 # or: python bench/run.py [--only forwarding,placement] [--quick]

Each figure is a ratio against a baseline measured in the same run (see
bench/README.md for what each compares). The summary goes to
bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# name -> (script, full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "fusion": ("fusion.py", ["--rounds", "30"], ["--rounds", "8", "--guests", "c"]),
    "forwarding": ("forwarding.py", ["--rounds", "30", "--calls", "2000"], ["--rounds", "8", "--calls", "400"]),
    "runtime": ("runtime.py", [], []),
    "apply_to_invoke": ("apply_to_invoke.py", [], []),
    "placement": ("placement.py", [], ["--components", "200", "--nodes", "1000", "--scale", "0"]),
    "controlplane_load": (
        "controlplane_load.py",
        ["--agents", "10000", "--seconds", "30", "--node-ttl", "30"],
        ["--agents", "1000", "--seconds", "20"],
    ),
    "front_door": ("front_door.py", ["--seconds", "3", "--rounds", "2"], ["--seconds", "1", "--rounds", "1"]),
    "compile_tiers": ("compile_tiers.py", [], ["--lines", "500", "--rounds", "3"]),
    "control_reads": ("control_reads.py", [], ["--calls", "100"]),
    "control_invoke": ("control_invoke.py", [], ["--calls", "300"]),
    "keyvalue": ("keyvalue.py", [], ["--times", "300", "--cluster-times", "50"]),
    "codec": ("codec.py", [], ["--rounds", "3000"]),
    "node_join": ("node_join.py", [], []),
}


def _fusion(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for guests, workloads in r["guests"].items():
        for workload, w in workloads.items():
            cl = w["cluster_ms"]
            rows.append(
                [
                    f"(1) log analyzer, {guests} guests, {workload}",
                    f"fused {cl['fused']:.2f} ms",
                    f"monolithic {cl['monolithic']:.2f} ms; host-linked {cl['host-linked']:.2f} ms; "
                    f"split {cl['split']:.1f} ms",
                    f"fused/mono {w['ratios']['fused_vs_monolithic']['cluster']:.2f}x, "
                    f"host-linked/fused {w['ratios']['host_linked_vs_fused']['cluster']:.1f}x, "
                    f"split/fused {w['ratios']['split_vs_fused']['cluster']:.0f}x",
                ]
            )
    return rows


def _forwarding(r: dict[str, Any]) -> list[list[str]]:
    rows = [
        [
            "(2) forwarded call, batch method (Python guests)",
            f"{r['forwarding_cost_per_call_ms']:.3f} ms per call on top of a local one",
            f"mTLS echo p50 {r['raw_echo_ms']['p50']:.3f} ms",
            f"{r['ratio_vs_raw_echo']:.2f}x (target 1.3x)",
        ]
    ]
    for row in r["concurrency"]:
        f, e = row["forwarded"], row["raw_echo"]
        rows.append(
            [
                f"(2) forwarded call, {row['guest']} guest, concurrency {row['concurrency']}",
                f"p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms, {f['calls_per_second']:.0f}/s",
                f"mTLS echo p50 {e['p50_ms']:.2f} ms, p99 {e['p99_ms']:.2f} ms, {e['calls_per_second']:.0f}/s",
                f"p50 {row['p50_ratio']:.2f}x (target 1.3x), calls/s {row['throughput_ratio']:.2f}x",
            ]
        )
    return rows


def _runtime(r: dict[str, Any]) -> list[list[str]]:
    cs, d = r["cold_start_ms"], r["dispatch_us"]
    return [
        [
            "(3) cold start to first call, pooled",
            f"compiled cache {cs['compiled_cache/pooled']:.0f} ms",
            f"from the artifact {cs['artifact/pooled']:.0f} ms",
            f"{cs['ratio_artifact_vs_cache_pooled']:.0f}x faster",
        ],
        [
            "(3) cold start to first call, per-call",
            f"compiled cache {cs['compiled_cache/per-call']:.0f} ms",
            f"from the artifact {cs['artifact/per-call']:.0f} ms",
            f"{cs['artifact/per-call'] / cs['compiled_cache/per-call']:.0f}x faster",
        ],
        [
            "    a call through the agent's pool",
            f"{d['agent_pool']:.1f} us",
            f"wasmtime-py directly {d['direct_wasmtime']:.1f} us",
            f"{d['ratio']:.2f}x",
        ],
    ]


def _apply(r: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"(4) apply -> first invoke, cold ({r.get('compiler', 'cranelift')})",
            f"{r['cold_apply_to_invoke_s']:.2f} s",
            f"compiling the 4 artifacts {r['baseline_compile_4_artifacts_s']:.2f} s",
            f"{r['cold_ratio_vs_compile']:.2f}x; target 5 s {'✓' if r['cold_apply_to_invoke_s'] <= 5 else '✗'}",
        ],
        [
            "(4) apply -> first invoke, warm",
            f"{r['warm_apply_to_invoke_s']:.2f} s",
            f"loading them compiled {r['baseline_load_4_from_compiled_cache_s']:.2f} s",
            f"{r['warm_ratio_vs_load']:.1f}x",
        ],
    ]


def _placement(r: dict[str, Any]) -> list[list[str]]:
    rows = [
        [f"(5) placement, {g['components']} components", f"{g['nodes']} nodes: {g['seconds']:.3f} s", "", ""]
        for g in r["growth"]
    ]
    b = r["baseline"]
    if "scale" in r:
        sc = r["scale"]
        rows.append(
            [
                f"(5) placement, {sc['components']:,} components on {sc['nodes']:,} nodes",
                f"{sc['seconds']:.2f} s ({sc['replicas_per_second']:,.0f} replicas/s)",
                "kube-scheduler 810 pods/s (published, 5,000 nodes)",
                f"{sc['vs_kube_scheduler_810_per_second']:.1f}x {'✓' if sc['seconds'] < 3 else '✗'} (target < 3 s)",
            ]
        )
    rows.append(
        [
            f"    {b['components']} components on {b['nodes']} nodes",
            f"vectorized {b['vectorized_seconds']:.3f} s",
            f"node by node {b['scalar_seconds']:.2f} s",
            f"{b['speedup']:.0f}x faster",
        ]
    )
    return rows


def _load(r: dict[str, Any]) -> list[list[str]]:
    a = r["agents_view"]
    ok = not r["failures"] and not r["unreachable_events"] and r["heartbeat_p99_vs_interval"] <= 0.5
    return [
        [
            f"(6) control plane with {r['agents']:,} agents beating every {r['heartbeat_every_seconds']:.1f}s",
            f"{r['loaded']['controlplane']['cpu_percent']:.0f}% of a core, "
            f"{r['loaded']['controlplane']['rss_mib']:.0f} MiB; etcd {r['loaded']['etcd']['cpu_percent']:.0f}%, "
            f"{r['loaded']['etcd']['rss_mib']:.0f} MiB",
            f"idle {r['idle']['controlplane']['cpu_percent']:.1f}%, {r['idle']['controlplane']['rss_mib']:.0f} MiB",
            f"registered in {r['register_all_seconds']:.0f} s; heartbeat p50 {a['heartbeat_p50_ms']:.1f} ms, "
            f"p99 {a['heartbeat_p99_ms']:.0f} ms; {sum(r['failures'].values())} failed calls, "
            f"{r['unreachable_events']} Unreachable; {r['wire_bytes_per_agent_minute'] / 1024:.1f} KiB/agent/min "
            f"{'✓' if ok else '✗'}",
        ]
    ]


def _front_door(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for clients, level in r["levels"].items():
        for guest, suffix in (("Python", ""), ("C", "-c")):
            reuse, fresh = level[f"reuse{suffix}"], level[f"fresh{suffix}"]
            rows.append(
                [
                    f"(7) front door, {guest} hello guest, {clients} client(s)",
                    f"reuse p50 {reuse['p50_ms']:.2f} ms ({reuse['rps']:.0f}/s); "
                    f"fresh {fresh['p50_ms']:.2f} ms ({fresh['rps']:.0f}/s)",
                    f"plain aiohttp handler p50 {level['plain']['p50_ms']:.3f} ms ({level['plain']['rps']:.0f}/s)",
                    f"reuse/plain {level[f'reuse{suffix}_vs_plain_p50']:.1f}x (target 3x), "
                    f"fresh/reuse {level[f'fresh{suffix}_vs_reuse_p50']:.1f}x (target 2x)",
                ]
            )
        rows.append(
            [
                f"(7) front door vs jco serve, fresh instances, {clients} client(s)",
                f"JS {level['fresh-js']['rps']:.0f}/s, C {level['fresh-c']['rps']:.0f}/s",
                f"jco serve: JS {level['jco-js']['rps']:.0f}/s, C {level['jco-c']['rps']:.0f}/s",
                f"JS {level['fresh-js_vs_jco_rps']:.2f}x, C {level['fresh-c_vs_jco_rps']:.2f}x req/s (target > 1x)",
            ]
        )
    return rows


def _compile_tiers(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for guest, tiers in r.items():
        winch, cranelift = tiers["winch"], tiers["cranelift"]
        rows.append(
            [
                f"(8) compile tiers, {guest}",
                f"Winch: compile {winch['compile_s']:.2f} s, run {winch['run_ms']:.2f} ms",
                f"Cranelift: compile {cranelift['compile_s']:.2f} s, run {cranelift['run_ms']:.2f} ms",
                f"compile {winch['compile_vs_cranelift']:.2f}x, run {winch['run_vs_cranelift']:.2f}x, "
                f"same answers: {'yes' if all(t['same'] for t in tiers.values()) else 'NO'}",
            ]
        )
    return rows


def _control_reads(r: dict[str, Any]) -> list[list[str]]:
    base = r["reads"]["health check (baseline)"]
    return [
        [
            f"(9) control API {name}, {r['nodes']} nodes, {r['apps']} apps",
            f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms",
            f"health check p50 {base['p50_ms']:.2f} ms",
            f"{row['ratio_to_health']:.1f}x; target p50 {r['target_p50_ms']:g} ms",
        ]
        for name, row in r["reads"].items()
        if not name.startswith("health")
    ]


def _control_invoke(r: dict[str, Any]) -> list[list[str]]:
    calls, rates = r["calls"], r["calls_per_second"]
    return [
        [
            f"(10) Control.Invoke, {name.removeprefix('invoke ')}",
            f"p50 {calls[name]['p50_ms']:.3f} ms",
            f"forwarded call + mTLS hop {r['baseline_p50_ms']:.3f} ms",
            f"{r[f'ratio {name}']:.2f}x (target {r['target']}x)",
        ]
        for name in ("invoke (JSON)", "invoke (typed)")
    ] + [
        [
            "(10) Control.Invoke, 16 callers at once",
            f"{rates['16 callers']:.0f} calls/s",
            f"1 caller {rates['1 caller']:.0f} calls/s",
            f"{rates['16 callers'] / rates['1 caller']:.2f}x (not serialized)",
        ]
    ]


def _keyvalue(r: dict[str, Any]) -> list[list[str]]:
    """The node bucket's figures are the C guest's (its time is the platform's), the cluster's the Python one's."""
    rows = []
    for backend, guest in (("node", "c"), ("cluster", "guest")):
        for op in ("get", "set"):
            measured, direct = r[backend][f"{guest}_{op}_us"], r[backend][f"direct_{op}_us"]
            rows.append(
                [
                    f"(11) wasi:keyvalue {op}, {backend} bucket, from a {'C' if guest == 'c' else 'Python'} guest",
                    f"{measured:.1f} us",
                    f"the store from Python {direct:.1f} us",
                    f"{measured / direct:.2f}x" + ("; target 3x" if (backend, op) == ("node", "get") else ""),
                ]
            )
    return rows


def _codec(r: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"(12) WIT codec encode + decode, {name}",
            f"{r[name]['wit_codec_us']:.2f} us",
            f"protobuf serialize + parse {r[name]['protobuf_us']:.2f} us",
            f"{r[name]['ratio']:.1f}x; target 5x",
        ]
        for name in ("log-entry", "kitchen-sink")
    ]


def _node_join(r: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"(13) a node joining serves its share ({r['tier']})",
            f"{r['join_registered_to_serving_s']:.2f} s after it registered ({r['join_start_to_serving_s']:.2f} s "
            f"from its start; {r['second_node_compiled']} compiled, {r['second_node_fetched_code']} fetched)",
            f"compiling the parser itself {r['baseline_compile_parser_s']:.2f} s",
            f"target {r['target_s']:g} s {'✓' if r['met'] else '✗'}",
        ]
    ]


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[list[str]]]] = {
    "node_join": _node_join,
    "codec": _codec,
    "keyvalue": _keyvalue,
    "control_reads": _control_reads,
    "control_invoke": _control_invoke,
    "compile_tiers": _compile_tiers,
    "front_door": _front_door,
    "fusion": _fusion,
    "forwarding": _forwarding,
    "runtime": _runtime,
    "apply_to_invoke": _apply,
    "placement": _placement,
    "controlplane_load": _load,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a smaller fleet (a smoke run)")
    args = parser.parse_args()
    chosen = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    if unknown := set(chosen) - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    summary: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick, "results": {}}
    failed = []
    for name in chosen:
        script, full, quick = BENCHMARKS[name]
        print(f"\n=== {name} ({script})", flush=True)
        out = RESULTS / f"{name}.json"
        started = time.monotonic()
        code = subprocess.call(
            [sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else full), "--json", str(out)],
            cwd=ROOT,
        )
        if code != 0:
            failed.append(name)
            print(f"!!! {name} failed with exit code {code}", flush=True)
            continue
        result = json.loads(out.read_text())
        summary["results"][name] = {"seconds": time.monotonic() - started, **result}
        rows += SUMMARIES[name](result)
    print("\n=== summary (each against a baseline measured in the same run)\n")
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {(RESULTS / 'summary.json').relative_to(ROOT)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
