"""The agent process: the I/O shell around :class:`agent.state.AgentState`.

It starts the data plane, keeps a session with the control plane (:mod:`agent.control.session`) that
hands it the desired state, and carries out the state machine's instructions: fetch artifacts, start
and stop instances (in worker threads, :mod:`agent.linking` wiring their imports), update forwarding
routes and report status.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc

from agent.config import AgentConfig
from agent.control.artifact_cache import ArtifactCache
from agent.control.code_source import ControlCodeSource
from agent.control.desired import DesiredStateFile
from agent.control.identity import Identity
from agent.control.provenance import check_provenance
from agent.control.session import ControlSession
from agent.dataplane.forwarder import Router
from agent.dataplane.server import DataPlaneServicer
from agent.dataplane.serving import LOG_FOLLOWERS, Serving
from agent.http.component import HttpComponent
from agent.http.front_door import FrontDoor, https_context
from agent.http.wiring import connect_front_door
from agent.linking import Linker
from agent.observe.logbook import LogBook
from agent.observe.metrics_report import metrics_report
from agent.observe.rtt import RttProber
from agent.observe.status_notes import StatusNotes
from agent.observe.telemetry import PoolStats, Telemetry
from agent.platform.kv_buckets import Buckets
from agent.platform.secret_keeper import SecretKeeper
from agent.runtime.allocator import PoolLimits
from agent.runtime.engine import Runtime
from agent.runtime.pool import InstancePool
from agent.runtime.tiering import Tiers
from agent.starter import Hooks, Starter, in_daemon_thread
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
    Prepare,
    Prepared,
    PrepareFailed,
    Report,
    Route,
    Start,
    Stop,
)
from neon import __version__
from neon.errors import NeonGridError
from neon.model import Assignment, ComponentAssignment, InstanceReport
from neon.observe import log
from neon.observe.metrics import CONTENT_TYPE
from neon.oci.registry import RegistryClient
from neon.rpc.http import HttpServer, Request, Response
from neon.rpc.servers import GuardedServer, SyncServer, create_sync_server, mark_serving
from neon.security.authz import HTTP_READERS
from neon.security.tls import ServerIdentity
from neon.threads import default_workers, fill, started_pool

_log = log.get("neon.agent")

# The data plane's handler threads: calls into guests (each waits for a free instance) and log streams.
DATAPLANE_THREADS = 16


class Agent:
    """One agent; ``await start()``, then ``await stop()``."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = AgentState()
        pool = PoolLimits(config.max_instances) if config.max_instances > 0 else None
        self.tiers = Tiers(config.cache_dir or config.data_dir / "compiled", pool, config.compiler)
        self.runtime = self.tiers.first
        # A node labelled to pull oci:// artifacts from their registry does; others fetch from the control plane.
        registry = RegistryClient(config.registry_config, config.registry_ca) if config.pulls_from_registries else None
        self.artifacts = ArtifactCache(config.data_dir / "artifacts", registry)
        self.desired = DesiredStateFile(config.data_dir / "desired.json")
        self.telemetry = Telemetry(config.name, __version__)
        self.notes = StatusNotes()
        self.node = Serving(config.name, LogBook())
        self.telemetry.watch(self._pool_stats, self.notes.denial_counts)
        self.router = Router(config.name, config.call_timeout, self.telemetry)
        self.linker = Linker(self.runtime, self.router, self.node, self.telemetry)
        volumes = config.data_dir / "volumes"
        self.session = ControlSession(config, self._desired_changed, self._use_identity, self._status)
        self.buckets = Buckets(config.data_dir / "kv", self.session.key_value)
        self.starter = Starter(
            self.artifacts,
            self.linker,
            self.telemetry,
            volumes,
            lambda label, spec: check_provenance(label, spec, self.artifacts, self.identity.controlplane_key),
            self.buckets,
        )
        identity_dir = config.data_dir / "identity"
        self.secrets = SecretKeeper(config.data_dir / "secrets", identity_dir / "seal.key", self.session.fetch_secrets)
        self.server_identity = ServerIdentity(self.session.identity.creds)
        self.prober = RttProber()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._report: tuple[InstanceReport, ...] = ()
        self._prefetched: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] = ((), ())
        self.session.prefetch = lambda: self._prefetched
        self.server: SyncServer | None = None
        self.dataplane = DataPlaneServicer(self.node, helpers=DATAPLANE_THREADS)
        self.http: HttpServer | None = None
        # HTTP components run on every node they are placed on (a request may be handed over to them);
        # only a node given --http-listen also takes requests itself.
        self.front_door = FrontDoor(config.name, self.telemetry.registry)
        connect_front_door(self.front_door, self.router, self.dataplane, self.session, self.telemetry)
        self.address = ""

    @property
    def identity(self) -> Identity:
        return self.session.identity

    @identity.setter
    def identity(self, identity: Identity) -> None:
        self.session.identity = identity

    # ---------------------------------------------------------- lifecycle --

    async def start(self) -> None:
        def register(server: GuardedServer) -> None:
            self.dataplane.add_to_server(server)

        loop = asyncio.get_running_loop()
        self.buckets.bind(loop)
        _start_pools(loop, self.front_door)
        identity = await self.session.join()
        self.tiers.use(ControlCodeSource(self.session, loop, lambda: self.identity.controlplane_key))
        self.router.creds = self.prober.creds = identity.creds
        self.server_identity = ServerIdentity(identity.creds)
        self.server, port = create_sync_server(
            self.config.listen,
            register,
            ["neon.v1.DataPlane"],
            identity.creds,
            self.server_identity,
            threads=DATAPLANE_THREADS + LOG_FOLLOWERS,
        )
        self.server.start()
        if self.server.inline is not None:
            self.telemetry.watch_served(self.server.inline.served)
        await mark_serving(self.server)
        host = self.config.listen.rsplit(":", 1)[0]
        self.address = self.session.address = self.config.advertise or f"{host}:{port}"
        if self.config.metrics_listen != "off":
            self.http = HttpServer(identity.creds)
            self.http.route("/metrics", self._serve_metrics, HTTP_READERS)
            metrics_port = await self.http.start(self.config.metrics_listen or f"{host}:0")
            metrics_host = advertised_host(self.config.metrics_listen, host, self.config.advertise)
            self.session.metrics_address = f"{metrics_host}:{metrics_port}"
        if self.config.http_listen:
            await self._open_front_door(host)
        self.session.connect()
        saved = self.desired.load()
        if saved is not None:
            revision, assignments = saved
            _log.info(
                "resuming the last desired state until the control plane answers",
                revision=revision,
                apps=[a.app for a in assignments],
            )
            self._feed(DesiredChanged(assignments))
        self._spawn(self.session.run(), "session")
        self._spawn(self.session.report(), "reporter")
        self._spawn(self._metrics(), "metrics")
        self._spawn(self.session.renew(), "renew-certificate")
        _log.info(
            "agent started",
            dataplane=self.address,
            metrics=f"{self.http.scheme}://{self.session.metrics_address}/metrics" if self.http else "off",
            control=self.config.control,
            labels=self.config.labels,
            instances=self.runtime.allocator,
            compiler=self.tiers.describe(),
        )

    async def _open_front_door(self, default_host: str) -> None:
        tls = None
        if self.config.http_cert is not None and self.config.http_key is not None:
            tls = https_context(self.config.http_cert, self.config.http_key)
        port = await self.front_door.start(self.config.http_listen, tls)
        scheme = "https" if tls else "http"
        host = advertised_host(self.config.http_listen, default_host, self.config.advertise)
        self.session.http_url = f"{scheme}://{host}:{port}"

    async def wait_registered(self, timeout: float) -> None:
        await asyncio.wait_for(self.session.registered.wait(), timeout)

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
        await self.front_door.stop()
        await self.session.close()
        self.router.close()
        await self.prober.close()
        for pool in self.node.remove_all():
            pool.close()
        self.buckets.close()
        self.tiers.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------- what the session hands --

    async def _desired_changed(self, revision: int, assignments: tuple[Assignment, ...]) -> None:
        await asyncio.to_thread(self.desired.save, revision, assignments)
        self._feed(DesiredChanged(assignments))

    def _use_identity(self, identity: Identity) -> None:
        """Present ``identity`` from now on: new data-plane handshakes, new forwarding channels, and
        the control-plane channel the next time the session (re)connects."""
        self.router.set_credentials(identity.creds)
        self.prober.creds = identity.creds
        self.server_identity.replace(identity.creds)
        if self.http is not None:
            self.http.reload(identity.creds)

    def _status(self) -> list[InstanceReport]:
        return [self.notes.annotated(r) for r in self._report]

    def _pool_stats(self) -> dict[Key, PoolStats]:
        return {key: PoolStats(**pool.stats()) for key, pool in self.node.pools().items()}

    async def _serve_metrics(self, request: Request) -> Response:
        return Response.text(self.telemetry.registry.render(), content_type=CONTENT_TYPE)

    async def _metrics(self) -> None:
        """Every metrics_interval: measure RTTs to peers, report them with the calls per link."""
        while True:
            await asyncio.sleep(self.config.metrics_interval)
            rtt = await self.prober.measure(self.session.peers)
            for peer, ms in rtt.items():
                self.telemetry.peer_rtt.set(peer, value=ms / 1000.0)
            await self.session.send_metrics(metrics_report(self.config.name, rtt, self.telemetry, self.notes.traps))

    # ---------------------------------------------------- state machine --

    def _feed(self, event: Event) -> None:
        if isinstance(event, DesiredChanged):
            callers = {(a.app, c.name): frozenset(c.callers) for a in event.assignments for c in a.components}
            self.node.set_callers(callers)
            self.node.logs.keep_only(set(callers))
        for instruction in self.state.handle(event):
            self._execute(instruction)

    def _feed_soon(self, event: Event) -> None:
        asyncio.get_running_loop().call_soon(self._feed, event)

    def _execute(self, ins: Instruction) -> None:
        if isinstance(ins, Fetch):
            self._spawn(self._fetch(ins.digest, ins.source), f"fetch {ins.digest[:19]}")
        elif isinstance(ins, Start):
            self._spawn(self._start(ins.key, ins.spec), f"start {ins.key}")
        elif isinstance(ins, Stop):
            if (served := self.front_door.remove(*ins.key)) is not None:
                served.close()
            pool = self.node.remove(ins.key)
            if ins.key not in self.state.desired:
                self.secrets.forget(ins.key)
            if pool is not None:
                pool.close()
                _log.info("instance stopped", app=ins.key[0], component=ins.key[1])
            self._feed_soon(InstanceStopped(ins.key))
        elif isinstance(ins, Route):
            self.router.set_routes(ins.app, ins.component, ins.endpoints)
        elif isinstance(ins, Prepare):
            self._spawn(self._prepare(ins.spec), f"prepare {ins.spec.artifact[:19]}")
        elif isinstance(ins, Report):
            if (ins.instances, (ins.prefetched, ins.prefetch_failed)) != (self._report, self._prefetched):
                self._report, self._prefetched = ins.instances, (ins.prefetched, ins.prefetch_failed)
                self.session.report_dirty.set()

    async def _fetch(self, digest: str, source: str) -> None:
        self._feed(await fetched(self.artifacts, digest, source, self.session.fetch))

    async def _prepare(self, spec: ComponentAssignment) -> None:
        self._feed(await prepared(self.starter, self.tiers.start_on(spec.artifact), spec))

    async def _start(self, key: Key, spec: ComponentAssignment) -> None:
        app, name = key
        loop = asyncio.get_running_loop()

        def report_soon() -> None:
            loop.call_soon_threadsafe(self.session.report_dirty.set)

        denials, traps, misses = self.notes.for_start(key, report_soon)
        sink = self.node.logs.sink(key)
        hooks = Hooks.of(key, denials, sink, traps, self.telemetry, misses)
        runtime = self.tiers.start_on(spec.artifact)
        try:
            config = await self.secrets.config_for(key, spec)
            pool, served = await asyncio.to_thread(self.starter.build, runtime, key, spec, hooks, config)
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
        self.notes.denials[key] = denials
        self._install(key, spec, pool, served)
        if (better := self.tiers.better_than(runtime)) is not None:
            self._spawn(self._optimize(key, spec, hooks, config, better), f"optimize {app}/{name}")
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

    def _install(self, key: Key, spec: ComponentAssignment, pool: InstancePool, served: HttpComponent | None) -> None:
        """Serve ``key`` with ``pool`` (and ``served`` at the front door); the ones replaced finish their calls."""
        old = self.node.install(key, pool, spec.fused_members)
        if old is not None:
            old.close()
        replaced = self.front_door.install(served) if served is not None else self.front_door.remove(*key)
        if replaced is not None:
            replaced.close()

    async def _optimize(
        self, key: Key, spec: ComponentAssignment, hooks: Hooks, config: dict[str, str], better: Runtime
    ) -> None:
        """Compile ``key``'s artifact with ``better`` in the background and move the component to that code,
        if it still runs ``spec`` then (:mod:`agent.runtime.tiering`)."""

        def current() -> bool:
            inst = self.state.instances.get(key)
            return inst is not None and inst.phase == "Running" and inst.spec == spec and inst.next is None

        try:
            pool, served = await in_daemon_thread(self.starter.build, better, key, spec, hooks, config)
        except Exception as err:  # noqa: BLE001 - the component keeps running on the code it started with
            _log.warning("could not move to optimized code", app=key[0], component=key[1], error=str(err))
            return
        if not current():
            pool.close()
            if served is not None:
                served.close()
            return
        self._install(key, spec, pool, served)
        hooks.sink("agent", f"now running {better.tier}'s code for {spec.artifact[:19]}")
        _log.info("moved to optimized code", app=key[0], component=key[1], compiler=better.tier)


