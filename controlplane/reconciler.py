"""The reconciler's decisions, with no I/O.

Step one (the shell's job) reflects etcd into a :class:`World`; step two,
:func:`plan`, computes for every application its placement and every node's
slice of the graph. The shell writes each application's plan back in one etcd
transaction guarded by the mod revisions it read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from controlplane.placement import NodeView, Placement, Placer
from neon.manifest import AppSpec
from neon.model import Assignment, ComponentAssignment, ImportBinding, NodeInfo


@dataclass(frozen=True)
class AppRecord:
    """An application as stored: the spec plus bookkeeping."""

    spec: AppSpec
    generation: int
    created_at: float
    updated_at: float
    revision: int = 0  # etcd mod_revision of the app key


@dataclass(frozen=True)
class World:
    """Everything the reconciler needs, read at one point in time."""

    apps: Mapping[str, AppRecord]
    nodes: Mapping[str, NodeInfo]
    placements: Mapping[str, Mapping[str, tuple[str, ...]]]  # app -> component -> nodes
    # app -> node -> the assignment stored for it now (as its JSON document)
    assigned: Mapping[str, Mapping[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class AppPlan:
    """What to write for one application."""

    app: str
    placement: Placement
    assignments: Mapping[str, Assignment]  # node -> its whole slice
    writes: Mapping[str, Assignment]  # the slices that differ from what is stored
    remove_from: frozenset[str]  # nodes whose assignment for this app must go
    placement_changed: bool

    @property
    def changed(self) -> bool:
        return self.placement_changed or bool(self.writes) or bool(self.remove_from)


def slice_graph(
    spec: AppSpec, generation: int, placement: Placement, nodes: Mapping[str, NodeInfo]
) -> dict[str, Assignment]:
    """Cut the application's graph into per-node assignments.

    An import is ``local`` when the exporter has a replica on the importer's
    node; otherwise it carries the data-plane endpoints of the exporter's nodes.
    """
    per_node: dict[str, list[ComponentAssignment]] = {}
    for comp in spec.components:
        for node in placement.nodes_of(comp.name):
            bindings = []
            for link in spec.links_from(comp.name):
                targets = placement.nodes_of(link.exporter)
                local = node in targets
                endpoints = tuple(nodes[t].dataplane_address for t in targets if t in nodes and t != node)
                bindings.append(
                    ImportBinding(
                        import_name=link.import_name, component=link.exporter, local=local, endpoints=endpoints
                    )
                )
            per_node.setdefault(node, []).append(
                ComponentAssignment(
                    name=comp.name,
                    artifact=comp.artifact,
                    imports=tuple(bindings),
                    runtime=comp.runtime,
                    grants=comp.grants,
                )
            )
    return {
        node: Assignment(app=spec.name, generation=generation, components=tuple(comps))
        for node, comps in sorted(per_node.items())
    }


def plan(world: World, placer: Placer | None = None) -> tuple[list[AppPlan], list[tuple[str, frozenset[str]]]]:
    """Compute the plans for every application, and the orphans to delete.

    Returns:
        ``(plans, orphans)``: one plan per stored application (in name order),
        and for applications that no longer exist, the nodes whose
        assignments must be removed.
    """
    placer = placer or Placer()
    instances: dict[str, int] = {name: 0 for name in world.nodes}
    # Count what other applications already place, so spread sees real load.
    for app_name, comps in world.placements.items():
        if app_name in world.apps:
            for nodes in comps.values():
                for node in nodes:
                    if node in instances:
                        instances[node] += 1
    plans: list[AppPlan] = []
    for name in sorted(world.apps):
        record = world.apps[name]
        current = {
            c: tuple(n for n in nodes if n in world.nodes) for c, nodes in world.placements.get(name, {}).items()
        }
        for nodes in world.placements.get(name, {}).values():
            for node in nodes:
                if node in instances:
                    instances[node] -= 1
        views = [NodeView(name=n, labels=dict(info.labels), instances=instances[n]) for n, info in world.nodes.items()]
        placement = placer.place(record.spec, views, current)
        for decision in placement.components.values():
            for node in decision.nodes:
                instances[node] += 1
        assignments = slice_graph(record.spec, record.generation, placement, world.nodes)
        stored = world.assigned.get(name, {})
        writes = {node: a for node, a in assignments.items() if stored.get(node) != a.to_dict()}
        stale = frozenset(stored) - set(assignments)
        placement_changed = placement.to_dict() != {c: list(n) for c, n in world.placements.get(name, {}).items()}
        plans.append(
            AppPlan(
                app=name,
                placement=placement,
                assignments=assignments,
                writes=writes,
                remove_from=stale,
                placement_changed=placement_changed,
            )
        )
    orphans = [(app, frozenset(nodes)) for app, nodes in sorted(world.assigned.items()) if app not in world.apps]
    orphans += [
        (app, frozenset()) for app in sorted(world.placements) if app not in world.apps and app not in world.assigned
    ]
    return plans, orphans
