"""What several API surfaces read the same way: nodes (live and Unreachable), application statuses,
the agents' last metrics reports; from the read mirror (:mod:`controlplane.state.mirror`)."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from controlplane.reconcile.status import app_status, with_rollout
from controlplane.state.mirror import Mirror, View
from controlplane.state.store import Store
from controlplane.state.world import AppRecord
from neon._proto import control_pb2
from neon.errors import NotFound
from neon.manifest import ComponentSpec
from neon.model import NodeInfo
from neon.model_proto import node_to_proto

T = TypeVar("T")
# The nodes holding a lease, and the Unreachable ones with when they were found so (0: not yet).
NodeSets = tuple[dict[str, NodeInfo], dict[str, tuple[NodeInfo, float]]]


def find_component(view: View, app: str, component: str) -> tuple[AppRecord, ComponentSpec]:
    """An application's record and one of its components; NotFound naming what exists otherwise."""
    record = view.apps.get(app)
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


class Queries:
    """Reads of the store, shaped for the API."""

    def __init__(self, store: Store, mirror: Mirror) -> None:
        self.store = store
        self.mirror = mirror
        self._answers: dict[Any, Any] = {}  # what was made from the view of one stamp
        self._stamp = -1

    def memo(self, key: Any, view: View, make: Callable[[], T]) -> T:
        """``make()``, made once per state of the mirror: answers to reads (messages, not to be changed) kept
        until a table changes. Not kept for a view read from etcd, nor while a node's loss has no time yet
        (a status then says "since now")."""
        if view.stamp < 0 or any(since == 0 for _, since in view.unreachable().values()):
            return make()
        if view.stamp != self._stamp:
            self._answers.clear()
            self._stamp = view.stamp
        if key not in self._answers:
            self._answers[key] = make()
        return self._answers[key]  # type: ignore[no-any-return]

    async def view(self, fresh: bool = True) -> View:
        """What the API reads (``fresh``: every write finished before the call is in it)."""
        return await self.mirror.view(fresh)

    async def nodes(self, view: View | None = None) -> NodeSets:
        """The nodes holding a lease, and the Unreachable ones (with when they were found so; 0: not yet)."""
        view = view or await self.view()
        return view.nodes, view.unreachable()

    async def statuses(self, name: str | None = None, view: View | None = None) -> list[dict[str, Any]]:
        """The status of one application (NotFound if it does not exist) or, without a name, of every one;
        ``view`` is what the caller has just read."""
        return status_docs(view or await self.view(), name)

    def node_list(self, view: View) -> control_pb2.ListNodesResponse:
        """Every registered node: Ready with its instance count, or Unreachable since when."""
        live, unreachable = view.nodes, view.unreachable()
        out = []
        for name in sorted(live.keys() | unreachable.keys()):
            if name in live:
                out.append(node_to_proto(live[name], "Ready", len(view.status.get(name, []))))
            else:
                info, since = unreachable[name]
                out.append(node_to_proto(info, "Unreachable", 0, unreachable_since=since or time.time()))
        return control_pb2.ListNodesResponse(nodes=out)

    async def telemetry(self) -> list[control_pb2.MetricsReport]:
        """The last metrics report of every live node."""
        live = (await self.view()).nodes
        reports = await self.store.reports.all_telemetry()
        return [control_pb2.MetricsReport.FromString(raw) for node, raw in sorted(reports.items()) if node in live]


def status_docs(view: View, name: str | None = None) -> list[dict[str, Any]]:
    """:meth:`Queries.statuses` of a view in hand."""
    if name is not None:
        record = view.apps.get(name)
        if record is None:
            raise NotFound(f"application {name!r} does not exist", kind="application", name=name)
        records = [record]
    else:
        records = sorted(view.apps.values(), key=lambda r: r.spec.name)
    now = time.time()
    gone = {n: since or now for n, (_, since) in view.unreachable().items()}
    leader = view.leader is not None
    return [
        with_rollout(
            app_status(record, view.placements.get(record.spec.name), view.status, view.nodes, gone, leader),
            view.rollouts.get(record.spec.name),
            view.prefetch,
        )
        for record in records
    ]
