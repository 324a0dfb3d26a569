"""The placement algorithm: filter, score, pick the best distinct nodes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from controlplane.placement._types import Filter, NodeView, Scorer
from controlplane.placement.node_selector import NodeSelectorFilter
from controlplane.placement.spread import SpreadScorer
from controlplane.placement.sticky import StickyScorer
from neon.manifest import AppSpec


@dataclass(frozen=True)
class ComponentDecision:
    """Where one component's replicas go, and why not more."""

    nodes: tuple[str, ...]
    desired: int
    reason: str = ""  # non-empty when fewer than `desired` replicas were placed
    filtered: Mapping[str, int] = field(default_factory=dict)  # filter name -> nodes it removed


@dataclass(frozen=True)
class Placement:
    """Per component, its decision."""

    components: Mapping[str, ComponentDecision]

    def nodes_of(self, component: str) -> tuple[str, ...]:
        decision = self.components.get(component)
        return decision.nodes if decision else ()

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(d.nodes) for name, d in self.components.items()}


class Placer:
    """Runs filters and weighted scorers over the nodes for each component."""

    def __init__(self, filters: Sequence[Filter] | None = None, scorers: Sequence[Scorer] | None = None) -> None:
        self.filters: list[Filter] = list(filters) if filters is not None else [NodeSelectorFilter()]
        self.scorers: list[Scorer] = list(scorers) if scorers is not None else [SpreadScorer(), StickyScorer()]

    def place(
        self,
        app: AppSpec,
        nodes: Sequence[NodeView],
        current: Mapping[str, Sequence[str]] | None = None,
    ) -> Placement:
        """Decide where every component of ``app`` runs.

        Args:
            app: The application.
            nodes: Live nodes; their ``instances`` counts are updated as placement proceeds,
                so pass fresh views (see :func:`place`).
            current: Component name -> nodes it runs on now (for stability).
        """
        current = current or {}
        decisions: dict[str, ComponentDecision] = {}
        ordered = sorted(nodes, key=lambda n: n.name)
        for comp in app.components:
            removed: Counter[str] = Counter()
            reasons: Counter[str] = Counter()
            eligible: list[NodeView] = []
            for node in ordered:
                for filt in self.filters:
                    reason = filt.check(comp, node)
                    if reason is not None:
                        removed[filt.name] += 1
                        reasons[reason] += 1
                        break
                else:
                    eligible.append(node)
            here = frozenset(current.get(comp.name, ()))
            ranked = sorted(
                eligible,
                key=lambda n: (-sum(s.weight * s.score(comp, n, here) for s in self.scorers), n.name),
            )
            chosen = ranked[: comp.replicas]
            for node in chosen:
                node.instances += 1
            reason = ""
            if len(chosen) < comp.replicas:
                detail = ", ".join(
                    f"{count} {why}" for why, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                )
                reason = f"{len(eligible)}/{len(ordered)} nodes eligible"
                if detail:
                    reason += f": {detail}"
                if chosen:
                    reason = f"{len(chosen)}/{comp.replicas} replicas placed; {reason}"
            decisions[comp.name] = ComponentDecision(
                nodes=tuple(n.name for n in chosen), desired=comp.replicas, reason=reason, filtered=dict(removed)
            )
        return Placement(components=decisions)


def place(
    app: AppSpec,
    nodes: Sequence[NodeView],
    current: Mapping[str, Sequence[str]] | None = None,
    placer: Placer | None = None,
) -> Placement:
    """Pure placement with the default policy; ``nodes`` are copied, not mutated."""
    views = [NodeView(name=n.name, labels=dict(n.labels), instances=n.instances) for n in nodes]
    return (placer or Placer()).place(app, views, current)
