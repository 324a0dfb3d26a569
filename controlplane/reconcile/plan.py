"""The reconciler's decisions, with no I/O.

Step one (the shell's job) reflects etcd into a :class:`World`; step two,
:func:`plan`, computes for every application its placement and every node's
slice of the graph. The shell writes each application's plan back in one etcd
transaction guarded by the mod revisions it read.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping

from controlplane.placement import NodeTable, NodeView, Placement, Placer
from controlplane.placement.capacity import demand
from controlplane.reconcile import fusion
from controlplane.state.world import AppPlan, Composition, Group, World
from neon.bucket_spec import BucketSpec
from neon.config_spec import ConfigSpec
from neon.manifest import AppSpec, ComponentSpec
from neon.model import Assignment, ComponentAssignment, ImportBinding, NodeInfo
from neon.policy import UNREACHABLE, parse_taint, unreachable_grace

Compositions = Mapping[tuple[str, tuple[str, ...]], Composition]  # group key -> what composing it gave
NOT_COMPOSED = "not composed yet"  # a fusable group the shell has not composed in this pass


def resolve_groups(spec: AppSpec, placement: Placement, compositions: Compositions) -> list[Group]:
    """Every co-located group; a fusable one without a composition result gets its error as the reason."""
    out = []
    for group in fusion.groups(spec, placement):
        if not group.reason:
            done = compositions.get(group.key, Composition(error=NOT_COMPOSED))
            if not done.digest:
                group = replace(group, reason=done.error)
        out.append(group)
    return out


def slice_graph(
    spec: AppSpec,
    generation: int,
    placement: Placement,
    nodes: Mapping[str, NodeInfo],
    groups: list[Group] | None = None,
    compositions: Compositions | None = None,
    secret_versions: Mapping[str, int] | None = None,
) -> dict[str, Assignment]:
    """Cut the application's graph into per-node assignments.

    An import is ``local`` when the exporter has a replica on the importer's
    node; otherwise it carries the data-plane endpoints of the exporter's nodes.
    A fused group becomes one component named after its root, whose imports are
    the members' links to components outside the group (all remote).
    """
    fused = [g for g in groups or [] if not g.reason]
    versions = secret_versions or {}

    def versions_of(config: ConfigSpec) -> tuple[tuple[str, int], ...]:
        return tuple((name, versions.get(name, 0)) for name in config.secret_names())

    def granted(members: list[ComponentSpec]) -> tuple[BucketSpec, ...]:
        names = sorted({name for m in members for name in m.grants.key_value})
        return tuple(spec.bucket(name) for name in names)

    inside: set[tuple[str, str]] = set()  # (node, member) served only inside a fused component
    per_node: dict[str, list[ComponentAssignment]] = {}

    def bindings(node: str, importers: tuple[str, ...], skip: set[str]) -> tuple[ImportBinding, ...]:
        out = []
        for link in spec.links:
            if link.importer not in importers or link.exporter in skip:
                continue
            targets = placement.nodes_of(link.exporter)
            endpoints = tuple(nodes[t].dataplane_address for t in targets if t in nodes and t != node)
            importer = link.importer if len(importers) > 1 else ""  # named inside a fused component only
            out.append(
                ImportBinding(link.import_name, link.exporter, node in targets, endpoints, link.idempotent, importer)
            )
        return tuple(out)

    for group in fused:
        assert compositions is not None
        root = spec.component(group.root)
        members = [spec.component(m) for m in group.members]
        env: dict[str, str] = {}
        volumes = {}
        for member in reversed(members):  # the root's grants win
            env.update(member.grants.env)
            volumes.update({v.path: v for v in member.grants.volumes})
        config = fusion.merged_config(members)
        per_node.setdefault(group.node, []).append(
            ComponentAssignment(
                name=root.name,
                artifact=compositions[group.key].digest,
                imports=bindings(group.node, group.members, set(group.members)),
                runtime=root.runtime,
                grants=replace(root.grants, env=env, volumes=tuple(volumes[p] for p in sorted(volumes))),
                fused_members=group.members,
                http=root.http,
                config=config,
                secret_versions=versions_of(config),
                buckets=granted(members),
            )
        )
        inside |= {(group.node, m) for m in group.members if m not in group.standalone}
    for comp in spec.components:
        for node in placement.nodes_of(comp.name):
            if (node, comp.name) in inside:
                continue
            per_node.setdefault(node, []).append(
                ComponentAssignment(
                    name=comp.name,
                    artifact=comp.artifact,
                    imports=bindings(node, (comp.name,), set()),
                    runtime=comp.runtime,
                    grants=comp.grants,
                    http=comp.http,
                    config=comp.config,
                    secret_versions=versions_of(comp.config),
                    buckets=granted([comp]),
                )
            )
    # Who may call each component across nodes: the nodes holding a remote binding to it.
    callers: dict[str, set[str]] = {}
    for node, comps in per_node.items():
        for assigned in comps:
            for binding in assigned.imports:
                if binding.endpoints:
                    callers.setdefault(binding.component, set()).add(node)
    return {
        node: Assignment(
            app=spec.name,
            generation=generation,
            components=tuple(
                replace(c, callers=tuple(sorted(callers.get(c.name, ())))) if c.name in callers else c
                for c in sorted(comps, key=lambda c: c.name)
            ),
        )
        for node, comps in sorted(per_node.items())
    }


def fusion_doc(groups: list[Group], compositions: Compositions) -> list[dict[str, Any]]:
    """How the placement document records the groups (for status and `neon get app -o wide`)."""
    return [
        {
            "node": g.node,
            "members": list(g.members),
            "root": g.root,
            "artifact": "" if g.reason else compositions[g.key].digest,
            "reason": g.reason,
            "note": "" if g.reason else compositions[g.key].note,
            "standalone": list(g.standalone),
        }
        for g in groups
    ]


def node_view(info: NodeInfo, rtt: Mapping[str, float] | None = None, unreachable_for: float | None = None) -> NodeView:
    """The placement view of a registered node; an unreachable one carries the NoExecute taint."""
    taints = tuple(parse_taint(t) for t in info.taints)
    return NodeView(
        name=info.name,
        labels=dict(info.labels),
        taints=taints if unreachable_for is None else (*taints, UNREACHABLE),
        capabilities=frozenset(info.capabilities),
        memory_bytes=info.memory_bytes,
        instance_slots=info.instance_slots,
        rtt_ms=dict(rtt or {}),
        unreachable_for=unreachable_for,
    )


def _views(world: World) -> list[NodeView]:
    return [node_view(info, world.rtt.get(n, {}), world.unreachable_for(n)) for n, info in world.nodes.items()]


def next_grace_expiry(world: World) -> float | None:
    """Seconds until the first component kept on an unreachable node outstays its toleration."""
    waits = []
    for app, placed in world.placements.items():
        record = world.apps.get(app)
        if record is None:
            continue
        for comp in record.spec.components:
            grace = unreachable_grace(comp.placement.tolerations)
            for node in placed.get(comp.name, ()):
                gone = world.unreachable_for(node)
                if gone is not None and gone < grace < math.inf:
                    waits.append(grace - gone)
    return min(waits, default=None)


def _usage(world: World, app: str) -> list[tuple[str, float, float]]:
    """(node, memory, slots) for every replica the application holds now."""
    spec = world.apps[app].spec
    out = []
    for comp_name, nodes in world.placements.get(app, {}).items():
        try:
            memory, slots = demand(spec.component(comp_name))
        except KeyError:
            continue  # the component was removed from the manifest
        out += [(node, memory, slots) for node in nodes if node in world.nodes]
    return out


def _apply(table: NodeTable, usage: list[tuple[str, float, float]], sign: int) -> None:
    for node, memory, slots in usage:
        i = table.index[node]
        table.instances[i] += sign
        table.mem_used[i] += sign * memory
        table.slot_used[i] += sign * slots


def _table_without(world: World, app: str | None) -> NodeTable:
    """The nodes with every application's current usage except ``app``'s."""
    table = NodeTable(_views(world))
    for name in world.placements:
        if name in world.apps and name != app:
            _apply(table, _usage(world, name), +1)
    return table


def explain(world: World, app: str, placer: Placer | None = None) -> Placement:
    """Place one application as the reconciler would now, with per-node explanations."""
    record = world.apps[app]
    current = {c: tuple(n for n in nodes if n in world.nodes) for c, nodes in world.placements.get(app, {}).items()}
    return (placer or Placer()).place(
        record.placement_spec(), _table_without(world, app), current, world.call_rates.get(app, {}), explain=True
    )


def plan(
    world: World, placer: Placer | None = None, compositions: Mapping[str, Compositions] | None = None
) -> tuple[list[AppPlan], list[tuple[str, frozenset[str]]]]:
    """Compute the plans for every application, and the orphans to delete.

    Returns:
        ``(plans, orphans)``: one plan per stored application (in name order),
        and for applications that no longer exist, the nodes whose
        assignments must be removed.
    """
    placer = placer or Placer()
    table = NodeTable(_views(world))
    usage = {app: _usage(world, app) for app in world.placements if app in world.apps}
    for app_usage in usage.values():  # what every application holds now
        _apply(table, app_usage, +1)
    plans: list[AppPlan] = []
    for name in sorted(world.apps):
        record = world.apps[name]
        current = {
            c: tuple(n for n in nodes if n in world.nodes) for c, nodes in world.placements.get(name, {}).items()
        }
        _apply(table, usage.get(name, []), -1)  # re-placing: its own current share is free again
        placement = placer.place(record.placement_spec(), table, current, world.call_rates.get(name, {}))
        composed = (compositions or {}).get(name, {})
        groups = resolve_groups(record.spec, placement, composed)
        assignments = slice_graph(
            record.spec, record.generation, placement, world.nodes, groups, composed, world.secret_versions
        )
        fusion_record = fusion_doc(groups, composed)
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
                groups=tuple(groups),
                fusion=tuple(fusion_record),
                fusion_changed=fusion_record != list(world.fusion.get(name, [])),
            )
        )
    orphans = [(app, frozenset(nodes)) for app, nodes in sorted(world.assigned.items()) if app not in world.apps]
    orphans += [
        (app, frozenset()) for app in sorted(world.placements) if app not in world.apps and app not in world.assigned
    ]
    return plans, orphans
