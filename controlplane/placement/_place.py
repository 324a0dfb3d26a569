"""The placement algorithm: order components, then for each replica filter, score, pick the best node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from controlplane.placement._types import Filter, NodeTable, NodeView, PlacementContext, Scorer, reasons
from controlplane.placement.affinity import AffinityFilter
from controlplane.placement.balance import BalanceScorer
from controlplane.placement.capabilities import CapabilityFilter
from controlplane.placement.capacity import CapacityFilter, demand
from controlplane.placement.distinct import DistinctReplicaFilter
from controlplane.placement.link_cost import LinkCostScorer
from controlplane.placement.node_selector import NodeSelectorFilter
from controlplane.placement.preferred_affinity import PreferredAffinityScorer
from controlplane.placement.preferred_labels import PreferredLabelsScorer
from controlplane.placement.sticky import StickyScorer
from controlplane.placement.taint_preference import TaintPreferenceScorer
from controlplane.placement.taints import TaintFilter
from controlplane.placement.topology_balance import TopologyBalanceScorer
from controlplane.placement.topology_spread import TopologySpreadFilter
from controlplane.placement.unreachable import UnreachableFilter
from neon.manifest import AppSpec, ComponentSpec

DEFAULT_WEIGHTS = {
    "balance": 1.0,
    "sticky": 10.0,
    "preferred-labels": 2.0,
    "preferred-affinity": 2.0,
    "prefer-no-schedule": 1.0,
    "topology-balance": 2.0,
    "link-cost": 3.0,
}


@dataclass(frozen=True)
class NodeExplanation:
    """Why a node was or was not chosen for a component's first replica."""

    node: str
    rejected_by: str = ""  # filter name, empty when the node passed every filter
    reason: str = ""
    scores: Mapping[str, float] = field(default_factory=dict)  # scorer -> weight x score
    total: float = 0.0
    chosen: bool = False


@dataclass(frozen=True)
class ComponentDecision:
    """Where one component's replicas go, and why not more."""

    nodes: tuple[str, ...]
    desired: int
    reason: str = ""  # non-empty when fewer than `desired` replicas were placed
    filtered: Mapping[str, int] = field(default_factory=dict)  # filter -> nodes it removed (first replica)
    explanation: tuple[NodeExplanation, ...] = ()


@dataclass(frozen=True)
class Placement:
    """Per component, its decision."""

    components: Mapping[str, ComponentDecision]

    def nodes_of(self, component: str) -> tuple[str, ...]:
        decision = self.components.get(component)
        return decision.nodes if decision else ()

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(d.nodes) for name, d in self.components.items()}


def default_filters() -> list[Filter]:
    return [
        UnreachableFilter(),
        NodeSelectorFilter(),
        TaintFilter(),
        CapabilityFilter(),
        CapacityFilter(),
        DistinctReplicaFilter(),
        AffinityFilter(),
        TopologySpreadFilter(),
    ]


