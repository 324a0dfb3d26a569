"""The agent process: the I/O shell around :class:`agent.state.AgentState`.

It registers with the control plane, keeps its lease alive, receives its
desired state as a server stream, and carries out the state machine's
instructions: fetch artifacts, start and stop instances (in worker threads),
update forwarding routes and report status. It also serves the data plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import grpc

from agent.artifacts import ArtifactCache
from agent.codec import Signature as CallSignature
from agent.config import AgentConfig
from agent.dataplane import DataPlaneServicer
from agent.denials import DenialLog, Incidents
from agent.desired import DesiredStateFile
from agent.forwarder import Router, get_call_deadline
from agent.identity import Identity, load_or_join
from agent.logbook import LogBook
from agent.metrics import RttProber
from agent.pool import InstancePool, PoolClosed
from agent.runtime import ComponentTemplate, FunctionRef, HostFunc, Runtime
from agent.state import (
    AgentState,
    ArtifactFailed,
    ArtifactFetched,
    DesiredChanged,
    Event,
    Fetch,
    InstanceFailed,
    InstanceStarted,
    InstanceStopped,
    Instruction,
    Key,
    Report,
    Route,
    Start,
    Stop,
)
from agent.telemetry import PoolStats, Telemetry
from neon import __version__, log, pki
from neon._proto import control_pb2, control_pb2_grpc
from neon.authz import HTTP_READERS
from neon.errors import (
    CapabilityDenied,
    ComponentError,
    IntegrityError,
    NeonGridError,
    NotRunning,
    ResourceExhausted,
)
from neon.http import HttpServer, Request, Response
from neon.metrics import CONTENT_TYPE
from neon.model import ComponentAssignment, InstanceReport
from neon.rpc import CHANNEL_OPTIONS, GuardedServer, SyncServer, create_sync_server, mark_serving
from neon.signing import UNSIGNED_ALLOWED, Signature, verify, verify_fused
from neon.tls import Credentials, ServerIdentity, aio_channel
from neon.wire import assignment_from_proto, metrics_report, report_to_proto

_log = log.get("neon.agent")

# The data plane's handler threads: calls into guests (each waits for a free instance) and log streams.
DATAPLANE_THREADS = 16
# Followed log streams held open at once (each holds a handler thread while it waits for lines).
LOG_FOLLOWERS = 8


class Agent:
    """One agent; ``await start()``, then ``await stop()``."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = AgentState()
        self.runtime = Runtime(config.cache_dir or config.data_dir / "compiled")
        self.artifacts = ArtifactCache(config.data_dir / "artifacts")
        self.desired = DesiredStateFile(config.data_dir / "desired.json")
        self.telemetry = Telemetry(config.name, __version__)
        self.telemetry.watch(self._pool_stats, self._denial_counts)
        self.logs = LogBook()
        self.router = Router(config.name, config.call_timeout, self.telemetry)
        self.identity = Identity(Credentials.insecure())
        self.server_identity = ServerIdentity(self.identity.creds)
        self._channel_creds: Credentials | None = None
        self.prober = RttProber()
        self.peers: list[tuple[str, str]] = []  # (name, data-plane address), from heartbeats
        self._pools: dict[Key, InstancePool] = {}
        self._pools_lock = threading.Lock()
        self._denials: dict[Key, DenialLog] = {}
        self._traps: dict[Key, Incidents] = {}
        self._since: dict[Key, tuple[tuple[str, str, str], float]] = {}  # (state, artifact, reason), since
        self._callers: dict[Key, frozenset[str]] = {}  # from the desired state: who may forward calls here
        # Counts changes to what this node serves (a pool started, swapped or stopped; the callers allowed):
        # the data plane keeps what it looked up per function until it changes.
        self.serving = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._report: tuple[InstanceReport, ...] = ()
        self._report_dirty = asyncio.Event()
        self._registered = asyncio.Event()
        self.server: SyncServer | None = None
        self.dataplane = DataPlaneServicer(self, helpers=DATAPLANE_THREADS)
        self._followers = threading.BoundedSemaphore(LOG_FOLLOWERS)
        self.http: HttpServer | None = None
        self.metrics_address = ""
        self.channel: grpc.aio.Channel | None = None
        self._controls = [a.strip() for a in config.control.split(",") if a.strip()] or [config.control]
        self._control_index = 0
        self.address = ""

    # ---------------------------------------------------------- lifecycle --

    async def start(self) -> None:
        def register(server: GuardedServer) -> None:
            self.dataplane.add_to_server(server)

        self.identity = await load_or_join(self.config)
        self.router.creds = self.prober.creds = self.identity.creds
        self.server_identity = ServerIdentity(self.identity.creds)
        self.server, port = create_sync_server(
            self.config.listen,
            register,
            ["neon.v1.DataPlane"],
            self.identity.creds,
            self.server_identity,
            threads=DATAPLANE_THREADS + LOG_FOLLOWERS,
        )
        self.server.start()
        if self.server.inline is not None:
            self.telemetry.watch_served(self.server.inline.served)
        await mark_serving(self.server)
        host = self.config.listen.rsplit(":", 1)[0]
        self.address = self.config.advertise or f"{host}:{port}"
        if self.config.metrics_listen != "off":
            self.http = HttpServer(self.identity.creds)
            self.http.route("/metrics", self._serve_metrics, HTTP_READERS)
            metrics_port = await self.http.start(self.config.metrics_listen or f"{host}:0")
            self.metrics_address = f"{self._advertised_host(self.config.metrics_listen, host)}:{metrics_port}"
        self._connect_control()
        saved = self.desired.load()
        if saved is not None:
            revision, assignments = saved
            _log.info(
                "resuming the last desired state until the control plane answers",
                revision=revision,
                apps=[a.app for a in assignments],
            )
            self._feed(DesiredChanged(assignments))
        self._spawn(self._session(), "session")
        self._spawn(self._reporter(), "reporter")
        self._spawn(self._metrics(), "metrics")
        self._spawn(self._renewer(), "renew-certificate")
        _log.info(
            "agent started",
            dataplane=self.address,
            metrics=f"{self.http.scheme}://{self.metrics_address}/metrics" if self.http else "off",
            control=self.config.control,
            labels=self.config.labels,
        )

    def _advertised_host(self, listen: str, default: str) -> str:
        """The host others reach a port bound at ``listen`` on: its own host, unless it is a wildcard."""
        host = listen.rpartition(":")[0].strip("[]")
        if host in ("", "0.0.0.0", "::"):
            return (self.config.advertise.rpartition(":")[0] if self.config.advertise else "") or default
        return host

    async def wait_registered(self, timeout: float) -> None:
        await asyncio.wait_for(self._registered.wait(), timeout)

    async def stop(self, grace: float = 2.0) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            await asyncio.to_thread(self.server.stop(grace).wait)
        self.dataplane.close()
        if self.http is not None:
            await self.http.stop()
        if self.channel is not None:
            await self.channel.close(None)
        self.router.close()
        await self.prober.close()
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
            self.serving += 1
        for pool in pools:
            pool.close()
        self.runtime.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------ control plane --

    def _control_address(self) -> str:
        """The current control-plane replica (``--control`` may list several)."""
        return self._controls[self._control_index % len(self._controls)]

    def _connect_control(self) -> str:
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
        self._control_index += 1
        _log.info("switching control plane", control=await self._reconnect())

    async def _reconnect(self) -> str:
        """Replace the control-plane channel (closing the old one); the new one's address."""
        old = self.channel
        address = self._connect_control()
        if old is not None:
            await old.close(None)
        return address

    async def _session(self) -> None:
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
                    ),
                    timeout=10,
                )
                backoff = 0.2
                _log.info("registered", lease=f"{reply.lease_id:x}", ttl=reply.lease_ttl_seconds)
                watch = self.control.WatchAssignments(control_pb2.WatchAssignmentsRequest(name=self.config.name))
                heartbeat = asyncio.create_task(self._heartbeat(reply.lease_id, reply.lease_ttl_seconds, watch))
                self._registered.set()
                self._report_dirty.set()  # the new lease starts without our status
                async for snapshot in watch:
                    assignments = tuple(assignment_from_proto(a) for a in snapshot.assignments)
                    _log.info("desired state", revision=snapshot.revision, apps=[a.app for a in assignments])
                    await asyncio.to_thread(self.desired.save, snapshot.revision, assignments)
                    self._feed(DesiredChanged(assignments))
                _log.warning("assignment stream ended; reconnecting")
                await self._next_control()  # the replica is going away
            except asyncio.CancelledError:
                if heartbeat is not None and heartbeat.done() and not heartbeat.cancelled():
                    _log.warning("lease lost; registering again")
                else:
                    raise
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
        self._use_identity(self.identity)
        _log.info("joined again with the token; registering with the new certificate")
        return True

    def _use_identity(self, identity: Identity) -> None:
        """Present ``identity`` from now on: new data-plane handshakes, new forwarding channels, and
        the control-plane channel the next time the session (re)connects."""
        self.identity = identity
        self.router.set_credentials(identity.creds)
        self.prober.creds = identity.creds
        self.server_identity.replace(identity.creds)
        if self.http is not None:
            self.http.reload(identity.creds)

    async def _renewer(self) -> None:
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
            self._use_identity(renewed)
            new = renewed.creds.identity
            assert new is not None
            _log.info("node certificate renewed", serial=new.serial, valid_until=new.not_after)

    async def _heartbeat(self, lease_id: int, ttl: int, watch: Any) -> None:
        interval = max(ttl / 3.0, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                reply = await self.control.Heartbeat(
                    control_pb2.HeartbeatRequest(name=self.config.name, lease_id=lease_id), timeout=interval
                )
                self.peers = [(p.name, p.dataplane_address) for p in reply.peers]
            except grpc.aio.AioRpcError as err:
                _log.warning("heartbeat failed", code=err.code().name, error=err.details())
                if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    watch.cancel()  # ends the session loop's stream; it registers again
                    return

    async def _reporter(self) -> None:
        while True:
            await self._report_dirty.wait()
            self._report_dirty.clear()
            report = control_pb2.StatusReport(
                node=self.config.name, instances=[report_to_proto(self._annotated(r)) for r in self._report]
            )
            try:
                await self.control.ReportStatus(report, timeout=10)
            except grpc.aio.AioRpcError as err:
                _log.warning("status report failed; will resend", code=err.code().name, error=err.details())
                await asyncio.sleep(1.0)
                self._report_dirty.set()
            await asyncio.sleep(0.2)  # a storm of traps becomes a few reports, not one per call

    def _annotated(self, report: InstanceReport) -> InstanceReport:
        """The state machine's report with when it last changed, and the component's denials and traps."""
        key = (report.app, report.component)
        shape = (report.state, report.artifact, report.reason)
        seen = self._since.get(key)
        if seen is None or seen[0] != shape:
            seen = self._since[key] = (shape, time.time())
        extra: dict[str, Any] = {"since": seen[1]}
        denials = self._denials.get(key)
        if denials is not None and denials.count:
            extra.update(denials=denials.count, last_denial=denials.last)
        traps = self._traps.get(key)
        if traps is not None and traps.count:
            extra.update(traps=traps.count, last_trap=traps.last, last_trap_id=traps.last_id)
        return dataclasses.replace(report, **extra)

    def _pool_stats(self) -> dict[Key, PoolStats]:
        with self._pools_lock:
            pools = dict(self._pools)
        return {key: PoolStats(**pool.stats()) for key, pool in pools.items()}

    def _denial_counts(self) -> dict[Key, int]:
        with self._pools_lock:
            return {key: log.count for key, log in self._denials.items() if log.count}

    async def _serve_metrics(self, request: Request) -> Response:
        return Response.text(self.telemetry.registry.render(), content_type=CONTENT_TYPE)

    async def _metrics(self) -> None:
        """Every metrics_interval: measure RTTs to peers, report them with the calls per link."""
        while True:
            await asyncio.sleep(self.config.metrics_interval)
            rtt = await self.prober.measure(self.peers)
            for peer, ms in rtt.items():
                self.telemetry.peer_rtt.set(peer, value=ms / 1000.0)
            report = metrics_report(self.config.name, rtt, self.telemetry, self._traps)
            try:
                await self.control.ReportMetrics(report, timeout=10)
            except grpc.aio.AioRpcError as err:
                _log.warning("metrics report failed", code=err.code().name, error=err.details())

    # ---------------------------------------------------- state machine --

    def _feed(self, event: Event) -> None:
        if isinstance(event, DesiredChanged):
            self._callers = {(a.app, c.name): frozenset(c.callers) for a in event.assignments for c in a.components}
            with self._pools_lock:
                self.serving += 1
            self.logs.keep_only(set(self._callers))
        for instruction in self.state.handle(event):
            self._execute(instruction)

    def _feed_soon(self, event: Event) -> None:
        asyncio.get_running_loop().call_soon(self._feed, event)

    def _execute(self, ins: Instruction) -> None:
        if isinstance(ins, Fetch):
            self._spawn(self._fetch(ins.digest), f"fetch {ins.digest[:19]}")
        elif isinstance(ins, Start):
            self._spawn(self._start(ins.key, ins.spec), f"start {ins.key}")
        elif isinstance(ins, Stop):
            with self._pools_lock:
                pool = self._pools.pop(ins.key, None)
                self.serving += 1
            if pool is not None:
                pool.close()
                _log.info("instance stopped", app=ins.key[0], component=ins.key[1])
            self._feed_soon(InstanceStopped(ins.key))
        elif isinstance(ins, Route):
            self.router.set_routes(ins.app, ins.component, ins.endpoints)
        elif isinstance(ins, Report):
            if ins.instances != self._report:
                self._report = ins.instances
                self._report_dirty.set()

    async def _fetch(self, digest: str) -> None:
        try:
            if not await asyncio.to_thread(self.artifacts.verified, digest):
                stream = self.control.FetchArtifact(control_pb2.FetchArtifactRequest(digest=digest), timeout=300)

                async def chunks() -> Any:
                    async for chunk in stream:
                        yield chunk.data

                await self.artifacts.store(digest, chunks())
                _log.info("artifact fetched", artifact=digest)
        except grpc.aio.AioRpcError as err:
            self._feed(ArtifactFailed(digest, f"fetch failed: {err.details()}"))
        except NeonGridError as err:
            self._feed(ArtifactFailed(digest, err.message))
        else:
            self._feed(ArtifactFetched(digest))

    async def _start(self, key: Key, spec: ComponentAssignment) -> None:
        app, name = key

        loop = asyncio.get_running_loop()

        def report_soon() -> None:
            loop.call_soon_threadsafe(self._report_dirty.set)

        denials = DenialLog(f"{app}/{name}", report_soon)
        traps = self._traps.get(key)
        if traps is None:
            traps = self._traps[key] = Incidents(report_soon)
        sink = self.logs.sink(key)

        def on_trap(err: NeonGridError) -> None:
            self.telemetry.trap(app, name)
            if isinstance(err, CapabilityDenied):
                sink("agent", err.message)
                return  # reported as a denial
            incident = traps.add(err.message)
            _log.warning("guest trapped", app=app, component=name, incident=incident, error=err.message)
            sink("agent", f"trapped (incident {incident}): {err.message}")

        def build() -> InstancePool:
            self._check_provenance(f"{app}/{name}", spec)
            component = self.runtime.load(spec.artifact, self.artifacts.path(spec.artifact))
            imports = self._link(app, name, spec, component, denials)
            template = ComponentTemplate(
                self.runtime,
                component,
                f"{app}/{name}",
                imports,
                settings=spec.runtime,
                grants=spec.grants,
                volume_root=self.config.data_dir / "volumes" / app,
                denials=denials,
                output=sink,
            )
            pool = InstancePool(template, on_trap, self.telemetry.component_meter(app, name))
            pool.warm()
            return pool

        try:
            pool = await asyncio.to_thread(build)
        except NeonGridError as err:
            _log.warning("instance failed to start", app=app, component=name, error=err.message)
            sink("agent", f"failed to start: {err.message}")
            self._feed(InstanceFailed(key, spec, err.message))
            return
        except Exception as err:  # noqa: BLE001 - any failure is reported, never crashes the agent
            _log.exception("instance failed to start", app=app, component=name)
            sink("agent", f"failed to start: {type(err).__name__}: {err}")
            self._feed(InstanceFailed(key, spec, f"{type(err).__name__}: {err}"))
            return
        with self._pools_lock:
            old = self._pools.get(key)
            self._pools[key] = pool
            self.serving += 1
            self._denials[key] = denials
        if old is not None:
            old.close()
        sink("agent", f"running {spec.artifact[:19]} ({spec.runtime.mode}, {spec.runtime.instances} instance(s))")
        _log.info(
            "instance running",
            app=app,
            component=name,
            artifact=spec.artifact,
            mode=spec.runtime.mode,
            instances=spec.runtime.instances,
        )
        self._feed(InstanceStarted(key, spec))

    def _check_provenance(self, label: str, spec: ComponentAssignment) -> None:
        """Before anything is compiled: the bytes match the digest, and a trusted key signed the digest
        (for a fused artifact: the control plane signed it over its inputs, and each input is signed)."""
        if not self.artifacts.verified(spec.artifact):
            raise IntegrityError(
                f"{label}: artifact {spec.artifact} is missing or does not match its digest on this node",
                expected=spec.artifact,
            )
        trusted = list(spec.trusted_keys)
        if trusted == [UNSIGNED_ALLOWED]:
            _log.warning(
                "running an artifact without checking its signature (control plane: --allow-unsigned)",
                component=label,
                artifact=spec.artifact,
            )
            return
        signatures = [Signature.from_json(text, f"{label} signature") for text in spec.signatures]
        if spec.inputs:
            own = next((s for s in signatures if s.artifact == spec.artifact), None)
            if self.identity.controlplane_key:
                verify_fused(label, spec.artifact, list(spec.inputs), own, [self.identity.controlplane_key])
            for digest in spec.inputs:
                verify(f"{label} (fused input)", digest, signatures, trusted)
            return
        verify(label, spec.artifact, signatures, trusted)

    def _link(
        self, app: str, name: str, spec: ComponentAssignment, component: Any, denials: DenialLog
    ) -> dict[str, dict[str, HostFunc]]:
        """Host functions for every non-WASI import: local calls, gRPC forwarders, or (for an
        interface ``grants.interfaces`` leaves out) stubs that deny."""
        needed = self.runtime.imports(component)
        bindings = {b.import_name: b for b in spec.imports}
        for import_name in bindings:
            if import_name not in needed:
                have = ", ".join(sorted(needed)) or "none besides WASI"
                raise ComponentError(
                    f"{app}/{name} is linked on {import_name}, which it does not import (its imports: {have})",
                    component=name,
                    import_name=import_name,
                )
        linked: dict[str, dict[str, HostFunc]] = {}
        for iface, funcs in sorted(needed.items()):
            binding = bindings.get(iface)
            if binding is None and not funcs:
                linked[iface] = {}  # an interface of types only: an empty instance satisfies it
                continue
            granted = spec.grants.interfaces
            if binding is None and granted is not None and iface not in granted:
                what = f"{iface or 'its root imports'} (not in grants.interfaces)"
                linked[iface] = {fname: denials.stub(what) for fname in funcs}
                continue
            if binding is None:
                raise ComponentError(
                    f"{app}/{name} imports {iface or 'root functions'}, but no link satisfies it; add to spec.links: "
                    f"{{importer: {name}, import: {iface}, exporter: <component>}}",
                    component=name,
                    import_name=iface,
                )
            table: dict[str, HostFunc] = {}
            for fname, fty in funcs.items():
                # Compiled for local links too: it refuses types wasmtime-py cannot pass faithfully.
                sig = CallSignature.of(fty, f"{iface}#{fname}")
                if binding.local:
                    table[fname] = self._local_call(app, name, binding.component, FunctionRef(iface, fname))
                else:
                    table[fname] = self.router.forwarder(
                        app, name, binding.component, iface, fname, sig, binding.retries(fname)
                    )
            linked[iface] = table
        return linked

    def _local_call(self, app: str, importer: str, exporter: str, ref: FunctionRef) -> HostFunc:
        meter = self.telemetry.link_meter((app, importer, exporter, "local"))

        def call(*args: Any) -> Any:
            started = time.perf_counter()
            ok = False
            try:
                result = self.call(app, exporter, ref, list(args))
                ok = True
                return result
            finally:
                meter.record(time.perf_counter() - started, ok)

        return call

    # ---------------------------------------------------------- serving --

    @contextlib.contextmanager
    def follow_slot(self, key: Key) -> Iterator[None]:
        """Hold one of the :data:`LOG_FOLLOWERS` slots while a log stream is followed, or refuse it."""
        if not self._followers.acquire(blocking=False):
            raise ResourceExhausted(
                f"node {self.config.name} already streams {LOG_FOLLOWERS} followed logs; stop one "
                f"(`neon logs -f`) or read {key[0]}/{key[1]} without --follow",
                node=self.config.name,
            )
        try:
            yield
        finally:
            self._followers.release()

    def callers(self, app: str, component: str) -> frozenset[str]:
        """The nodes whose forwarded calls to ``app/component`` are accepted here (the desired state's)."""
        return self._callers.get((app, component), frozenset())

    def pool(self, app: str, component: str) -> InstancePool:
        pool = self._pools.get((app, component))  # read without the lock (a dict read): on every call's path
        if pool is None:
            raise NotRunning(
                f"{app}/{component} is not running on node {self.config.name}",
                app=app,
                component=component,
                node=self.config.name,
            )
        return pool

    def call(
        self, app: str, component: str, ref: FunctionRef, args: list[Any], lift: Callable[[Any], Any] | None = None
    ) -> Any:
        """Call into a component on this node from a worker thread, within the current call's deadline
        (:func:`agent.forwarder.get_call_deadline`); see :meth:`call_within`."""
        return self.call_within(app, component, ref, args, get_call_deadline(), lift)

    def call_within(
        self,
        app: str,
        component: str,
        ref: FunctionRef,
        args: list[Any],
        deadline: float | None,
        lift: Callable[[Any], Any] | None = None,
        pool: InstancePool | None = None,
    ) -> Any:
        """Call into a component on this node from a worker thread, within ``deadline`` (monotonic;
        None: the component's own timeout). The pool records the call's outcome and time.

        A call that waited on a pool that was swapped out (hot swap) moves to the new pool. ``lift``
        reads the result from wasmtime's C value (:meth:`agent.runtime.ComponentInstance.call`);
        ``pool``: the component's pool, when the caller has looked it up already (the data plane keeps it).
        """
        pool = pool or self.pool(app, component)
        try:
            return pool.call(ref, args, deadline, lift)
        except PoolClosed:
            replacement = self.pool(app, component)
            if replacement is pool:
                raise
            return replacement.call(ref, args, deadline, lift)
