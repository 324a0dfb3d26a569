"""A soak: mixed load on a local cluster for 30 minutes while faults are injected; resources must stay flat.

Starts etcd (mutual TLS), three control-plane replicas and three agents (separate processes): edge-1 and cloud-1
run the log analyzer (gateway, ingestor, processor and parser fused on edge-1, the archiver on cloud-1), edge-2
runs a second copy ("log-analyzer-b", no gateway) with its archiver on cloud-1 too. Three callers keep a steady
rate: `neon invoke`'s path to each copy's ingestor (through the control planes; each ingest forwards a batch to
the archiver in the cloud) and HTTP POSTs of the sample log to edge-1's front door. Meanwhile:

- every minute the first copy's parser is hot-swapped (v1 and v2 in turn: a new generation, a recomposed fusion);
- every 5 minutes edge-2 is SIGKILLed and restarted;
- every 10 minutes the leading control-plane replica is SIGKILLed and restarted.

Each minute it samples every process's RSS, open file descriptors and threads, and each agent's live wasmtime
instances (as the agents report them). At the end it prints them at the start, at 5 minutes and at the end, the
growth after the first 5 minutes of each process that ran the whole time (the mean of the last fifth of the
samples against the first fifth's; target: under 5%; beside it, not judged, the RSS growth after 15 minutes, where a
process that settles late shows its plateau), the names of the threads that moved, every failed call with the
injected fault that explains it (target: none unexplained), and checks that no application, generation or event
was lost. Not part of CI.

    python bench/soak.py [--minutes 30] [--rate 10]
    python bench/soak.py --minutes 3 --swap-every 30 --kill-agent-every 60 --kill-cp-every 90 --sample-every 15
    python bench/soak.py --agent-args '--max-instances 0'     # agents without wasmtime's instance pool
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _results import save  # noqa: E402
from _soak_parts import Caller, Ledger, Usage, connections, growth, usage  # noqa: E402

from cli.client import ControlClient  # noqa: E402
from cli.devcluster.etcd_launcher import EtcdServer, stable_port  # noqa: E402
from cli.devcluster.guests import EXAMPLES, build_log_analyzer, build_python_guest, log_analyzer_wit  # noqa: E402
from cli.devcluster.processes import Child, join_tokens, spawn_agent, spawn_controlplane  # noqa: E402
from neon import manifest  # noqa: E402
from neon.security import pki, signing  # noqa: E402
from neon.security.tls import Credentials  # noqa: E402

BASE = EXAMPLES / "log-analyzer"
SAMPLE = (BASE / "sample.log").read_text()
REPLICAS = ("cp-a", "cp-b", "cp-c")
AGENTS = {
    "edge-1": {"tier": "edge", "zone": "a"},
    "edge-2": {"tier": "edge", "zone": "b"},
    "cloud-1": {"tier": "cloud"},
}
VICTIM = "edge-2"
TARGET_GROWTH = 5.0
RECOVERY = 180.0  # seconds a killed process has to serve again before the soak gives up


class Soak:
    """The cluster's processes, restartable one by one, and what the soak needs of them."""

    def __init__(self, work: Path, etcd: EtcdServer, agent_args: list[str] | None = None) -> None:
        self.work, self.etcd = work, etcd
        self.agent_args = agent_args or []
        self.pki = work / "pki"
        self.ports = {name: stable_port() for name in REPLICAS}
        self.control = ",".join(f"127.0.0.1:{p}" for p in self.ports.values())
        self.cps: dict[str, Child] = {}
        self.agents: dict[str, Child] = {}
        self.restarts: dict[str, int] = {}
        self.join = ""

    def client(self, timeout: float = 15.0) -> ControlClient:
        key = signing.load_key(self.pki / "publisher.key")
        creds = Credentials.from_dir(self.pki, "admin")
        return ControlClient(self.control, creds, timeout=timeout, sign_with=key, spread=True)

    def start_cp(self, name: str) -> None:
        extra = ["--identity", name, "--leader-ttl", "2", "--trust-key", str(self.pki / "publisher.pub")]
        self.cps[name] = spawn_controlplane(
            self.etcd.url, self.work, name, f"127.0.0.1:{self.ports[name]}", 5, extra, pki_dir=self.pki
        )
        self.cps[name].wait_ready()
        self.join = self.join or self.cps[name].join_address

    def start_agent(self, name: str, token: str = "") -> None:
        self.agents[name] = spawn_agent(
            self.control,
            name,
            AGENTS[name],
            self.work / "agents",
            cache_dir=self.work / "compiled",
            extra=["--http-listen", "127.0.0.1:0", *self.agent_args],  # metrics every 5 s, the default
            ca=self.pki / "ca.pem",
            join_token=token,
            join=self.join,
        )
        self.agents[name].wait_ready()

    def processes(self) -> dict[str, int]:
        assert self.etcd.process is not None
        return {"etcd": self.etcd.process.pid} | {
            n: c.process.pid for n, c in {**self.cps, **self.agents}.items() if c.alive()
        }

    def stop(self) -> None:
        for child in [*self.agents.values(), *self.cps.values()]:
            child.stop()


