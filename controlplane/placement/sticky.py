"""Scorer: prefer the nodes a component already runs on, so re-placing moves little."""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import PlacementContext, Vector
from neon.manifest import ComponentSpec


class StickyScorer:
    name = "sticky"

    def __init__(self, weight: float = 10.0) -> None:
        self.weight = weight

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        out = np.zeros(ctx.table.size)
        for name in ctx.current.get(comp.name, frozenset()):
            i = ctx.table.index.get(name)
            if i is not None:
                out[i] = 1.0
        return out
