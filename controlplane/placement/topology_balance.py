"""Scorer: prefer topology domains holding fewer of the component's replicas (any spread policy)."""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import PlacementContext, Vector
from controlplane.placement.topology_spread import domains
from neon.manifest import ComponentSpec


class TopologyBalanceScorer:
    name = "topology-balance"

    def __init__(self, weight: float = 2.0) -> None:
        self.weight = weight

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        if comp.placement.spread is None:
            return np.zeros(ctx.table.size)
        of_node, counts, _ = domains(comp, ctx)
        per_domain = 1.0 / (1.0 + counts.astype(np.float64))
        result: Vector = np.where(of_node >= 0, per_domain[np.maximum(of_node, 0)] if counts.size else 0.0, 0.0)
        return result
