"""Which co-located linked components are fused into one component, decided with no I/O.

On each node, the components joined by links whose two ends both run there
form groups (unless the link says ``fuse: false``). A group with exactly one
root (the member nobody in the group imports from) is statically composed:
the root with every other member, wired as the links say (``wasm-tools
compose``), so its calls never leave wasmtime. The
fused component exports what the root exports; a member that other nodes
also call keeps running on its own beside it (with whatever it needs locally).
A group that cannot be fused says why, and its links stay host-linked.
"""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.placement import Placement
from controlplane.state.world import Group
from neon.config_spec import ConfigSpec
from neon.manifest import AppSpec, ComponentSpec


def groups(spec: AppSpec, placement: Placement) -> list[Group]:
    """Every group of two or more co-located linked components, per node."""
    out: list[Group] = []
    nodes = sorted({n for d in placement.components.values() for n in d.nodes})
    for node in nodes:
        here = {c.name for c in spec.components if node in placement.nodes_of(c.name)}
        local = [ln for ln in spec.links if ln.importer in here and ln.exporter in here and ln.fuse]
        neighbours: dict[str, set[str]] = {name: set() for name in here}
        for link in local:
            neighbours[link.importer].add(link.exporter)
            neighbours[link.exporter].add(link.importer)
        seen: set[str] = set()
        for start in sorted(here):
            if start in seen or not neighbours[start]:
                continue
            members, stack = set(), [start]
            while stack:
                name = stack.pop()
                if name not in members:
                    members.add(name)
                    stack.extend(neighbours[name] - members)
            seen |= members
            out.append(_group(spec, node, members, local))
    return out


def _group(spec: AppSpec, node: str, members: set[str], local: list) -> Group:  # type: ignore[type-arg]
    inside = [ln for ln in local if ln.importer in members]
    exporters = {ln.exporter for ln in inside}
    roots = sorted(members - exporters)
    ordered = tuple(sorted(members))
    clash = config_clash([spec.component(m) for m in ordered])
    if clash:
        return Group(node, ordered, reason=clash)
    if len(roots) != 1:
        return Group(
            node,
            ordered,
            reason=f"{len(roots)} roots ({', '.join(roots) or 'a cycle'}); only a group with one root is fused",
        )
    # Members called from outside the group (other nodes, or an unfused link here) also run on
    # their own, with their local exporters.
    called_remotely = {
        ln.exporter
        for ln in spec.links
        if ln.exporter in members and ln.exporter != roots[0] and ln.importer not in members
    }
    standalone = set(called_remotely)
    frontier = list(called_remotely)
    while frontier:
        name = frontier.pop()
        for ln in inside:
            if ln.importer == name and ln.exporter not in standalone:
                standalone.add(ln.exporter)
                frontier.append(ln.exporter)
    return Group(node, ordered, root=roots[0], standalone=tuple(sorted(standalone)))


def _config_entries(comp: ComponentSpec) -> dict[str, object]:
    return dict(comp.config.values) | {r.key: (r.secret, r.secret_key) for r in comp.config.secrets}


def config_clash(members: Sequence[ComponentSpec]) -> str:
    """Why members cannot share one wasi:config/store (a key each gives differently); empty when they can."""
    seen: dict[str, tuple[str, object]] = {}
    for comp in members:
        for key, value in _config_entries(comp).items():
            if key in seen and seen[key][1] != value:
                return (
                    f"config key {key!r} differs between {seen[key][0]} and {comp.name}, and a fused component "
                    "has one config; give it one value, or set fuse: false on their link"
                )
            seen.setdefault(key, (comp.name, value))
    return ""


def merged_config(members: Sequence[ComponentSpec]) -> ConfigSpec:
    """The one config of a fused group (its members agree on every key they share: :func:`config_clash`)."""
    values = dict(v for comp in members for v in comp.config.values)
    refs = {r.key: r for comp in members for r in comp.config.secrets}
    with_secrets = [comp for comp in members if comp.config.secrets]
    return ConfigSpec(
        values=tuple(sorted(values.items())),
        secrets=tuple(refs[k] for k in sorted(refs)),
        persist_secrets=bool(with_secrets) and all(comp.config.persist_secrets for comp in with_secrets),
    )
