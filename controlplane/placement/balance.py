"""Scorer: prefer nodes running fewer instances (spread load over the fleet)."""

from __future__ import annotations

from controlplane.placement._types import PlacementContext, Vector
from neon.manifest import ComponentSpec


class BalanceScorer:
    name = "balance"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        result: Vector = 1.0 / (1.0 + ctx.table.instances)
        return result
