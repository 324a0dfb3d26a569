"""Control-plane configuration: a frozen dataclass with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ControlPlaneConfig:
    """Settings of one control-plane process.

    Attributes:
        etcd: etcd client URL, e.g. ``https://127.0.0.1:2379`` (``http://`` only with ``insecure``).
        listen: gRPC listen address; port 0 picks a free port.
        data_dir: Where artifact blobs are kept.
        node_ttl: Seconds an agent's lease lives without a heartbeat.
        resync_interval: Seconds between full reconciles even when nothing changed.
        invoke_timeout: Default deadline, in seconds, of a user's invoke.
        identity: This replica's name among control planes; default ``<host>-<port>``.
        advertise: The address other replicas reach this one at; default the
            listen address (with the bound port).
        leader_ttl: Seconds of the replica lease; the leader (the one replica that
            reconciles) is replaced within about 4/3 of it after it dies.
        pki_dir: The PKI (``neon certs init``): ``ca.pem``/``ca.key`` (the CA signs joining
            agents' certificates), ``controlplane.pem``/``.key`` (this replica's identity) and
            ``signing.key`` (signs fused artifacts).
        insecure: Serve plaintext without certificates: every caller is trusted. Opt-in, logged loudly.
        join_listen: The join port (TLS without client certificates; serves only ``Join``);
            default the listen host with the listen port + 1 (any free port when that is 0).
        trusted_keys: The trust policy: ed25519 publisher keys (``ed25519:<base64>`` or files)
            whose signatures admit an artifact; ``PKI_DIR/publisher.pub`` is trusted too when it exists.
            An application may name its own in ``spec.trustedKeys``.
        allow_unsigned: Deploy artifacts without checking signatures. Opt-in, logged loudly.
        node_cert_ttl: Seconds a node certificate is valid (default a year); agents renew it
            two thirds into its life.
        http_listen: Metrics (Prometheus), the dashboard and its JSON, read-only: https asking for a
            viewer or admin certificate unless insecure; default the listen host with the listen port + 2
            (any free port when that is 0); ``off``: not served.
        compaction_interval: Seconds of etcd's history kept: the leader compacts a fifth of this apart, each
            time dropping the revisions older than the one seen an interval before.
        registry_config: A docker-style ``config.json`` with the credentials of the OCI registries
            ``oci://`` artifacts are pulled from (default ``~/.docker/config.json`` when it exists).
        registry_ca: A CA bundle for registries with a private CA.
        placement_weights: Scorer name -> weight, overriding the defaults
            (``controlplane.placement.DEFAULT_WEIGHTS``: balance 1, sticky 10,
            preferred-labels 2, preferred-affinity 2, prefer-no-schedule 1,
            topology-balance 2, link-cost 3).
    """

    etcd: str = "https://127.0.0.1:2379"
    listen: str = "127.0.0.1:7400"
    data_dir: Path = Path(".neon/controlplane")
    node_ttl: int = 10
    resync_interval: float = 10.0
    invoke_timeout: float = 30.0
    identity: str = ""
    advertise: str = ""
    leader_ttl: int = 5
    pki_dir: Path = Path(".neon/pki")
    insecure: bool = False
    join_listen: str = ""
    trusted_keys: tuple[str, ...] = ()
    allow_unsigned: bool = False
    node_cert_ttl: float = 365 * 86400.0
    http_listen: str = ""
    compaction_interval: float = 300.0
    registry_config: Path | None = None
    registry_ca: Path | None = None
    placement_weights: dict[str, float] = field(default_factory=dict)
