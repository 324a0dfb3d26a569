"""The cluster's HTTP route table: every route, its component and the nodes that run it, with a version
that changes exactly when the table does. Agents get it with their heartbeats (only when their version is
old), so a front door can hand a request it cannot serve to a node that can. Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Mapping, Sequence
from typing import NamedTuple

from controlplane.state.world import AppRecord, World
from neon.model import NodeInfo


class RouteEntry(NamedTuple):
    route: str
    app: str
    component: str
    nodes: tuple[str, ...]
    endpoints: tuple[str, ...]  # the nodes' data-plane addresses, in the same order


def route_table(world: World) -> tuple[str, tuple[RouteEntry, ...]]:
    """(version, entries), from the applications' routes and where their components are placed (a node
    marked Unreachable serves nothing)."""
    return route_table_of(world.apps, world.placements, world.nodes, world.unreachable_since)


def route_table_of(
    apps: Mapping[str, AppRecord],
    placements: Mapping[str, Mapping[str, Sequence[str]]],
    nodes: Mapping[str, NodeInfo],
    unreachable: Container[str],
) -> tuple[str, tuple[RouteEntry, ...]]:
    """:func:`route_table` from its parts: placements are app -> component -> nodes."""
    entries = []
    for app, record in sorted(apps.items()):
        placed = placements.get(app, {})
        for comp in record.spec.components:
            for route in comp.http.routes:
                on = tuple(n for n in placed.get(comp.name, ()) if n in nodes and n not in unreachable)
                entries.append(RouteEntry(route, app, comp.name, on, tuple(nodes[n].dataplane_address for n in on)))
    version = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
    return version, tuple(entries)
