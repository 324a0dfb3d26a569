"""Scorer: the share of the component's preferred label terms (by weight) a node satisfies."""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import PlacementContext, Vector
from neon.manifest import ComponentSpec


class PreferredLabelsScorer:
    name = "preferred-labels"

    def __init__(self, weight: float = 2.0) -> None:
        self.weight = weight

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        terms = comp.placement.preferred
        if not terms:
            return np.zeros(ctx.table.size)
        total = sum(t.weight for t in terms)
        return ctx.table.per_class(
            (self.name, terms),
            lambda c: sum(t.weight for t in terms if t.expr.why_not(c.labels) is None) / total,
            np.float64,
        )
