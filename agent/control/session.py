"""The agent's session with the control plane: register, heartbeat and watch the desired state (over
again whenever the connection or the lease is lost, moving between replicas), renew the node
certificate, send status and metrics reports, fetch artifacts. What it receives goes to the agent
through the callbacks it was given; it knows nothing of what the agent runs."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.config import AgentConfig
from agent.control.identity import Identity, load_or_join
from neon import __version__
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import NeonGridError
from neon.model import Assignment, InstanceReport
from neon.model_proto import assignment_from_proto, report_to_proto
from neon.observe import log
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki
from neon.security.tls import Credentials, aio_channel

_log = log.get("neon.agent")
RouteRow = tuple[str, str, str, tuple[str, ...], tuple[str, ...]]  # route, app, component, nodes, endpoints
COMPILE_WAIT = 900.0  # seconds the control plane may take to compile code asked for (it compiles once per cluster)
ASK_TIMEOUT = 20.0  # seconds one ask for code may take (the control plane answers "pending" within a few)


class ControlSession:
    """One agent's connection to the control plane (``--control`` may list several replicas)."""

    def __init__(
        self,
        config: AgentConfig,
        on_desired: Callable[[int, tuple[Assignment, ...]], Awaitable[None]],
        on_identity: Callable[[Identity], None],
        status: Callable[[], list[InstanceReport]],
    ) -> None:
        self.config = config
        self.on_desired = on_desired  # a new desired state (its revision, the assignments)
        self.on_identity = on_identity  # a new node certificate, to present from now on
        self.status = status  # what to report now
        # what to report of the prefetch lists: (artifacts ready, (artifact, why) of those that failed)
        self.prefetch: Callable[[], tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = lambda: ((), ())
        self.identity = Identity(Credentials.insecure())
        self.address = ""  # this node's data-plane address, as registered
        self.metrics_address = ""
        self.http_url = ""  # the front door, when this node serves HTTP
        # The cluster's HTTP route table from heartbeats: the version held, and who is told of a new table.
        self.routes_version = ""
        self.on_routes: Callable[[list[RouteRow]], None] | None = None
        self.peers: list[tuple[str, str]] = []  # (name, data-plane address), from heartbeats
        self.report_dirty = asyncio.Event()
        self.registered = asyncio.Event()
        self.channel: grpc.aio.Channel | None = None
        self._channel_creds: Credentials | None = None
        self._controls = [a.strip() for a in config.control.split(",") if a.strip()] or [config.control]
        # Agents spread over the replicas: each starts on its home one (by its name) and, when a fault moved it
        # elsewhere, goes back once home serves again, so a replica that restarts gets its agents back.
        self._home = zlib.crc32(config.name.encode()) % len(self._controls)
        self._control_index = self._home
        self._left_home = 0.0  # when this agent last moved away from its home replica (monotonic)
        self._going_home = False

    async def join(self) -> Identity:
        """The node's identity: its saved certificate, or one got by joining with the token."""
        self.identity = await load_or_join(self.config)
        return self.identity

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close(None)

    def _control_address(self) -> str:
        """The current control-plane replica (``--control`` may list several)."""
        return self._controls[self._control_index % len(self._controls)]

    def connect(self) -> str:
        """A channel to the current control-plane replica, with the certificate held now; its address."""
        address = self._control_address()
        self.channel = aio_channel(address, self.identity.creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS)
        self._channel_creds = self.identity.creds
        self.control = control_pb2_grpc.AgentControlStub(self.channel)
        return address

    async def _next_control(self) -> None:
        """Move to the next replica after the current one failed; any replica serves agents."""
        if len(self._controls) < 2:
            return
        if self._at_home():
            self._left_home = time.monotonic()
        self._control_index += 1
        _log.info("switching control plane", control=await self._reconnect())

    def _at_home(self) -> bool:
        return self._control_index % len(self._controls) == self._home

    async def _home_serves(self) -> bool:
        """Whether this agent should go back to its home replica now: away for ``--failback-after`` seconds,
        and home answers its health check."""
        if self._at_home() or time.monotonic() - self._left_home < self.config.failback_after:
            return False
        home = self._controls[self._home]
        async with aio_channel(home, self.identity.creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS) as channel:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.aio.AioRpcError:
                self._left_home = time.monotonic()  # still away: look again later
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    async def _reconnect(self) -> str:
        """Replace the control-plane channel (closing the old one); the new one's address."""
        old = self.channel
        address = self.connect()
        if old is not None:
            await old.close(None)
        return address

    async def run(self) -> None:
        """Register, heartbeat and watch; start over whenever the connection or the lease is lost."""
        backoff = 0.2
        while True:
            heartbeat: asyncio.Task[Any] | None = None
            if self._channel_creds is not self.identity.creds:  # renewed since: dial with the new certificate
                await self._reconnect()
            try:
                reply = await self.control.Register(
                    control_pb2.RegisterRequest(
                        name=self.config.name,
                        labels=self.config.labels,
                        dataplane_address=self.address,
                        memory_bytes=self.config.memory_bytes,
                        instance_slots=self.config.instance_slots,
                        version=__version__,
                        taints=list(self.config.taints),
                        capabilities=list(self.config.capabilities),
                        metrics_address=self.metrics_address,
                        http_url=self.http_url,
                    ),
                    timeout=10,
                )
                backoff = 0.2
                _log.info("registered", lease=f"{reply.lease_id:x}", ttl=reply.lease_ttl_seconds)
                watch = self.control.WatchAssignments(control_pb2.WatchAssignmentsRequest(name=self.config.name))
                heartbeat = asyncio.create_task(self._heartbeat(reply.lease_id, reply.lease_ttl_seconds, watch))
                self.registered.set()
                self.report_dirty.set()  # the new lease starts without our status
                async for snapshot in watch:
                    assignments = tuple(assignment_from_proto(a) for a in snapshot.assignments)
                    _log.info("desired state", revision=snapshot.revision, apps=[a.app for a in assignments])
                    await self.on_desired(snapshot.revision, assignments)
                _log.warning("assignment stream ended; reconnecting")
                await self._next_control()  # the replica is going away
            except asyncio.CancelledError:
                if heartbeat is None or not heartbeat.done() or heartbeat.cancelled():
                    raise
                if self._going_home:
                    self._going_home = False
                    self._control_index = self._home
                    _log.info("moving back to the home control plane", control=await self._reconnect())
                else:
                    _log.warning("lease lost; registering again")
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                    _log.error("the control plane refuses this node", error=err.details())
                    if await self._rejoin():
                        continue
                elif err.code() != grpc.StatusCode.CANCELLED:
                    _log.warning(
                        "control plane unreachable; retrying",
                        error=err.details(),
                        code=err.code().name,
                        backoff=backoff,
                    )
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    await self._next_control()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()

    async def _rejoin(self) -> bool:
        """The certificate was revoked (the node deleted) or replaced: join again if a token was given."""
        if not self.config.join_token or self.identity.creds.plaintext:
            return False
        saved = self.config.data_dir / "identity" / "node.pem"
        saved.rename(saved.with_suffix(".pem.refused"))
        try:
            self.identity = await load_or_join(self.config)
        except NeonGridError as err:
            _log.error("joining again failed", error=err.message)
            return False
        self.on_identity(self.identity)
        _log.info("joined again with the token; registering with the new certificate")
        return True

    async def renew(self) -> None:
        """Renew the node certificate two thirds into its life, over the current (still valid) one."""
        while not self.identity.creds.plaintext:
            info = self.identity.creds.identity
            assert info is not None
            await asyncio.sleep(max(0.0, info.renew_at() - time.time()))
            csr, key = pki.csr_for(self.config.name)
            # A channel of its own, with the certificate held now (the session's may still carry an older one).
            channel = aio_channel(self._control_address(), self.identity.creds, pki.CONTROLPLANE_NAME, CHANNEL_OPTIONS)
            try:
                reply = await control_pb2_grpc.AgentControlStub(channel).RenewCertificate(
                    control_pb2.RenewCertificateRequest(name=self.config.name, csr_pem=csr), timeout=15
                )
            except grpc.aio.AioRpcError as err:
                retry = max(1.0, min(30.0, (info.not_after - time.time()) / 10))
                _log.warning("certificate renewal failed; retrying", error=err.details(), retry_in=retry)
                await asyncio.sleep(retry)
                continue
            finally:
                await channel.close(None)
            directory = self.config.data_dir / "identity"
            pki.save(directory, "node", pki.Issued(reply.cert_pem, key))
            renewed = Identity(Credentials.from_dir(directory, "node"), self.identity.controlplane_key)
            self.identity = renewed
            self.on_identity(renewed)
            new = renewed.creds.identity
            assert new is not None
            _log.info("node certificate renewed", serial=new.serial, valid_until=new.not_after)

    async def _heartbeat(self, lease_id: int, ttl: int, watch: Any) -> None:
        interval = max(ttl / 3.0, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                reply = await self.control.Heartbeat(
                    control_pb2.HeartbeatRequest(
                        name=self.config.name, lease_id=lease_id, routes_version=self.routes_version
                    ),
                    timeout=interval,
                )
                self.peers = [(p.name, p.dataplane_address) for p in reply.peers]
                if await self._home_serves():
                    self._going_home = True
                    watch.cancel()  # ends the session loop's stream; it registers again at home
                    return
                if reply.routes_changed:
                    self.routes_version = reply.routes_version
                    if self.on_routes is not None:
                        self.on_routes(
                            [(r.route, r.app, r.component, tuple(r.nodes), tuple(r.endpoints)) for r in reply.routes]
                        )
            except grpc.aio.AioRpcError as err:
                _log.warning("heartbeat failed", code=err.code().name, error=err.details())
                if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    watch.cancel()  # ends the session loop's stream; it registers again
                    return

    async def report(self) -> None:
        while True:
            await self.report_dirty.wait()
            self.report_dirty.clear()
            ready, failed = self.prefetch()
            report = control_pb2.StatusReport(
                node=self.config.name,
                instances=[report_to_proto(r) for r in self.status()],
                prefetched=ready,
                prefetch_failed=dict(failed),
            )
            try:
                await self.control.ReportStatus(report, timeout=10)
            except grpc.aio.AioRpcError as err:
                _log.warning("status report failed; will resend", code=err.code().name, error=err.details())
                await asyncio.sleep(1.0)
                self.report_dirty.set()
            await asyncio.sleep(0.2)  # a storm of traps becomes a few reports, not one per call

    async def send_metrics(self, report: control_pb2.MetricsReport) -> None:
        try:
            await self.control.ReportMetrics(report, timeout=10)
        except grpc.aio.AioRpcError as err:
            _log.warning("metrics report failed", code=err.code().name, error=err.details())

    async def fetch_secrets(self, app: str, component: str) -> tuple[dict[str, str], dict[str, int]]:
        """The values of the secrets ``app/component``'s config references (config key -> value), and their
        versions; only over mutual TLS, for a component assigned to this node."""
        request = control_pb2.FetchSecretsRequest(node=self.config.name, app=app, component=component)
        reply = await self.control.FetchSecrets(request, timeout=10)
        return dict(reply.values), dict(reply.versions)

    async def key_value(
        self, app: str, component: str, bucket: str, op: str, **fields: Any
    ) -> control_pb2.KeyValueResponse:
        """One operation on a cluster bucket (``fields``: keys, values, delta, cursor, version). While the control
        plane is being reconnected to, the call waits for the channel (it is sent once, when it can be)."""
        request = control_pb2.KeyValueRequest(
            node=self.config.name, app=app, component=component, bucket=bucket, op=op, **fields
        )
        return await self.control.KeyValue(request, timeout=10, wait_for_ready=True)

    async def compiled_code(
        self, artifact: str, engine: str, refused: tuple[str, str] = ("", "")
    ) -> control_pb2.CompiledCode:
        """The control plane's native code for ``artifact`` on ``engine``, asked again while it is compiled (a
        large fused group takes a minute on a busy machine), up to :data:`COMPILE_WAIT`; with ``refused`` (code
        digest, why), report code refused."""
        request = control_pb2.CompiledCodeRequest(
            node=self.config.name, artifact=artifact, engine=engine, refused_code=refused[0], refused_reason=refused[1]
        )
        deadline = time.monotonic() + COMPILE_WAIT
        while True:
            answer = await self.control.GetCompiledCode(request, timeout=ASK_TIMEOUT)
            if not answer.pending:
                return answer
            if time.monotonic() > deadline:
                return control_pb2.CompiledCode(reason=f"not compiled within {COMPILE_WAIT:.0f}s")

    async def fetch(self, digest: str) -> AsyncIterator[bytes]:
        """An artifact's bytes from the control plane's blob store, chunk by chunk (no faster than
        ``--fetch-rate``: the stream is read no sooner than the bytes so far allow, so the link is not filled)."""
        rate, started, got = self.config.fetch_rate, time.monotonic(), 0
        request = control_pb2.FetchArtifactRequest(digest=digest)
        stream = self.control.FetchArtifact(request, timeout=None if rate else 300)  # a slow link takes its time
        async for chunk in stream:
            yield chunk.data
            got += len(chunk.data)
            if rate > 0 and (ahead := got / rate - (time.monotonic() - started)) > 0:
                await asyncio.sleep(ahead)