def manifests(work: Path, built: dict[str, Path], parser_v2: Path) -> dict[str, Path]:
    """The example's manifest pinned to zone a, its v2-parser twin, and copy b in zone b (no gateway)."""
    doc = yaml.safe_load((BASE / "app.yaml").read_text())
    for comp in doc["spec"]["components"]:
        comp["artifact"] = str(built[comp["name"]])
        if comp["placement"]["nodeSelector"] == {"tier": "edge"}:
            comp["placement"]["nodeSelector"]["zone"] = "a"
    out = {"v1": doc, "v2": json.loads(json.dumps(doc))}
    next(c for c in out["v2"]["spec"]["components"] if c["name"] == "parser")["artifact"] = str(parser_v2)
    copy = json.loads(json.dumps(doc))
    copy["metadata"]["name"] = "log-analyzer-b"
    copy["spec"]["components"] = [c for c in copy["spec"]["components"] if c["name"] != "gateway"]
    copy["spec"]["links"] = [link for link in copy["spec"]["links"] if link["importer"] != "gateway"]
    for comp in copy["spec"]["components"]:
        if comp["placement"]["nodeSelector"].get("zone") == "a":
            comp["placement"]["nodeSelector"]["zone"] = "b"
    out["b"] = copy
    paths = {}
    for name, body in out.items():
        paths[name] = work / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(body))
    return paths


def wait_for(what: str, check: Any, timeout: float = RECOVERY) -> float:
    """Poll ``check`` until it is true; returns when that was (monotonic)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except Exception as err:  # noqa: BLE001 - still down: try again until the deadline
            last = err
        time.sleep(0.2)
    raise SystemExit(f"soak: {what} not within {timeout:.0f}s (last error: {last})")


@contextlib.contextmanager
def cluster(work: Path, agent_args: list[str]) -> Iterator[Soak]:
    pki.init(work / "pki")
    with EtcdServer(work / "etcd", pki_dir=work / "pki") as etcd:
        soak = Soak(work, etcd, agent_args)
        try:
            for name in REPLICAS:
                soak.start_cp(name)
            tokens = join_tokens(soak.control, soak.pki, list(AGENTS))
            for name in AGENTS:
                soak.start_agent(name, tokens[name])
            yield soak
        finally:
            soak.stop()


def running(client: ControlClient, app: str) -> bool:
    return client.get_app(app).phase == "Running"


# Well-formed lines of the sample by parser version: v2 also takes its FATAL line. The swapped copy answers
# either while a swap rolls out; the other copy keeps v1.
ACCEPTED = {"log-analyzer": {5, 6}, "log-analyzer-b": {5}}


def ingest(client: ControlClient, app: str) -> bool:
    result, _ = client.invoke(app, "ingestor", "ingest", [SAMPLE], timeout=15)
    return result in ACCEPTED[app]


class FrontDoor:
    """POSTs of the sample log to an agent's front door, on one kept-alive connection (reopened after a failure)."""

    def __init__(self, url: str) -> None:
        self.host = urlsplit(url).netloc
        self.conn: http.client.HTTPConnection | None = None

    def post(self) -> bool:
        try:
            self.conn = self.conn or http.client.HTTPConnection(self.host, timeout=15)
            self.conn.request("POST", "/logs", SAMPLE.encode())
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.conn = None
            raise
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return json.loads(body).get("accepted") in ACCEPTED["log-analyzer"]


