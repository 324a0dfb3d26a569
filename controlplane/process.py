"""The control-plane process: its parts wired together, its servers started and stopped, and
leadership (the elected replica runs the reconcile loop; every replica serves the API)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import grpc

from controlplane.api.agents import AgentServicer
from controlplane.api.beats import Beats
from controlplane.api.control import ControlServicer
from controlplane.api.join import JoinServicer
from controlplane.api.queries import Queries
from controlplane.api.relay import Relay
from controlplane.api.secrets import SecretsServicer
from controlplane.api.web import Web
from controlplane.compile.code_maker import CodeMaker
from controlplane.config import ControlPlaneConfig
from controlplane.placement import Placer
from controlplane.reconcile.events import new_event
from controlplane.reconcile.intake import ReportIntake
from controlplane.reconcile.loop import ReconcileLoop
from controlplane.registry.pull import Puller
from controlplane.security.admission import Admission
from controlplane.security.identity import Security
from controlplane.state.assignments import AssignmentHub
from controlplane.state.blobs import BlobStore
from controlplane.state.compaction import Compactor, RevisionClock, sample_revisions
from controlplane.state.keys import APPS, MEMBERS, NODES, PREFETCH, SECRETS
from controlplane.state.leader import Election
from controlplane.state.mirror import Mirror
from controlplane.state.replication import BlobReplicator
from controlplane.state.store import Store
from controlplane.wit.composer import Composer
from neon._proto import control_pb2_grpc
from neon.model import NodeInfo
from neon.observe import log
from neon.rpc.http import HttpServer
from neon.rpc.reflection import add_reflection
from neon.rpc.servers import add_join_port, create_server, mark_serving
from neon.threads import default_workers, started_pool

_log = log.get("neon.controlplane")
SERVICES = ("neon.v1.Control", "neon.v1.AgentControl", "neon.v1.Join", "neon.v1.Secrets")
# The nodes holding a lease, and the Unreachable ones with when they were found so (0: not yet).
NodeSets = tuple[dict[str, NodeInfo], dict[str, tuple[NodeInfo, float]]]


class ControlPlane:
    """Owns the store, the blob store and the reconcile loop."""

    def __init__(self, config: ControlPlaneConfig) -> None:
        self.config = config
        self.security = Security.load(config)
        self.store = Store(
            config.etcd,
            tls=None if self.security.creds.plaintext else self.security.creds,
            kek=self.security.secrets_kek,
            no_kek=self.security.no_secrets,
        )
        self.admission = Admission(self.store, self.security.ca, config.node_cert_ttl)
        self.blobs = BlobStore(config.data_dir / "blobs")
        self.placer = Placer(weights=config.placement_weights)
        self.replicator = BlobReplicator(self.store, self.blobs, config.identity, self.security.creds)
        self.composer = Composer(self.store, self.blobs, fetch=self.replicator.ensure, signer=self.security.signing_key)
        signer = self.security.signing_key
        self.code = CodeMaker(self.store, self.blobs, self.replicator.ensure, signer, config.identity)
        self.election: Election | None = None
        self._leader_tasks: list[asyncio.Task[Any]] = []
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.join_port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self.revisions = RevisionClock(self.config.compaction_interval)  # sampled here, compacted to by the leader
        self.web = Web(self)
        self.reconciler = ReconcileLoop(
            self.store, self.placer, self.composer, config.resync_interval, self.web.reconciles.observe
        )
        self.intake = ReportIntake(self.store)
        self.mirror = Mirror(self.store)
        self.reads = Queries(self.store, self.mirror)
        self.beats = Beats(self.mirror, self.reconciler)
        self.relay = Relay(self.store, self.mirror, self.security.creds, config.invoke_timeout)
        self.assignments = AssignmentHub(self.store)
        self.puller = Puller(self.store, self.blobs, config.registry_config, config.registry_ca)
        self.store.events.on_record = lambda event: self.web.events.inc(event.kind)
        self.http: HttpServer | None = None
        self.http_port = 0

    @property
    def address(self) -> str:
        if self.config.advertise:
            return self.config.advertise
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @property
    def http_address(self) -> str:
        """Where the metrics and the dashboard are served; empty when they are not."""
        return self._advertised(self.http_port)

    @property
    def join_address(self) -> str:
        """Where agents join (TLS without a client certificate); empty on plaintext."""
        return self._advertised(self.join_port)

    def _advertised(self, port: int) -> str:
        """The advertised (or listen) host with ``port``; empty when the port is not served."""
        if not port:
            return ""
        host = (self.config.advertise or self.config.listen).rsplit(":", 1)[0]
        return f"{host}:{port}"

    @property
    def ready_text(self) -> str:
        """What the ready file says: the address, then the join address."""
        return f"{self.address}\n{self.join_address}"

    @property
    def identity(self) -> str:
        return self.config.identity or f"{socket.gethostname()}-{self.port}"

    async def start(self) -> None:
        # asyncio's executor started whole (neon.threads): the threads of a long-running replica stay fixed.
        asyncio.get_running_loop().set_default_executor(started_pool(default_workers(), "asyncio"))
        await self.store.connect()

        def register(server: grpc.aio.Server) -> None:
            control_pb2_grpc.add_ControlServicer_to_server(ControlServicer(self), server)
            control_pb2_grpc.add_AgentControlServicer_to_server(AgentServicer(self), server)
            control_pb2_grpc.add_JoinServicer_to_server(JoinServicer(self), server)
            control_pb2_grpc.add_SecretsServicer_to_server(SecretsServicer(self), server)
            add_reflection(server, [*SERVICES, "grpc.health.v1.Health"])

        self.server, self.port = create_server(
            self.config.listen,
            register,
            list(SERVICES),
            self.security.creds,
        )
        if not self.security.creds.plaintext:
            self.join_port = add_join_port(self.server, self._join_listen(), self.security.creds)
        await self.server.start()
        await mark_serving(self.server)
        if self.config.http_listen != "off":
            self.http = HttpServer(self.security.creds)
            self.web.install(self.http)
            self.http_port = await self.http.start(self.config.http_listen or self._next_port(2))
        self.replicator.identity = self.identity
        self.election = Election(
            self.store,
            self.identity,
            self.address,
            self.config.leader_ttl,
            self._lead,
            self._follow,
            http_address=self.http_address,
        )
        self._tasks = [
            asyncio.create_task(self.election.run(), name="election"),
            asyncio.create_task(self.assignments.run(), name="assignment-watch"),
            asyncio.create_task(self.replicator.run(), name="blob-sync"),
            asyncio.create_task(self.mirror.run(), name="read-mirror"),
            asyncio.create_task(sample_revisions(self.store, self.revisions), name="sample-revisions"),
        ]
        _log.info(
            "control plane serving",
            address=self.address,
            join=self.join_address or "none (plaintext)",
            http=f"{self.http.scheme}://{self.http_address}/" if self.http else "off",
            etcd=self.config.etcd,
            identity=self.identity,
            tls=not self.security.creds.plaintext,
        )

    def _join_listen(self) -> str:
        return self.config.join_listen or self._next_port(1)

    def _next_port(self, offset: int) -> str:
        """The listen host with the listen port + ``offset`` (any free port when listening on port 0)."""
        host, _, port = self.config.listen.rpartition(":")
        return f"{host}:{int(port) + offset if int(port) else 0}"

    async def _lead(self) -> None:
        """This replica was elected: reconcile from etcd's state, as if freshly started."""
        self.intake.forget()
        self._leader_tasks = [
            asyncio.create_task(self.reconciler.run(), name="reconcile"),
            asyncio.create_task(self.reconciler.watch(APPS), name="watch-apps"),
            asyncio.create_task(self.reconciler.watch(NODES), name="watch-nodes"),
            asyncio.create_task(self.reconciler.watch(MEMBERS), name="watch-members"),
            asyncio.create_task(self.reconciler.watch(SECRETS), name="watch-secrets"),  # a new version rolls out
            asyncio.create_task(self.reconciler.watch(PREFETCH), name="watch-prefetch"),  # a held rollout goes
            asyncio.create_task(Compactor(self.store, self.revisions).run(), name="compact-etcd"),
        ]
        self.reconciler.mark_dirty()
        await self.store.events.record(
            new_event("LeaderElected", f"control plane {self.identity} ({self.address}) leads")
        )

    async def _follow(self) -> None:
        tasks, self._leader_tasks = self._leader_tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop(self, grace: float = 2.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.election is not None:
            with contextlib.suppress(Exception):
                await self.election.resign()
        if self.server is not None:
            await self.server.stop(grace)
        if self.http is not None:
            await self.http.stop()
        await self.relay.close()
        await self.store.close()
