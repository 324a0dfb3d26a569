"""The example's processor-parser pair as an application, in the shapes the benchmarks compare."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from neon import manifest
from neon.client import ControlClient
from neon.etcd_server import EtcdServer
from neon.processes import Child, spawn_agent, spawn_controlplane

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
    work: Path, built: dict[str, Path], apps: Callable[[dict[str, str]], list[manifest.AppSpec]]
) -> Iterator[tuple[dict[str, str], str]]:
    """etcd, a control plane, an edge and a cloud agent (processes), running ``apps(digests)``.

    Uploads ``built`` (name -> wasm), applies the applications, waits until they
    run and yields each agent's data-plane address by node name, and the
    control plane's address.
    """
    with EtcdServer(work / "etcd") as etcd:
        cp = spawn_controlplane(etcd.url, work)
        agents: list[Child] = []
        try:
            control = cp.wait_ready()
            agents = [
                spawn_agent(control, "edge-1", {"tier": "edge"}, work),
                spawn_agent(control, "cloud-1", {"tier": "cloud"}, work),
            ]
            address = {a.name: a.wait_ready() for a in agents}
            with ControlClient(control) as client:
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
