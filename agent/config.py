"""Agent configuration: a frozen dataclass with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


PULL_LABEL = "neon-grid.dev/pull"  # "registry": this node pulls oci:// artifacts itself


@dataclass(frozen=True)
class AgentConfig:
    """Settings of one agent process.

    Attributes:
        name: Node name, a lowercase DNS label unique in the cluster.
        control: The control plane's gRPC address, or several replicas' separated
            by commas (tried in turn when one fails).
        labels: Node labels that placement selects on, e.g. ``{"tier": "edge"}``.
        listen: Data-plane listen address; port 0 picks a free port.
        advertise: Address other agents dial for this node's data plane
            (default: the listen host and the bound port).
        data_dir: Artifacts (and by default the compiled-artifact cache) live here.
        cache_dir: Compiled-artifact cache; several agents on one machine may share it
            (default ``<data_dir>/compiled``).
        memory_bytes: Memory offered to components (default: the machine's).
        instance_slots: How many instances this node accepts.
        call_timeout: Default deadline, in seconds, of a forwarded call.
        taints: ``key=value:Effect`` strings; components must tolerate them.
        metrics_interval: Seconds between reports of peer RTTs and call metrics (the window of `neon top`).
        metrics_listen: Where Prometheus metrics are served (https with the node certificate unless
            insecure); empty: the listen host on any free port, registered with the control plane;
            ``off``: not served.
        capabilities: What this node offers components: ``volumes`` (granted directories),
            ``wasi-filesystem``, ``wasi-sockets``, ``wasi-http``, ``wasi-config`` and ``wasi-keyvalue`` (the
            WASI interfaces; access is still only what a component is granted).
        http_listen: Where the front door serves the routes of the HTTP components running here
            (``host:port``; empty: no front door on this node).
        http_cert: With ``http_key``, serve HTTPS with this certificate chain (PEM) instead of plain HTTP.
        http_key: The private key (PEM) of ``http_cert``.
        max_instances: Component instances this node may hold at once: the size of wasmtime's pooling
            allocator, reserved when the agent starts (0: allocate on demand, without a pool).
        compiler: What makes native code from artifacts: ``tiered`` (the default: a component starts on
            Winch's code and moves to Cranelift's when that is made in the background; a first start of the
            log analyzer 2.2 times sooner, bench/apply_to_invoke.py), ``cranelift`` (optimizing),
            ``cranelift-O0`` or ``winch`` (wasmtime's baseline compiler: 3 to 5 times faster to compile,
            CPU-bound guest code about 1.45 times slower; bench/compile_tiers.py).
        join_token: A one-time token (``neon token create``) to join with when the agent holds
            no certificate yet; the certificate is kept in ``<data_dir>/identity``.
        ca_file: The cluster CA certificate to trust when joining (later kept with the identity).
        join: The control planes' join addresses (default: each control address's port + 1).
        insecure: Plaintext without certificates, for a control plane run with ``--insecure``.
        registry_config: A docker-style ``config.json`` with registry credentials, for a node labelled
            ``neon-grid.dev/pull=registry`` (it pulls ``oci://`` artifacts from their registry itself).
        registry_ca: A CA bundle for registries with a private CA.
        fetch_rate: At most this many bytes a second when fetching artifacts from the control plane (0: as fast
            as the link goes), for an edge node on a metered or shared link; a rollout waits for the fetch
            (``spec.rollout.prefetch``), so the old version serves meanwhile.
        failback_after: With several control-plane replicas, each agent has a home one (by its name, so agents
            spread over them); after this many seconds on another (its home failed), it goes back once home
            answers its health check, so a restarted replica gets its agents back.
    """

    name: str
    control: str = "127.0.0.1:7400"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pulls_from_registries(self) -> bool:
        """Labelled ``neon-grid.dev/pull=registry``: fetch ``oci://`` artifacts from their registry, not the
        control plane."""
        return self.labels.get(PULL_LABEL) == "registry"

    listen: str = "127.0.0.1:0"
    advertise: str = ""
    data_dir: Path = Path(".neon/agent")
    cache_dir: Path | None = None
    memory_bytes: int = field(default_factory=_memory_bytes)
    instance_slots: int = 64
    call_timeout: float = 10.0
    taints: tuple[str, ...] = ()
    metrics_interval: float = 5.0
    metrics_listen: str = ""
    capabilities: tuple[str, ...] = (
        "volumes",
        "wasi-filesystem",
        "wasi-sockets",
        "wasi-http",
        "wasi-config",
        "wasi-keyvalue",
    )
    http_listen: str = ""
    http_cert: Path | None = None
    http_key: Path | None = None
    max_instances: int = 1000
    compiler: str = "tiered"
    join_token: str = ""
    ca_file: Path | None = None
    join: str = ""
    registry_config: Path | None = None
    registry_ca: Path | None = None
    fetch_rate: int = 0
    failback_after: float = 30.0
    insecure: bool = False
