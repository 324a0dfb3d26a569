"""Scorer: avoid nodes with PreferNoSchedule taints the component does not tolerate."""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import PlacementContext, Vector
from controlplane.placement.taints import untolerated
from neon.manifest import ComponentSpec


class TaintPreferenceScorer:
    name = "prefer-no-schedule"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        key = (self.name, comp.placement.tolerations)
        return ctx.table.per_class(
            key, lambda c: 0.0 if untolerated(comp, c.taints, "PreferNoSchedule") else 1.0, np.float64
        )
