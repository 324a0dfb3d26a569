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
        of_node, counts = domains(comp, ctx)
        return np.array([0.0 if d is None else 1.0 / (1.0 + counts.get(d, 0)) for d in of_node])
