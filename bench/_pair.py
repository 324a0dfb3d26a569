"""The example's processor-parser pair as an application, in the shapes the benchmarks compare."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from cli.client import ControlClient
from cli.devcluster.etcd_launcher import EtcdServer
from cli.devcluster.processes import Child, join_tokens, spawn_agent, spawn_controlplane
from neon import manifest
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, signing
from neon.security.tls import Credentials, sync_channel

PARSER = "cyber-systems:logs/parser@0.1.0"


def pair(name: str, digests: dict[str, str], processor_tier: str, fused: bool = True) -> manifest.AppSpec:
    """Parser on the edge, processor on ``processor_tier``; ``fused=False`` keeps a co-located pair host-linked."""
    link = {"importer": "processor", "import": PARSER, "exporter": "parser"} | ({} if fused else {"fuse": False})
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": name},
            "spec": {
                "components": [
                    {"name": "parser", "artifact": digests["parser"], "placement": {"nodeSelector": {"tier": "edge"}}},
                    {
                        "name": "processor",
                        "artifact": digests["processor"],
                        "placement": {"nodeSelector": {"tier": processor_tier}},
                    },
                ],
                "links": [link],
            },
        }
    )


@contextlib.contextmanager
def edge_and_cloud(
    work: Path,
    built: dict[str, Path],
    apps: Callable[[dict[str, str]], list[manifest.AppSpec]],
    pids: dict[str, int] | None = None,
    compiler: str | None = "cranelift",
) -> Iterator[tuple[dict[str, str], str]]:
    """etcd, a control plane, an edge and a cloud agent (processes), running ``apps(digests)``.

    Everything runs over mutual TLS with a fresh PKI in ``work/pki``; the
    artifacts are signed with its publisher key. Uploads ``built`` (name -> wasm),
    applies the applications, waits until they run and yields each agent's
    data-plane address by node name, and the control plane's address; open
    channels to the agents with :func:`agent_channel`. ``pids``, when given, is filled
    with each agent's process id by node name; ``compiler``: the agents' (None: their
    default).
    """
    pki_dir = work / "pki"
    pki.init(pki_dir)
    with EtcdServer(work / "etcd", pki_dir=pki_dir) as etcd:
        cp = spawn_controlplane(etcd.url, work, pki_dir=pki_dir, extra=["--trust-key", str(pki_dir / "publisher.pub")])
        agents: list[Child] = []
        try:
            control = cp.wait_ready()
            tokens = join_tokens(control, pki_dir, ["edge-1", "cloud-1"])
            ca = pki_dir / "ca.pem"
            agents = [
                spawn_agent(
                    control,
                    name,
                    {"tier": tier},
                    work,
                    ca=ca,
                    join_token=tokens[name],
                    join=cp.join_address,
                    compiler=compiler,
                )
                for name, tier in (("edge-1", "edge"), ("cloud-1", "cloud"))
            ]
            address = {a.name: a.wait_ready() for a in agents}
            if pids is not None:
                pids.update({a.name: a.process.pid for a in agents})
            publisher = signing.load_key(pki_dir / "publisher.key")
            for path in built.values():
                signing.sign_file(path, publisher)
            with ControlClient(control, Credentials.from_dir(pki_dir, "admin")) as client:
                while len(client.list_nodes()) < 2:
                    time.sleep(0.05)
                digests = {name: client.upload(path).digest for name, path in built.items()}
                specs = apps(digests)
                for spec in specs:
                    client.apply(spec)
                for spec in specs:
                    deadline = time.monotonic() + 180
                    while (app := client.get_app(spec.name)).phase != "Running":
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{spec.name} did not run: {app.reason}")
                        time.sleep(0.1)
            yield address, control
        finally:
            for child in [*agents, cp]:
                child.stop()


def agent_channel(work: Path, address: str) -> grpc.Channel:
    """A channel to an agent's data plane as the control plane (what may relay invokes), over mutual TLS."""
    creds = Credentials.from_dir(work / "pki", "controlplane")
    return sync_channel(address, creds, pki.AGENT_NAME, CHANNEL_OPTIONS)
