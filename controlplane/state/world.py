"""The control plane's model of the cluster, as the store reads it and plans write it: applications as
stored, the world read at one point in time, one application's plan, and fused groups with what
composing them gave."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from controlplane.placement import Placement
from neon.manifest import AppSpec
from neon.model import Assignment, NodeInfo


@dataclass(frozen=True)
class AppRecord:
    """An application as stored: the spec plus bookkeeping."""

    spec: AppSpec
    generation: int
    created_at: float
    updated_at: float
    revision: int = 0  # etcd mod_revision of the app key
    # component -> node capabilities its WASI imports need (read from the artifact at apply)
    capabilities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def placement_spec(self) -> AppSpec:
        """The spec placement sees: explicit capabilities plus those the artifacts' imports need."""
        if not self.capabilities:
            return self.spec
        return replace(
            self.spec,
            components=tuple(
                replace(
                    c,
                    placement=replace(
                        c.placement,
                        capabilities=tuple(sorted({*c.placement.capabilities, *self.capabilities.get(c.name, ())})),
                    ),
                )
                for c in self.spec.components
            ),
        )


def placed_nodes(placement: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """A stored placement document's nodes per component."""
    return {comp: tuple(doc.get("nodes", ())) for comp, doc in placement.get("components", {}).items()}


@dataclass(frozen=True)
class World:
    """Everything the reconciler needs, read at one point in time."""

    apps: Mapping[str, AppRecord]
    nodes: Mapping[str, NodeInfo]
    placements: Mapping[str, Mapping[str, tuple[str, ...]]]  # app -> component -> nodes
    # app -> node -> the assignment stored for it now (as its JSON document)
    assigned: Mapping[str, Mapping[str, dict[str, Any]]] = field(default_factory=dict)
    # app -> the fusion groups recorded with its placement
    fusion: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    # node -> peer -> measured round trip in ms
    rtt: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # app -> (importer, exporter) -> observed calls per second
    call_rates: Mapping[str, Mapping[tuple[str, str], float]] = field(default_factory=dict)
    # node -> when it was marked Unreachable (0: not yet); such nodes are in ``nodes`` too
    unreachable_since: Mapping[str, float] = field(default_factory=dict)
    now: float = 0.0  # when the world was read (time.time())
    # app -> component -> when its nodes last changed (as recorded with the placement)
    placed_at: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    secret_versions: Mapping[str, int] = field(default_factory=dict)  # secret -> its version
    # node -> the artifacts of its prefetch lists it has fetched and compiled; and those it could not, with why
    prefetched: Mapping[str, frozenset[str]] = field(default_factory=dict)
    prefetch_failed: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def unreachable_for(self, node: str) -> float | None:
        """Seconds the node has been unreachable, or None while it holds its lease."""
        since = self.unreachable_since.get(node)
        if since is None:
            return None
        return max(0.0, self.now - since) if since else 0.0


@dataclass(frozen=True)
class AppPlan:
    """What to write for one application."""

    app: str
    placement: Placement
    assignments: Mapping[str, Assignment]  # node -> its whole slice
    writes: Mapping[str, Assignment]  # the slices that differ from what is stored
    remove_from: frozenset[str]  # nodes whose assignment for this app must go
    placement_changed: bool
    groups: tuple[Group, ...] = ()  # co-located linked components, fused or not (and why)
    fusion: tuple[dict[str, Any], ...] = ()  # the groups as recorded in the placement document
    fusion_changed: bool = False
    # A rollout held while nodes prefetch (the slices carry prefetch lists; no placement is written): its
    # generation, since, deadline and each node's artifacts, kept at /neon/rollouts/<app> for the status.
    holding: Mapping[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return self.placement_changed or self.fusion_changed or bool(self.writes) or bool(self.remove_from)


@dataclass(frozen=True)
class Group:
    """Linked components on one node."""

    node: str
    members: tuple[str, ...]  # sorted
    root: str = ""  # empty when the group has no single root
    reason: str = ""  # why it is not fused (set here, or by the composer)
    standalone: tuple[str, ...] = ()  # members that must also run on their own

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.node, self.members)

    def definitions(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m != self.root)


@dataclass(frozen=True)
class Composition:
    """What composing a group gave: the fused artifact, or why there is none."""

    digest: str = ""
    error: str = ""
    note: str = ""  # what fusing needed beyond plain composition, e.g. re-exported interfaces
