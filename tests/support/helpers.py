"""Test helpers: assert_eventually and the cluster with real servers."""

from __future__ import annotations

import asyncio
import functools
import http.client
import importlib.util
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar
from urllib.parse import urlsplit

import grpc

from cli.client import ControlClient
from cli.devcluster.etcd_launcher import EtcdServer
from cli.devcluster.processes import Child, spawn_agent
from controlplane.config import ControlPlaneConfig
from controlplane.process import ControlPlane
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, signing
from neon.security.tls import Credentials, sync_channel

T = TypeVar("T")


def assert_eventually(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Call ``check`` until it returns without an AssertionError; return its value.

    ``check`` asserts; the last AssertionError is raised if time runs out. A check that
    returns ``False`` has not passed either (a bare comparison must not pass by returning).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            assert result is not False, "the check returned False"
            return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


class LoopThread:
    """An asyncio loop in a daemon thread, for in-process servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test-loop")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def http_request(
    url: str, method: str, path: str, body: bytes | None = None, timeout: float = 60.0
) -> tuple[int, bytes, dict[str, str]]:
    """One request to a node's front door (``url`` as ``Node.http_url`` gives it): status, body, headers."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def wait_running(client: ControlClient, app: str, timeout: float = 90.0) -> None:
    """Wait until the application's phase is Running."""

    def running() -> None:
        got = client.get_app(app)
        assert got.phase == "Running", f"{got.phase}: {got.reason}"

    assert_eventually(running, timeout=timeout)


DEFAULT_AGENTS = {"edge-1": {"tier": "edge"}, "cloud-1": {"tier": "cloud"}}


class Cluster:
    """Real etcd, an in-process control plane on 127.0.0.1:0, agents as separate processes."""

    def __init__(
        self,
        workdir: Path,
        compiled_cache: Path,
        agents: dict[str, dict[str, str]] | None = None,
        node_ttl: int = 5,
        metrics_interval: float = 0.5,
        cp_listen: str = "127.0.0.1:0",
        node_cert_ttl: float = 365 * 86400.0,
        registry_config: Path | None = None,
        registry_ca: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.registry_config, self.registry_ca = registry_config, registry_ca
        self.node_cert_ttl = node_cert_ttl
        self.compiled_cache = compiled_cache
        self.agent_specs = dict(DEFAULT_AGENTS if agents is None else agents)
        self.node_ttl = node_ttl
        self.metrics_interval = metrics_interval
        self.cp_listen = cp_listen
        self.pki = workdir / "pki"
        self.etcd = EtcdServer(workdir / "etcd", pki_dir=self.pki)  # mutual TLS, as the control plane
        self.loop = LoopThread()
        self.cp: ControlPlane | None = None
        self._control = ""
        self.agents: dict[str, Child] = {}
        self.client: ControlClient | None = None

    @property
    def control(self) -> str:
        """The control plane's address (kept while it is stopped, to start it again there)."""
        if self.cp is not None:
            self._control = self.cp.address
        return self._control

    def _config(self, listen: str) -> ControlPlaneConfig:
        return ControlPlaneConfig(
            etcd=self.etcd.url,
            listen=listen,
            data_dir=self.workdir / "cp",
            node_ttl=self.node_ttl,
            pki_dir=self.pki,
            node_cert_ttl=self.node_cert_ttl,
            registry_config=self.registry_config,
            registry_ca=self.registry_ca,
        )

    def credentials(self, user: str = "admin") -> Credentials:
        """A user's credentials from this cluster's PKI (admin, viewer, or one issued later)."""
        return Credentials.from_dir(self.pki, user)

    def identity(self, name: str, role: str) -> Credentials:
        """New credentials for ``name`` with ``role``, signed by this cluster's CA."""
        ca = pki.load(self.pki, "ca")
        issued = pki.issue(ca, name, role)
        return Credentials(ca.cert, issued.cert, issued.key)

    def channel(self, address: str, creds: Credentials | None = None) -> grpc.Channel:
        """A mutual-TLS channel to the control plane or an agent; by default as the control plane
        (what relays users' invokes to agents) or as the admin (for the control API)."""
        if address == self.control:
            return sync_channel(address, creds or self.credentials(), pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS)
        return sync_channel(address, creds or self.credentials("controlplane"), pki.AGENT_NAME, CHANNEL_OPTIONS)

    def start(self) -> Cluster:
        pki.init(self.pki, ())
        self.etcd.start()
        self.cp = ControlPlane(self._config(self.cp_listen))
        self.loop.run(self.cp.start())
        # The tests' uploads are signed with the PKI's publisher key, which the control plane trusts.
        self.client = ControlClient(
            self.control, self.credentials(), sign_with=signing.load_key(self.pki / "publisher.key")
        )
        for name, labels in self.agent_specs.items():
            self.add_agent(name, labels, wait=False)
        for child in self.agents.values():
            child.wait_ready()
        expected = set(self.agent_specs)
        assert_eventually(lambda: self._assert_nodes(expected), timeout=30)
        return self

    def stop_controlplane(self) -> int:
        """Stop the control plane (agents lose it); returns its port, to start it again there."""
        assert self.cp is not None
        port = self.cp.port
        self.loop.run(self.cp.stop())
        self.cp = None
        return port

    def start_controlplane(self, port: int) -> None:
        """Start a control plane on ``port`` again, on the same etcd and blob directory."""
        host = self.cp_listen.rsplit(":", 1)[0]
        self.cp = ControlPlane(self._config(f"{host}:{port}"))
        self.loop.run(self.cp.start())

    def _assert_nodes(self, expected: set[str]) -> None:
        assert self.client is not None
        names = {n.name for n in self.client.list_nodes()}
        assert expected <= names, f"registered: {sorted(names)}, expected {sorted(expected)}"

    def add_agent(
        self,
        name: str,
        labels: dict[str, str],
        wait: bool = True,
        extra: Sequence[str] = (),
        prefix: Sequence[str] = (),
    ) -> Child:
        """Start an agent process (under ``prefix``, e.g. in a network namespace) and wait until it registers.

        It joins with a fresh token for its name (used only when it holds no admitted certificate).
        """
        assert self.client is not None
        # Every agent opens a front door on loopback (its URL is registered: Node.http_url).
        extra = ["--metrics-interval", str(self.metrics_interval), "--http-listen", "127.0.0.1:0", *extra]
        # Without a control plane (stopped by the test) an agent can only restart with the certificate it has.
        token = self.client.create_join_token(120, node=name).token if self.cp is not None else ""
        child = spawn_agent(
            self.control,
            name,
            labels,
            self.workdir / "agents",
            cache_dir=self.compiled_cache,
            extra=extra,
            prefix=prefix,
            ca=self.pki / "ca.pem",
            join_token=token,
            join=self.cp.join_address if self.cp is not None else "",
        )
        self.agents[name] = child
        if wait:
            address = child.wait_ready()
            # This agent's own registration, not a record left by an earlier agent of the same name.
            assert_eventually(lambda: self._assert_registered(name, address), timeout=30)
        return child

    def _assert_registered(self, name: str, address: str) -> None:
        assert self.client is not None
        found = {n.name: n.dataplane_address for n in self.client.list_nodes()}
        assert found.get(name) == address, f"registered: {found}, expected {name} at {address}"

    def store(self, coro_fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run ``coro_fn(store)`` on the control plane's loop (to read etcd directly)."""
        assert self.cp is not None
        return self.loop.run(coro_fn(self.cp.store))

    def check_invariants(self) -> None:
        """No assignment or placement outlives its application (nothing half-deployed)."""

        def check() -> None:
            world = self.store(lambda s: s.read_world())
            orphans = sorted(set(world.assigned) - set(world.apps))
            assert not orphans, f"assignments left for deleted applications: {orphans}"
            stale = sorted(set(world.placements) - set(world.apps))
            assert not stale, f"placements left for deleted applications: {stale}"

        assert_eventually(check, timeout=15)

    def stop(self) -> dict[str, int]:
        """Stop everything; returns the agents' exit codes."""
        codes = {}
        for name, child in self.agents.items():
            codes[name] = child.stop(timeout=15)
        if self.client is not None:
            self.client.close()
        if self.cp is not None:
            self.loop.run(self.cp.stop())
        self.loop.close()
        self.etcd.stop()
        return codes

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{child.tail(40)}" for name, child in self.agents.items())


ROOT = Path(__file__).resolve().parents[2]  # the checkout
GUESTS = Path(__file__).resolve().parent / "guests"  # the test guests
EXAMPLE = ROOT / "examples" / "log-analyzer"

# The example's processor and parser alone: the parser on the edge, the processor in
# the cloud, so every parse call crosses nodes. Most end-to-end tests use this pair.
PAIR_TEXT = """\
apiVersion: neon-grid.dev/v1
kind: Application
metadata:
  name: log-analyzer
spec:
  components:
    - name: parser
      artifact: build/parser.wasm
      placement:
        nodeSelector:
          tier: edge
    - name: processor
      artifact: build/processor.wasm
      placement:
        nodeSelector:
          tier: cloud
  links:
    - importer: processor
      import: cyber-systems:logs/parser@0.1.0
      exporter: parser
"""


def example_manifest(directory: Path, text: str, *replace: tuple[str, str], name: str) -> Path:
    """Write a manifest (with each ``(old, new)`` text replaced) where ``build/`` is the built example."""
    for old, new in replace:
        assert old in text, f"{old!r} is not in the manifest"
        text = text.replace(old, new)
    build = directory / "build"
    if not build.exists():
        build.symlink_to(EXAMPLE / "build")
    path = directory / name
    path.write_text(text)
    return path


def write_pair(
    directory: Path,
    parser: Path,
    processor: Path,
    *,
    app: str = "pair",
    processor_tier: str = "cloud",
    parser_placement: str = "",
    link: str = "",
) -> Path:
    """A manifest of the processor-parser pair built from the given artifacts (parser on the edge).

    ``parser_placement`` adds to the parser's placement mapping and ``link`` to
    the link's (flow-style YAML entries, each starting with ", ").
    """
    path = directory / f"{app}-{processor_tier}.yaml"
    path.write_text(
        f"""apiVersion: neon-grid.dev/v1
kind: Application
metadata: {{name: {app}}}
spec:
  components:
    - {{name: parser, artifact: "{parser}", placement: {{nodeSelector: {{tier: edge}}{parser_placement}}}}}
    - {{name: processor, artifact: "{processor}", placement: {{nodeSelector: {{tier: {processor_tier}}}}}}}
  links:
    - {{importer: processor, import: "cyber-systems:logs/parser@0.1.0", exporter: parser{link}}}
"""
    )
    return path


def pair_manifest(directory: Path, *replace: tuple[str, str], name: str = "pair.yaml") -> Path:
    """The pair's manifest, with each ``(old, new)`` text replaced, next to the built example."""
    return example_manifest(directory, PAIR_TEXT, *replace, name=name)


# Lines that exercise every rule of the example's parser, for comparing its implementations.
AWKWARD_LINES = [
    *(EXAMPLE / "sample.log").read_text().splitlines(),
    "",
    "   ",
    "a b",
    "a  b",
    "2026-11-24T08:00:00Z warning x: y",
    "2026-11-24T08:00:00Z WARNINGS x: y",
    "2026-11-24T08:00:00Z info a b: c",
    "2026-11-24T08:00:00Z info : c",
    "2026-11-24T08:00:00Z info a:c",
    "  2026-11-24T08:00:00Z  info a: c",
    "x'y z w",
    "x'\"y z w",
    "tab\there z",
    "2026-11-24T08:00:00+02:00 Error db: ünïcödé: ok: more",
    "2026-11-24T08:00:00Z INFO a: ",
    "abcd-11-24T08:00:00Z INFO a: b",
    "2026-11-24T08:00:00Z INFO\ta: b c",
]


@functools.cache
def _logline() -> Any:
    spec = importlib.util.spec_from_file_location("logline", EXAMPLE / "shared" / "logline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_parse(line: str) -> dict[str, Any]:
    """What `parse` returns for ``line`` (as JSON), by the rules of examples/log-analyzer/shared/logline.py."""
    try:
        timestamp, level, source, message = _logline().parse_line(line)
    except ValueError as err:
        return {"err": str(err)}
    return {"ok": {"timestamp": timestamp, "level": level.lower(), "source": source, "message": message}}


def expected_batch(lines: Sequence[str]) -> dict[str, list[Any]]:
    """What `parse-batch` returns for ``lines`` (as JSON): the entries, and a reason per malformed line."""
    parsed = [expected_parse(line) for line in lines]
    return {
        "entries": [p["ok"] for p in parsed if "ok" in p],
        "errors": [f"line {n}: {p['err']}" for n, p in enumerate(parsed, 1) if "err" in p],
    }


def neon_cli(cluster: Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The ``neon`` command as a user runs it, as the cluster's admin."""
    return subprocess.run(
        [sys.executable, "-m", "neon", "--pki", str(cluster.pki), "--control", cluster.control, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def https_get(address: str, path: str, creds: Credentials | None, server_name: str) -> tuple[int, str]:
    """GET over HTTPS with ``creds``' certificate (None: none, and the server's is not checked)."""
    from neon.rpc.http import client_context, get

    if creds is not None:
        ctx = client_context(creds)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    status, _, body = get(address, path, ctx, server_name)
    return status, body.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample with exactly these labels."""
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    raise AssertionError(f"no sample {name}{labels}")
