"""Filter: replicas of one component go to different nodes."""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


class DistinctReplicaFilter:
    name = "distinct-replicas"

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        ok = np.ones(ctx.table.size, dtype=bool)
        ok[ctx.placed.get(comp.name, [])] = False
        return ok

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        return "runs another replica" if i in ctx.placed.get(comp.name, []) else None
