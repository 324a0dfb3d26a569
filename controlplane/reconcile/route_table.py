"""The cluster's HTTP route table: every route, its component and the nodes that run it, with a version
that changes exactly when the table does. Agents get it with their heartbeats (only when their version is
old), so a front door can hand a request it cannot serve to a node that can. Pure."""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from controlplane.state.world import World


class RouteEntry(NamedTuple):
    route: str
    app: str
    component: str
    nodes: tuple[str, ...]
    endpoints: tuple[str, ...]  # the nodes' data-plane addresses, in the same order


def route_table(world: World) -> tuple[str, tuple[RouteEntry, ...]]:
    """(version, entries), from the applications' routes and where their components are placed (a node
    marked Unreachable serves nothing)."""
    entries = []
    for app, record in sorted(world.apps.items()):
        placed = world.placements.get(app, {})
        for comp in record.spec.components:
            for route in comp.http.routes:
                nodes = tuple(
                    n for n in placed.get(comp.name, ()) if n in world.nodes and n not in world.unreachable_since
                )
                endpoints = tuple(world.nodes[n].dataplane_address for n in nodes)
                entries.append(RouteEntry(route, app, comp.name, nodes, endpoints))
    version = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
    return version, tuple(entries)