def kill_agent(soak: Soak, ledger: Ledger, client: ControlClient) -> None:
    fault = ledger.fault(f"{VICTIM} SIGKILLed", {"invoke-b"})
    soak.agents[VICTIM].kill()
    soak.restarts[VICTIM] = soak.restarts.get(VICTIM, 0) + 1
    soak.start_agent(VICTIM)
    wait_for(f"{VICTIM} serving again", lambda: ingest(client, "log-analyzer-b"))
    fault.ended = ledger.now()


def kill_leader(soak: Soak, ledger: Ledger, client: ControlClient) -> None:
    leader = next(r.identity for r in client.control_planes().replicas if r.leader)
    fault = ledger.fault(f"control plane {leader} (the leader) SIGKILLed", {"invoke-a", "invoke-b"})
    soak.cps[leader].kill()
    soak.restarts[leader] = soak.restarts.get(leader, 0) + 1
    soak.start_cp(leader)

    def led_and_listed() -> bool:
        replicas = client.control_planes().replicas
        return len(replicas) == len(REPLICAS) and any(r.leader for r in replicas)

    wait_for("three replicas and a leader", led_and_listed)
    fault.ended = ledger.now()


def instances(client: ControlClient) -> dict[str, int]:
    per_node: dict[str, int] = {}
    for comp in client.metrics().components:
        per_node[comp.node] = per_node.get(comp.node, 0) + comp.instances
    return per_node


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=10, help="calls a second of each caller")
    parser.add_argument("--swap-every", type=float, default=60, help="seconds")
    parser.add_argument("--kill-agent-every", type=float, default=300, help="seconds")
    parser.add_argument("--kill-cp-every", type=float, default=600, help="seconds")
    parser.add_argument("--sample-every", type=float, default=60, help="seconds")
    parser.add_argument("--settle", type=float, default=300, help="seconds after which growth is measured")
    parser.add_argument(
        "--late", type=float, default=900, help="seconds after which growth is shown again, beside (not judged)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument(
        "--agent-args", default="", help="more arguments for every agent, e.g. '--max-instances 0' (no pool)"
    )
    args = parser.parse_args()
    # Killed with SIGTERM, it still stops its cluster (the processes run in sessions of their own and would stay).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    built = build_log_analyzer()
    parser_v2 = build_python_guest(
        log_analyzer_wit(),
        "log-parser",
        ROOT / "tests" / "support" / "guests" / "parser-v2",
        extra_paths=(BASE / "shared",),
    )
    with tempfile.TemporaryDirectory(prefix="neon-soak-") as tmp, cluster(Path(tmp), args.agent_args.split()) as soak:
        paths = manifests(Path(tmp), built, parser_v2)
        with soak.client() as client:
            # Each artifact uploaded once; a swap applies a spec that names digests.
            specs = {
                name: client.resolve_artifacts(manifest.load(path.read_text(), require_digests=False), path.parent)
                for name, path in paths.items()
            }
            for name in ("v1", "b"):
                client.apply(specs[name])
            for app in ("log-analyzer", "log-analyzer-b"):
                wait_for(f"{app} running", lambda a=app: running(client, a), timeout=600)
            edge = next(n.http_url for n in client.list_nodes() if n.name == "edge-1")
            return run(args, soak, client, specs, FrontDoor(edge))


