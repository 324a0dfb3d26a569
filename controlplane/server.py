"""The control-plane process: gRPC servers, the reconcile loop, and etcd."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from dataclasses import replace
from typing import Any, AsyncIterator

import grpc

from controlplane.admission import Admission
from controlplane.artifacts import BlobStore
from controlplane.assignment_hub import AssignmentHub
from controlplane.composer import Composer
from controlplane.config import ControlPlaneConfig
from controlplane.events import new_event
from controlplane.fusion import Composition
from controlplane.leader import Election
from controlplane.placement import Placer
from controlplane.reconciler import NOT_COMPOSED, AppRecord, World, next_grace_expiry, plan
from controlplane.replication import BlobReplicator
from controlplane.security import Security
from controlplane.status import app_status, served
from controlplane.store import APPS, MEMBERS, NODES, Store
from controlplane.web import Web
from neon import log, pki, tls
from neon._proto import control_pb2, control_pb2_grpc, dataplane_pb2, dataplane_pb2_grpc
from neon.errors import NotFound, NotRunning, from_rpc_error
from neon.http import HttpServer
from neon.manifest import ComponentSpec
from neon.model import Event, InstanceReport, NodeInfo
from neon.policy import UNREACHABLE
from neon.rpc import CHANNEL_OPTIONS, add_join_port, create_server, mark_serving

_log = log.get("neon.controlplane")
# The nodes holding a lease, and the Unreachable ones with when they were found so (0: not yet).
NodeSets = tuple[dict[str, NodeInfo], dict[str, tuple[NodeInfo, float]]]


class ControlPlane:
    """Owns the store, the blob store and the reconcile loop."""

    def __init__(self, config: ControlPlaneConfig) -> None:
        self.config = config
        self.security = Security.load(config)
        self.store = Store(config.etcd)
        self.admission = Admission(self.store, self.security.ca, config.node_cert_ttl)
        self.blobs = BlobStore(config.data_dir / "blobs")
        self.placer = Placer(weights=config.placement_weights)
        self.replicator = BlobReplicator(self.store, self.blobs, config.identity, self.security.creds)
        self.composer = Composer(self.store, self.blobs, fetch=self.replicator.ensure, signer=self.security.signing_key)
        self.election: Election | None = None
        self._leader_tasks: list[asyncio.Task[Any]] = []
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.join_port = 0
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._grace_timer: asyncio.TimerHandle | None = None
        self._nodes: dict[str, NodeInfo] = {}
        self._sorted_nodes: list[NodeInfo] = []
        self._endpoints_of: dict[str, set[str]] = {}  # node -> nodes its assignments forward to
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._rr = itertools.count()
        self._last_reports: dict[str, dict[tuple[str, str], InstanceReport]] = {}
        self.web = Web(self)
        self.assignments = AssignmentHub(self.store)
        self.store.on_record = lambda event: self.web.events.inc(event.kind)
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
        from controlplane.agent_service import AgentServicer
        from controlplane.join_service import JoinServicer
        from controlplane.service import ControlServicer

        await self.store.connect()

        def register(server: grpc.aio.Server) -> None:
            control_pb2_grpc.add_ControlServicer_to_server(ControlServicer(self), server)
            control_pb2_grpc.add_AgentControlServicer_to_server(AgentServicer(self), server)
            control_pb2_grpc.add_JoinServicer_to_server(JoinServicer(self), server)

        self.server, self.port = create_server(
            self.config.listen,
            register,
            ["neon.v1.Control", "neon.v1.AgentControl", "neon.v1.Join"],
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
        self._last_reports = {}
        self._leader_tasks = [
            asyncio.create_task(self._reconcile_loop(), name="reconcile"),
            asyncio.create_task(self._watch(APPS), name="watch-apps"),
            asyncio.create_task(self._watch(NODES), name="watch-nodes"),
            asyncio.create_task(self._watch(MEMBERS), name="watch-members"),
        ]
        self.mark_dirty()
        await self.store.record(new_event("LeaderElected", f"control plane {self.identity} ({self.address}) leads"))

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
        for channel in self._channels.values():
            await channel.close(None)
        await self.store.close()

    # ------------------------------------------------------- reconcile --

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def _watch(self, prefix: bytes) -> None:
        while True:
            try:
                watch = await self.store.watch_prefix(prefix)
                async for _ in watch:
                    self.mark_dirty()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - etcd hiccups: log, back off, watch again
                _log.warning("watch failed; retrying", prefix=prefix.decode(), error=str(err))
                self.mark_dirty()
                await asyncio.sleep(1.0)

    async def _reconcile_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self.config.resync_interval)
            self._dirty.clear()
            await asyncio.sleep(0.02)  # coalesce bursts of changes
            started = time.perf_counter()
            try:
                await self.reconcile_once()
                self.web.reconciles.observe(time.perf_counter() - started)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - keep reconciling; the next pass retries
                _log.exception("reconcile failed", error=str(err))
                await asyncio.sleep(0.5)
                self.mark_dirty()

    async def reconcile_once(self) -> None:
        """Reflect etcd into the model, plan, and write each changed application back."""
        world = await self._mark_unreachable(await self.store.read_world())
        self._wake_for_grace(next_grace_expiry(world))
        if world.nodes != self._nodes:
            self._nodes = dict(world.nodes)
            self._sorted_nodes = [n for _, n in sorted(self._nodes.items())]
        by_address = {n.dataplane_address: n.name for n in world.nodes.values()}
        endpoints: dict[str, set[str]] = {}
        for slices in world.assigned.values():
            for node, doc in slices.items():
                for comp in doc.get("components", []):
                    for binding in comp.get("imports", []):
                        endpoints.setdefault(node, set()).update(
                            by_address[a] for a in binding.get("endpoints", []) if a in by_address
                        )
        self._endpoints_of = endpoints
        first, _ = plan(world, self.placer)
        compositions = {}
        for draft in first:  # fuse what placement co-locates (cached by inputs), then plan with the results
            spec = world.apps[draft.app].spec
            compositions[draft.app] = {
                g.key: await self.composer.compose(spec, g) for g in draft.groups if g.reason == NOT_COMPOSED
            }
        plans, orphans = plan(world, self.placer, compositions)
        for app_plan in plans:
            if not app_plan.changed:
                continue
            record = world.apps[app_plan.app]
            if not await self.store.write_plan(app_plan, record, world):
                self.mark_dirty()  # the app changed under us; the next pass sees it
                continue
            was_fused = {(f["node"], tuple(f["members"])) for f in world.fusion.get(app_plan.app, []) if f["artifact"]}
            for group in app_plan.groups:
                if not group.reason and group.key not in was_fused:
                    note = compositions.get(app_plan.app, {}).get(group.key, Composition()).note
                    msg = f"{' + '.join(group.members)} fused on {group.node} (root {group.root})"
                    msg += f"; {note}" if note else ""
                    await self.store.record(new_event("Fused", msg, app=app_plan.app, node=group.node))
                elif group.reason and group.root:
                    msg = f"{' + '.join(group.members)} not fused on {group.node}: {group.reason}"
                    await self.store.record(new_event("NotFused", msg, app=app_plan.app, node=group.node))
            for name, decision in app_plan.placement.components.items():
                before = world.placements.get(app_plan.app, {}).get(name, ())
                if tuple(decision.nodes) != tuple(before):
                    where = ", ".join(decision.nodes) or "nowhere"
                    why = f" ({decision.reason})" if decision.reason else ""
                    left = sorted(set(before) - set(decision.nodes))
                    for node in left:
                        if (gone := world.unreachable_for(node)) is not None:
                            why += f"; left {node}, unreachable for {gone:.0f}s"
                    if not decision.nodes:
                        kind, msg = "Unschedulable", f"{name} placed on nowhere{why}"
                    elif left:
                        kind, msg = "Rescheduled", f"{name} moved from {', '.join(before)} to {where}{why}"
                    else:
                        kind, msg = "Placed", f"{name} placed on {where}{why}"
                    await self.store.record(new_event(kind, msg, app=app_plan.app, component=name))
        for app, nodes in orphans:
            await self.store.remove_orphan(app, nodes)

    async def _mark_unreachable(self, world: World) -> World:
        """Record when each node that lost its lease was found so (durably, so a new leader keeps the clock)."""
        marked = dict(world.unreachable_since)
        for name, since in sorted(world.unreachable_since.items()):
            if since:
                continue
            msg = f"node {name} lost its lease: Unreachable; what does not tolerate {UNREACHABLE} moves now"
            if await self.store.mark_unreachable(name, world.now, new_event("NodeUnreachable", msg, node=name)):
                marked[name] = world.now
        return replace(world, unreachable_since=marked)

    def _wake_for_grace(self, seconds: float | None) -> None:
        """Reconcile again when the first component kept on an unreachable node outstays its toleration."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._grace_timer = (
            None if seconds is None else asyncio.get_running_loop().call_later(seconds + 0.05, self.mark_dirty)
        )

    def peers_of(self, node: str, limit: int = 64) -> list[NodeInfo]:
        """The nodes ``node`` should measure round trips to: all of them in a small cluster,
        else those its split links forward to."""
        if len(self._nodes) <= limit + 1:  # every other node (the list is rebuilt only when nodes change)
            return [n for n in self._sorted_nodes if n.name != node]
        wanted = sorted(self._endpoints_of.get(node, set()) - {node})
        return [self._nodes[name] for name in wanted if name in self._nodes][:limit]

    # ---------------------------------------------------------- status --

    async def note_reports(self, node: NodeInfo, reports: list[InstanceReport]) -> None:
        """Store an agent's report and turn its state changes into events."""
        await self.store.put_status(node, reports)
        before = self._last_reports.get(node.name, {})
        now = {(r.app, r.component): r for r in reports}
        for key, rep in sorted(now.items()):
            old = before.get(key)
            if old is None or (old.state, old.artifact) != (rep.state, rep.artifact) or _failed_again(old, rep):
                msg = f"{rep.component} is {rep.state} on {node.name}" + (f": {rep.reason}" if rep.reason else "")
                await self.store.record(
                    new_event(f"Instance{rep.state}", msg, app=rep.app, component=rep.component, node=node.name)
                )
            if rep.traps > (old.traps if old is not None else 0):
                more = rep.traps - (old.traps if old is not None else 0)
                count = f"{more} calls trapped, the last" if more > 1 else "a call trapped"
                await self.store.record(
                    new_event(
                        "Trapped",
                        f"{count} on {node.name} (incident {rep.last_trap_id}): {rep.last_trap}",
                        app=rep.app,
                        component=rep.component,
                        node=node.name,
                        incident=rep.last_trap_id,
                    )
                )
            if rep.denials > (old.denials if old is not None else 0):
                await self.store.record(
                    new_event(
                        "CapabilityDenied",
                        f"{rep.last_denial} (on {node.name}; {rep.denials} so far)",
                        app=rep.app,
                        component=rep.component,
                        node=node.name,
                    )
                )
        for app, comp in sorted(set(before) - set(now)):
            await self.store.record(
                new_event("InstanceStopped", f"{comp} stopped on {node.name}", app=app, component=comp, node=node.name)
            )
        self._last_reports[node.name] = now

    async def record(self, event: Event) -> None:
        await self.store.record(event)

    async def nodes(self) -> NodeSets:
        """The nodes holding a lease, and the Unreachable ones (with when they were found so; 0: not yet)."""
        live = {n.name: n for n in await self.store.list_nodes()}
        members = await self.store.members()
        return live, {name: member for name, member in members.items() if name not in live}

    async def statuses(self, name: str | None = None, nodes: NodeSets | None = None) -> list[dict[str, Any]]:
        """The status of one application (NotFound if it does not exist) or, without a name, of every one;
        ``nodes`` is :meth:`nodes` when the caller has just read it."""
        if name is not None:
            record = await self.store.get_app(name)
            if record is None:
                raise NotFound(f"application {name!r} does not exist", kind="application", name=name)
            records = [record]
        else:
            records = sorted(await self.store.list_apps(), key=lambda r: r.spec.name)
        live, unreachable = nodes or await self.nodes()
        reports = await self.store.all_status()
        leader = await self.store.leader() is not None
        now = time.time()
        gone = {n: since or now for n, (_, since) in unreachable.items()}
        out = []
        for record in records:
            placement = await self.store.get_placement(record.spec.name)
            out.append(app_status(record, placement, reports, live, gone, leader))
        return out

    # ---------------------------------------------------------- invoke --

    async def _component(self, app: str, component: str) -> tuple[AppRecord, ComponentSpec]:
        record = await self.store.get_app(app)
        if record is None:
            raise NotFound(f"application {app!r} does not exist", kind="application", name=app)
        try:
            return record, record.spec.component(component)
        except KeyError:
            names = ", ".join(c.name for c in record.spec.components)
            raise NotFound(
                f"application {app!r} has no component {component!r} (it has: {names})",
                kind="component",
                name=component,
            ) from None

    async def telemetry(self) -> list[control_pb2.MetricsReport]:
        """The last metrics report of every live node."""
        live = {n.name for n in await self.store.list_nodes()}
        reports = await self.store.all_telemetry()
        return [control_pb2.MetricsReport.FromString(raw) for node, raw in sorted(reports.items()) if node in live]

    async def logs(self, request: dataplane_pb2.LogsRequest) -> AsyncIterator[dataplane_pb2.LogLine]:
        """A component's lines from every live node serving it (its fused root's where it is fused),
        merged by time; while following, as they come."""
        record, comp = await self._component(request.app, request.component)
        serving = served(record.spec, await self.store.get_placement(request.app))
        nodes = {n.name: n for n in await self.store.list_nodes()}
        where = sorted((n, inst) for (n, c), (inst, _) in serving.items() if c == comp.name and n in nodes)
        if not where:
            raise NotRunning(
                f"{request.app}/{comp.name} is not placed on any live node; see `neon get app {request.app}`",
                app=request.app,
                component=comp.name,
            )
        calls = [
            (
                node,
                dataplane_pb2_grpc.DataPlaneStub(self._channel(nodes[node].dataplane_address)).Logs(
                    dataplane_pb2.LogsRequest(
                        app=request.app, component=inst, tail=request.tail, follow=request.follow
                    ),
                    timeout=None if request.follow else 10.0,
                ),
            )
            for node, inst in where
        ]
        if not request.follow:
            lines: list[dataplane_pb2.LogLine] = []
            for node, call in calls:
                try:
                    lines.extend([line async for line in call])
                except grpc.aio.AioRpcError as err:
                    lines.append(_note(node, comp.name, f"no lines from node {node}: {err.details()}"))
            lines.sort(key=lambda line: line.time)
            for line in lines[-request.tail :] if request.tail else lines:
                yield line
            return
        queue: asyncio.Queue[dataplane_pb2.LogLine] = asyncio.Queue(1000)

        async def pump(node: str, call: Any) -> None:
            try:
                async for line in call:
                    await queue.put(line)
                await queue.put(_note(node, comp.name, f"node {node} closed the stream"))
            except grpc.aio.AioRpcError as err:
                await queue.put(_note(node, comp.name, f"stream from node {node} ended: {err.details()}"))

        tasks = [asyncio.create_task(pump(node, call)) for node, call in calls]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            for _, call in calls:
                call.cancel()

    async def invoke(self, request: dataplane_pb2.InvokeRequest, timeout: float | None) -> dataplane_pb2.InvokeResponse:
        """Relay a user's call to an agent running the component."""
        record, comp = await self._component(request.app, request.component)
        nodes = {n.name: n for n in await self.store.list_nodes()}
        statuses = await self.store.all_status()
        serving = served(record.spec, await self.store.get_placement(request.app))
        # Nodes placed to serve the component whose instance runs; during a swap the old
        # artifact keeps serving until the new one is ready, so it counts when nothing newer does.
        up = {
            node: r.artifact == serving[(node, comp.name)][1]
            for node, reps in statuses.items()
            if node in nodes and serving.get((node, comp.name), ("", ""))[0] == comp.name
            for r in reps
            if r.app == request.app and r.component == comp.name and r.state == "Running"
        }
        running = sorted(n for n, current in up.items() if current) or sorted(up)
        if not running:
            inside = sorted({(n, inst) for (n, c), (inst, _) in serving.items() if c == comp.name and inst != c})
            if inside:
                where = ", ".join(f"{inst} on {n}" for n, inst in inside)
                raise NotRunning(
                    f"{request.app}/{comp.name} runs only fused into {where}; its exports are not served on their "
                    f"own there (call the root, or set colocate: never on its links)",
                    app=request.app,
                    component=comp.name,
                )
            raise NotRunning(
                f"{request.app}/{comp.name} has no running replica yet; see `neon get app {request.app}`",
                app=request.app,
                component=comp.name,
            )
        node = nodes[running[next(self._rr) % len(running)]]
        stub = dataplane_pb2_grpc.DataPlaneStub(self._channel(node.dataplane_address))
        try:
            return await stub.Invoke(request, timeout=timeout or self.config.invoke_timeout)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = tls.aio_channel(address, self.security.creds, pki.AGENT_NAME, CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel


def _failed_again(old: InstanceReport, new: InstanceReport) -> bool:
    """A Failed instance failing for another reason (a fixed manifest, a new cause) is news too."""
    return new.state == "Failed" and old.reason != new.reason


def _note(node: str, component: str, text: str) -> dataplane_pb2.LogLine:
    return dataplane_pb2.LogLine(time=time.time(), stream="neon", text=text, node=node, component=component)