def default_scorers(weights: Mapping[str, float] | None = None) -> list[Scorer]:
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    unknown = sorted(set(w) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown scorer weights: {', '.join(unknown)} (scorers: {', '.join(DEFAULT_WEIGHTS)})")
    return [
        BalanceScorer(w["balance"]),
        StickyScorer(w["sticky"]),
        PreferredLabelsScorer(w["preferred-labels"]),
        PreferredAffinityScorer(w["preferred-affinity"]),
        TaintPreferenceScorer(w["prefer-no-schedule"]),
        TopologyBalanceScorer(w["topology-balance"]),
        LinkCostScorer(w["link-cost"]),
    ]


def placement_order(app: AppSpec, call_rates: Mapping[tuple[str, str], float] | None = None) -> list[ComponentSpec]:
    """Busiest links first (so they get the seats next to their peers), then manifest order;
    what a component must sit with is always placed before it."""
    rates = call_rates or {}
    traffic = {c.name: 0.0 for c in app.components}
    for link in app.links:
        rate = rates.get((link.importer, link.exporter), 1.0)
        traffic[link.importer] += rate
        traffic[link.exporter] += rate
    deps: dict[str, list[str]] = {c.name: [] for c in app.components}
    for comp in app.components:
        deps[comp.name] += [t.component for t in comp.placement.affinity if t.required]
    for link in app.links:
        if link.colocate == "required":
            deps[link.importer].append(link.exporter)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return  # placed, or on the current path (a cycle: manifest order breaks it)
        state[name] = 1
        for dep in deps[name]:
            visit(dep)
        state[name] = 2
        order.append(name)

    for comp in sorted(app.components, key=lambda c: -traffic[c.name]):  # stable: ties keep manifest order
        visit(comp.name)
    return [app.component(name) for name in order]


class Placer:
    """Filters and weighted scorers over all nodes, for every replica of every component."""

    def __init__(
        self,
        filters: Sequence[Filter] | None = None,
        scorers: Sequence[Scorer] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.filters: list[Filter] = list(filters) if filters is not None else default_filters()
        self.scorers: list[Scorer] = list(scorers) if scorers is not None else default_scorers(weights)

    def place(
        self,
        app: AppSpec,
        table: NodeTable,
        current: Mapping[str, Sequence[str]] | None = None,
        call_rates: Mapping[tuple[str, str], float] | None = None,
        explain: bool = False,
    ) -> Placement:
        """Decide where every component of ``app`` runs; usage in ``table`` grows as it goes."""
        ctx = PlacementContext(
            app=app,
            table=table,
            current={k: frozenset(v) for k, v in (current or {}).items()},
            call_rates=call_rates or {},
        )
        decisions: dict[str, ComponentDecision] = {}
        for comp in placement_order(app, call_rates):
            decisions[comp.name] = self._place_component(comp, ctx, explain)
        return Placement(components={c.name: decisions[c.name] for c in app.components})

    def _place_component(self, comp: ComponentSpec, ctx: PlacementContext, explain: bool) -> ComponentDecision:
        table = ctx.table
        chosen: list[int] = []
        ctx.placed[comp.name] = chosen
        memory, slots = demand(comp)
        filtered: dict[str, int] = {}
        explanation: tuple[NodeExplanation, ...] = ()
        reason = ""
        for replica in range(comp.replicas):
            masks = [(f, f.mask(comp, ctx)) for f in self.filters]
            eligible = np.ones(table.size, dtype=bool)
            removed: list[tuple[Filter, np.ndarray]] = []
            for filt, mask in masks:
                dropped = eligible & ~mask
                removed.append((filt, dropped))
                eligible &= mask
            if replica == 0:
                filtered = {f.name: int(d.sum()) for f, d in removed if d.any()}
            scored = [(s, s.weight * s.scores(comp, ctx)) for s in self.scorers]
            total = np.sum([v for _, v in scored], axis=0) if scored else np.zeros(table.size)
            if not eligible.any():
                why: Counter[str] = Counter()
                for filt, dropped in removed:
                    why.update(reasons(filt, comp, ctx, np.flatnonzero(dropped).tolist()))
                detail = ", ".join(f"{n} {r}" for r, n in sorted(why.items(), key=lambda kv: (-kv[1], kv[0])))
                reason = f"0/{table.size} nodes" + (f": {detail}" if detail else "")
                if chosen:
                    reason = f"{len(chosen)}/{comp.replicas} replicas placed; {reason}"
                if replica == 0 and explain:
                    explanation = self._explain(comp, ctx, removed, scored, total, eligible, chosen_node=None)
                break
            best = int(np.argmax(np.where(eligible, total, -np.inf)))  # ties: the first name
            if replica == 0 and explain:
                explanation = self._explain(comp, ctx, removed, scored, total, eligible, chosen_node=best)
            chosen.append(best)
            table.take(best, memory, slots)
        names = tuple(table.names[i] for i in chosen)
        if explain and explanation:
            explanation = tuple(
                NodeExplanation(e.node, e.rejected_by, e.reason, e.scores, e.total, e.node in names)
                for e in explanation
            )
        return ComponentDecision(
            nodes=names, desired=comp.replicas, reason=reason, filtered=filtered, explanation=explanation
        )

    def _explain(
        self,
        comp: ComponentSpec,
        ctx: PlacementContext,
        removed: list[tuple[Filter, np.ndarray]],
        scored: list[tuple[Scorer, np.ndarray]],
        total: np.ndarray,
        eligible: np.ndarray,
        chosen_node: int | None,
    ) -> tuple[NodeExplanation, ...]:
        out = []
        for i, name in enumerate(ctx.table.names):
            rejected = next((f for f, dropped in removed if dropped[i]), None)
            if rejected is not None:
                out.append(NodeExplanation(name, rejected.name, rejected.why(comp, ctx, i) or ""))
            else:
                out.append(
                    NodeExplanation(
                        name,
                        scores={s.name: round(float(v[i]), 4) for s, v in scored},
                        total=round(float(total[i]), 4),
                        chosen=i == chosen_node,
                    )
                )
        return tuple(out)


def place(
    app: AppSpec,
    nodes: Sequence[NodeView],
    current: Mapping[str, Sequence[str]] | None = None,
    placer: Placer | None = None,
    call_rates: Mapping[tuple[str, str], float] | None = None,
    explain: bool = False,
) -> Placement:
    """Pure placement: no I/O, ``nodes`` are not modified, same input -> same output."""
    return (placer or Placer()).place(app, NodeTable(nodes), current, call_rates, explain)