def run(
    args: argparse.Namespace, soak: Soak, client: ControlClient, specs: dict[str, manifest.AppSpec], door: FrontDoor
) -> int:
    ledger, stop = Ledger(), threading.Event()
    callers = [
        Caller("invoke-a", lambda: ingest(client, "log-analyzer"), args.rate, ledger, stop),
        Caller("invoke-b", lambda: ingest(client, "log-analyzer-b"), args.rate, ledger, stop),
        Caller("http-edge-1", door.post, args.rate, ledger, stop),
    ]
    plan = schedule(args)
    samples: list[tuple[float, dict[str, Usage], dict[str, int]]] = []
    swaps = 0
    print(f"soak: {args.minutes:g} minutes, {len(plan)} steps; callers at {args.rate:g}/s each", flush=True)
    for caller in callers:
        caller.start()
    try:
        for due, step in plan:
            time.sleep(max(0.0, due - ledger.now()))
            if step == "sample":
                used = {n: u for n, pid in soak.processes().items() if (u := usage(pid)) is not None}
                samples.append((ledger.now(), used, instances(client)))
                failed = len(ledger.failures)
                print(
                    f"  {ledger.now() / 60:5.1f} min: {sum(ledger.calls.values())} calls, {failed} failed", flush=True
                )
            elif step == "swap":
                swaps += 1
                client.apply(specs["v2" if swaps % 2 else "v1"])
            elif step == "kill-agent":
                kill_agent(soak, ledger, client)
            elif step == "kill-cp":
                kill_leader(soak, ledger, client)
    finally:
        stop.set()
        for caller in callers:
            caller.join(30)
    lost = losses(client, swaps)
    try:  # whose sockets a control plane's fds are (a replica's count rises as clients move to it)
        links = connections(soak.processes())
    except (OSError, ValueError) as err:
        links = {}
        print(f"  (no connection list: {err})")
    for name in sorted(n for n in links if n.startswith("cp-") or n == "etcd"):
        print(f"  connections of {name}: " + ", ".join(f"{peer} {n}" for peer, n in sorted(links[name].items())))
    return report(args, ledger, samples, soak.restarts, lost)


def moved(before: dict[str, int], after: dict[str, int]) -> str:
    """The thread names whose count changed, as ``name before->after``."""
    names = sorted(n for n in before.keys() | after.keys() if before.get(n, 0) != after.get(n, 0))
    return ", ".join(f"{n!r} {before.get(n, 0)}->{after.get(n, 0)}" for n in names)


def schedule(args: argparse.Namespace) -> list[tuple[float, str]]:
    """Each step at its time: samples from the start, faults from their first interval, in time order."""
    end = args.minutes * 60
    plan: list[tuple[float, str]] = []
    for step, every, first in (
        ("sample", args.sample_every, 0.0),
        ("swap", args.swap_every, args.swap_every),
        ("kill-agent", args.kill_agent_every, args.kill_agent_every),
        ("kill-cp", args.kill_cp_every, args.kill_cp_every),
    ):
        at = first
        while at < end or (step == "sample" and at <= end):
            plan.append((at, step))
            at += every
    order = {"sample": 0, "swap": 1, "kill-agent": 2, "kill-cp": 3}
    return sorted(plan, key=lambda p: (p[0], order[p[1]]))


def losses(client: ControlClient, swaps: int) -> list[str]:
    """What was lost: an application, a generation, or an Applied event of one."""
    lost = []
    expected = {"log-analyzer": 1 + swaps, "log-analyzer-b": 1}
    for app, generation in expected.items():
        got = client.get_app(app)
        if got.generation != generation or got.phase != "Running":
            lost.append(f"{app}: generation {got.generation} {got.phase}, expected generation {generation} Running")
    applied = {e.message for e in client.events(history=1000) if e.kind == "Applied"}
    for app, generation in expected.items():
        for g in range(1, generation + 1):
            if f"{app} generation {g} applied" not in applied:
                lost.append(f"no Applied event for {app} generation {g}")
    return lost


