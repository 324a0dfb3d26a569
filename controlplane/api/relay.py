"""What the control plane relays to agents for a user: a component's logs from every node serving it,
and invokes, to a node running it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from typing import Any, AsyncIterator

import grpc

from controlplane.api.queries import find_component
from controlplane.reconcile.status import served
from controlplane.state.mirror import Mirror, View
from controlplane.state.store import Store
from neon._proto import calls_pb2, dataplane_pb2_grpc
from neon.errors import FailedPrecondition, NotFound, NotRunning, from_rpc_error
from neon.model import NodeInfo
from neon.rpc.servers import CHANNEL_OPTIONS
from neon.security import pki, tls
from neon.security.tls import Credentials


class Relay:
    """Relays over mutual TLS, one channel per agent kept open."""

    def __init__(self, store: Store, mirror: Mirror, creds: Credentials, invoke_timeout: float) -> None:
        self.store = store
        self.mirror = mirror
        self.creds = creds
        self.invoke_timeout = invoke_timeout
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, dataplane_pb2_grpc.DataPlaneAsyncStub] = {}  # by address, on those channels
        self._rr = itertools.count()
        self._closing: set[asyncio.Task[None]] = set()  # channels closing after their node went

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)

    async def logs(self, request: calls_pb2.LogsRequest) -> AsyncIterator[calls_pb2.LogLine]:
        """A component's lines from every live node serving it (its fused root's where it is fused),
        merged by time; while following, as they come."""
        view = await self.mirror.view()
        record, comp = find_component(view, request.app, request.component)
        serving = served(record.spec, view.placements.get(request.app))
        nodes = view.nodes
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
                self._stub(nodes[node].dataplane_address, nodes).Logs(
                    calls_pb2.LogsRequest(app=request.app, component=inst, tail=request.tail, follow=request.follow),
                    timeout=None if request.follow else 10.0,
                ),
            )
            for node, inst in where
        ]
        if not request.follow:
            lines: list[calls_pb2.LogLine] = []
            for node, call in calls:
                try:
                    lines.extend([line async for line in call])
                except grpc.aio.AioRpcError as err:
                    lines.append(_note(node, comp.name, f"no lines from node {node}: {err.details()}"))
            lines.sort(key=lambda line: line.time)
            for line in lines[-request.tail :] if request.tail else lines:
                yield line
            return
        queue: asyncio.Queue[calls_pb2.LogLine] = asyncio.Queue(1000)

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

    async def invoke(self, request: calls_pb2.InvokeRequest, timeout: float | None) -> calls_pb2.InvokeResponse:
        """Relay a user's call to an agent running the component: routed on the read mirror as it is (the
        watch is milliseconds behind), and on a fresh read before answering that nothing runs it."""
        view = await self.mirror.view(fresh=False)
        try:
            node = await self._pick(request, view)
        except (NotFound, NotRunning, FailedPrecondition):
            view = await self.mirror.view()
            node = await self._pick(request, view)
        try:
            stub = self._stub(node.dataplane_address, view.nodes)
            return await stub.Invoke(request, timeout=timeout or self.invoke_timeout)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    async def _pick(self, request: calls_pb2.InvokeRequest, view: View) -> NodeInfo:
        """The node to relay a call to (round robin over those running the component)."""
        record, comp = find_component(view, request.app, request.component)
        nodes, statuses = view.nodes, view.status
        serving = served(record.spec, view.placements.get(request.app))
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
            running = await self._fused_exporting(request.app, comp.artifact, inside, serving, statuses)
            if inside and not running:
                # Not a transient state a retry outlives: the placement fused it (FAILED_PRECONDITION, not UNAVAILABLE).
                where = ", ".join(f"{inst} on {n}" for n, inst in inside)
                raise FailedPrecondition(
                    f"{request.app}/{comp.name} runs only fused into {where}; its exports are not served on their "
                    f"own there (call the root, or set colocate: never on its links)",
                    app=request.app,
                    component=comp.name,
                    root=inside[0][1],
                )
            if not running:
                raise NotRunning(
                    f"{request.app}/{comp.name} has no running replica yet; see `neon get app {request.app}`",
                    app=request.app,
                    component=comp.name,
                )
        return nodes[running[next(self._rr) % len(running)]]

    async def _fused_exporting(
        self,
        app: str,
        artifact: str,
        inside: list[tuple[str, str]],
        serving: dict[tuple[str, str], tuple[str, str]],
        statuses: dict[str, Any],
    ) -> list[str]:
        """Nodes where a component runs fused into a group that also exports one of its interfaces (an HTTP
        root exports what it calls inside the group), with the group's root running: calls to the component
        land there."""
        own = await self.store.artifacts.get_artifact(artifact)
        # WIT interfaces only (a toolchain's own exports, like componentize-py's `exports`, are everyone's)
        exported = {name for name in (own or {}).get("interfaces", {}).get("exports", {}) if ":" in name}
        found = []
        for node, root in inside:
            fused = await self.store.artifacts.get_artifact(serving[(node, root)][1])
            if not exported & set((fused or {}).get("interfaces", {}).get("exports", {})):
                continue
            if any(r.app == app and r.component == root and r.state == "Running" for r in statuses.get(node, ())):
                found.append(node)
        return found

    def _stub(self, address: str, nodes: Mapping[str, NodeInfo]) -> dataplane_pb2_grpc.DataPlaneAsyncStub:
        """The agent's data plane, on a channel kept open. Opening one closes those to addresses no live node has
        any more (an agent restarted on another port, a node gone): each would otherwise be kept for good."""
        stub = self._stubs.get(address)
        if stub is None:
            live = {n.dataplane_address for n in nodes.values()}
            for gone in [a for a in self._channels if a not in live]:
                self._stubs.pop(gone, None)
                # Calls still running on it get the relay's whole timeout to finish.
                closing = self._channels.pop(gone).close(self.invoke_timeout)
                self._closing.add(task := asyncio.get_running_loop().create_task(closing))
                task.add_done_callback(self._closing.discard)
            channel = tls.aio_channel(address, self.creds, pki.AGENT_NAME, CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = dataplane_pb2_grpc.DataPlaneStub(channel)
        return stub


def _note(node: str, component: str, text: str) -> calls_pb2.LogLine:
    return calls_pb2.LogLine(time=time.time(), stream="neon", text=text, node=node, component=component)
