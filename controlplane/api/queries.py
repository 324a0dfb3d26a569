"""What several API surfaces read the same way: nodes (live and Unreachable), application statuses,
the agents' last metrics reports."""

from __future__ import annotations

import time
from typing import Any

from controlplane.reconcile.status import app_status
from controlplane.state.store import Store
from neon._proto import control_pb2
from neon.errors import NotFound
from neon.model import NodeInfo

# The nodes holding a lease, and the Unreachable ones with when they were found so (0: not yet).
NodeSets = tuple[dict[str, NodeInfo], dict[str, tuple[NodeInfo, float]]]


class Queries:
    """Reads of the store, shaped for the API."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        reports = await self.store.reports.all_status()
        leader = await self.store.replicas.leader() is not None
        now = time.time()
        gone = {n: since or now for n, (_, since) in unreachable.items()}
        out = []
        for record in records:
            placement = await self.store.get_placement(record.spec.name)
            out.append(app_status(record, placement, reports, live, gone, leader))
        return out

    async def telemetry(self) -> list[control_pb2.MetricsReport]:
        """The last metrics report of every live node."""
        live = {n.name for n in await self.store.list_nodes()}
        reports = await self.store.reports.all_telemetry()
        return [control_pb2.MetricsReport.FromString(raw) for node, raw in sorted(reports.items()) if node in live]
