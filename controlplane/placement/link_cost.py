"""Scorer: minimise the cost of the component's links to components already placed.

Cost on a node = sum over links of call rate x round-trip time to the nearest
node running the other end (0 when it runs here, so chatty links end up
fused). Rates are observed calls per second (1 until observed); RTTs are the
agents' measurements (1 ms until measured). Links marked colocate: never
carry no cost here (they are split on purpose).
"""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import PlacementContext, Vector
from neon.manifest import ComponentSpec


class LinkCostScorer:
    name = "link-cost"

    def __init__(self, weight: float = 3.0) -> None:
        self.weight = weight

    def cost(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        placed = dict(ctx.peers(comp.name))
        cost = np.zeros(ctx.table.size)
        for link in ctx.app.links:
            if link.colocate == "never" or comp.name not in (link.importer, link.exporter):
                continue
            other = link.exporter if link.importer == comp.name else link.importer
            if other not in placed:
                continue
            rate = ctx.call_rates.get((link.importer, link.exporter), 1.0)
            nearest = np.min(np.stack([ctx.table.rtt_from(j) for j in placed[other]]), axis=0)
            cost += rate * nearest
        return cost

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        cost = self.cost(comp, ctx)
        top = float(cost.max()) if cost.size else 0.0
        if top <= 0.0:
            return np.zeros(ctx.table.size)
        result: Vector = 1.0 - cost / top
        return result
