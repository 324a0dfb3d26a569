"""What a heartbeat answers besides the lease's TTL: the peers the agent measures round trips to, and the
HTTP route table (sent only when the agent's version is old).

Every replica answers heartbeats, the followers too (an agent beats to whichever replica its channel
reached), so the answers are derived from the read mirror (:mod:`controlplane.state.mirror`), which every
replica keeps, and made again only when one of its tables changed. While the mirror's watch is not open, the
leader's last reconcile pass answers (a follower then has none, as before the mirror).
"""

from __future__ import annotations

from controlplane.reconcile.loop import ReconcileLoop
from controlplane.reconcile.route_table import RouteEntry, route_table_of
from controlplane.state.mirror import Mirror, View
from controlplane.state.world import placed_nodes
from neon.model import NodeInfo

PEERS_LIMIT = 64  # in a larger cluster a node measures only the nodes its links forward to


class Beats:
    def __init__(self, mirror: Mirror, loop: ReconcileLoop) -> None:
        self.mirror = mirror
        self.loop = loop
        self._made_at = -1  # the mirror's change count the answers were made at
        self.routes_version = ""
        self.routes: tuple[RouteEntry, ...] = ()
        self._sorted: list[NodeInfo] = []
        self._nodes: dict[str, NodeInfo] = {}
        self._endpoints: dict[str, set[str]] = {}  # node -> the nodes its links' exporters are placed on

    async def answers(self, node: str) -> tuple[list[NodeInfo], str, tuple[RouteEntry, ...]]:
        """(peers of ``node``, route-table version, route table)."""
        if not self.mirror.open:
            return self.loop.peers_of(node, PEERS_LIMIT), self.loop.routes_version, self.loop.routes
        if self.mirror.changes != self._made_at:
            self._made_at = self.mirror.changes
            self._make(self.mirror.now())
        return self._peers(node), self.routes_version, self.routes

    def _make(self, view: View) -> None:
        """From the copy itself, without awaiting; nothing here walks the nodes but a small cluster's (each
        node's registration and report changes the copy: with 10,000 agents, a walk per change was the control
        plane's largest cost)."""
        placed = {app: placed_nodes(placement) for app, placement in view.placements.items()}
        # A node holding its lease is not unreachable: the nodes table alone says where a route is served.
        self.routes_version, self.routes = route_table_of(view.apps, placed, view.nodes, ())
        self._nodes = view.nodes  # the live table: _peers reads it without awaiting too
        small = len(view.nodes) <= PEERS_LIMIT + 1
        self._sorted = [info for _, info in sorted(view.nodes.items())] if small else []
        endpoints: dict[str, set[str]] = {}
        for app, record in view.apps.items():
            where = placed.get(app, {})
            for link in record.spec.links:
                for importer in where.get(link.importer, ()):
                    endpoints.setdefault(importer, set()).update(where.get(link.exporter, ()))
        self._endpoints = endpoints

    def _peers(self, node: str) -> list[NodeInfo]:
        """Every other node in a small cluster, else the nodes its links forward to (at most PEERS_LIMIT)."""
        if len(self._nodes) <= PEERS_LIMIT + 1:
            return [n for n in self._sorted if n.name != node]
        wanted = sorted(self._endpoints.get(node, set()) - {node})
        return [self._nodes[name] for name in wanted if name in self._nodes][:PEERS_LIMIT]