def report(
    args: argparse.Namespace,
    ledger: Ledger,
    samples: list[tuple[float, dict[str, Usage], dict[str, int]]],
    restarts: dict[str, int],
    lost: list[str],
) -> int:
    unexplained = ledger.explain()
    settled = next((s for s in samples if s[0] >= args.settle), samples[-1])
    first, last = samples[0], samples[-1]
    print(
        f"\n{'process':10} {'restarts':>8}  {'RSS MiB start / 5 min / end':>30}  {'fds':>14}  {'threads':>14}  growth"
    )
    table: dict[str, Any] = {}
    worst = 0.0
    for name in sorted(last[1]):
        row = [s[1].get(name) for s in (first, settled, last)]
        shown = [f"{u.rss_mib:.0f}" if u else "-" for u in row]
        fds = [str(u.fds) if u else "-" for u in row]
        threads = [str(u.threads) if u else "-" for u in row]
        after = [u for t, used, _ in samples if t >= settled[0] and (u := used.get(name)) is not None]
        grown = {}
        if not restarts.get(name) and all(row):
            grown = {
                "rss": growth([u.rss_mib for u in after]),
                "fds": growth([float(u.fds) for u in after]),
                "threads": growth([float(u.threads) for u in after]),
            }
            worst = max(worst, *grown.values())
        said = ", ".join(f"{k} {v:+.1f}%" for k, v in grown.items()) if grown else "restarted (a fault)"
        late = [u for t, used, _ in samples if t >= args.late and (u := used.get(name)) is not None]
        if grown and len(late) >= 5:  # a plateau reached late (etcd's database) is shown apart from a climb
            grown_late = growth([u.rss_mib for u in late])
            said += f" (rss after {args.late / 60:g} min {grown_late:+.1f}%)"
            table.setdefault(name, {})["rss_growth_after_late_percent"] = grown_late
        if grown:  # where the RSS went: the heap (anon) or mapped files, shown beside, not judged apart
            anon = growth([u.anon_mib for u in after])
            at_settle, end = row[1], row[2]
            assert at_settle is not None and end is not None
            said += (
                f" (anon {at_settle.anon_mib:.0f} -> {end.anon_mib:.0f} MiB, {anon:+.1f}%, of which in wasm's "
                f"reservations {at_settle.wasm_mib:.0f} -> {end.wasm_mib:.0f}; files {end.file_mib:.0f})"
            )
        if grown and row[1].thread_names != row[2].thread_names:  # type: ignore[union-attr]
            said += f"; threads moved: {moved(row[1].thread_names, row[2].thread_names)}"  # type: ignore[union-attr]
        print(
            f"{name:10} {restarts.get(name, 0):>8}  {' / '.join(shown):>30}  {' / '.join(fds):>14}  "
            f"{' / '.join(threads):>14}  {said}"
        )
        table.setdefault(name, {}).update(
            {"restarts": restarts.get(name, 0), "samples": [u.__dict__ if u else None for u in row]}
        )
        table[name]["growth_after_settling_percent"] = grown
    print("live wasmtime instances per node (start / 5 min / end):")
    for node in sorted(last[2]):
        print(f"  {node:10} {' / '.join(str(s[2].get(node, '-')) for s in (first, settled, last))}")
    calls, failures = sum(ledger.calls.values()), len(ledger.failures)
    print(f"\ncalls: {calls} ({', '.join(f'{k} {v}' for k, v in sorted(ledger.calls.items()))}); failed: {failures}")
    causes: dict[str, int] = {}
    for failure in ledger.failures:
        causes[failure.cause or "UNEXPLAINED"] = causes.get(failure.cause or "UNEXPLAINED", 0) + 1
    for cause, count in sorted(causes.items()):
        print(f"  {count:5} {cause}")
    for failure in unexplained[:20]:
        print(f"  unexplained at {failure.at:.1f}s ({failure.kind}): {failure.error}")
    for fault in ledger.faults:
        took = f"{fault.ended - fault.started:.1f}s" if fault.ended is not None else "never recovered"
        print(f"  fault at {fault.started / 60:.1f} min: {fault.what}; serving again after {took}")
    for line in lost:
        print(f"  LOST: {line}")
    ok = worst < TARGET_GROWTH and not unexplained and not lost
    print(
        f"\nverdict: {'PASS' if ok else 'FAIL'}: worst growth after {args.settle / 60:g} min {worst:+.1f}% "
        f"(target < {TARGET_GROWTH:g}%), {len(unexplained)} unexplained failures, {len(lost)} losses"
    )
    save(
        args.json,
        {
            "minutes": args.minutes,
            "processes": table,
            "series": {  # every sample: (seconds, RSS MiB, fds, threads, anon MiB, file MiB, wasm MiB)
                name: [
                    (round(t), u.rss_mib, u.fds, u.threads, u.anon_mib, u.file_mib, u.wasm_mib)
                    if (u := used.get(name))
                    else (round(t), None)
                    for t, used, _ in samples
                ]
                for name in last[1]
            },
            "instances": {n: [s[2].get(n) for s in samples] for n in last[2]},
            "calls": ledger.calls,
            "failures_by_cause": causes,
            "faults": [f.__dict__ | {"affects": sorted(f.affects)} for f in ledger.faults],
            "lost": lost,
            "worst_growth_percent": worst,
            "pass": ok,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