async def fetched(artifacts: ArtifactCache, digest: str, source: str, fetch: Any) -> Event:
    """Obtain an artifact: what the state machine is told of it."""
    try:
        await artifacts.obtain(digest, source, fetch)
    except grpc.aio.AioRpcError as err:
        return ArtifactFailed(digest, f"fetch failed: {err.details()}")
    except NeonGridError as err:
        return ArtifactFailed(digest, err.message)
    return ArtifactFetched(digest)


async def prepared(starter: Starter, runtime: Runtime, spec: ComponentAssignment) -> Event:
    """Compile a prefetched artifact ahead of its start: what the state machine is told of it."""
    try:
        await in_daemon_thread(starter.prepare, runtime, spec)
    except Exception as err:  # noqa: BLE001 - reported; the rollout does not wait for this node
        return PrepareFailed(spec.artifact, getattr(err, "message", None) or f"{type(err).__name__}: {err}")
    return Prepared(spec.artifact)


def advertised_host(listen: str, default: str, advertise: str) -> str:
    """The host others reach a port bound at ``listen`` on: its own host, unless it is a wildcard."""
    host = listen.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):
        return (advertise.rpartition(":")[0] if advertise else "") or default
    return host


def _start_pools(loop: asyncio.AbstractEventLoop, front_door: FrontDoor) -> None:
    """Every pool started whole (neon.threads): the agent's thread count is fixed from here on."""
    loop.set_default_executor(started_pool(default_workers(), "asyncio"))
    fill(front_door.executor)
