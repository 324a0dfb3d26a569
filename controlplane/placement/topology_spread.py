"""Filter: replicas stay within maxSkew across the values of a topology label (DoNotSchedule)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


def domains(comp: ComponentSpec, ctx: PlacementContext) -> tuple[list[str | None], Counter[str]]:
    """Each node's domain (None without the label) and replicas per domain so far."""
    assert comp.placement.spread is not None
    key = comp.placement.spread.topology_key
    per_class = [c.labels.get(key) for c in ctx.table.classes]
    of_node = [per_class[int(c)] for c in ctx.table.class_of]
    counts: Counter[str] = Counter()
    for i in ctx.placed.get(comp.name, []):
        domain = of_node[i]
        if domain is not None:
            counts[domain] += 1
    return of_node, counts


class TopologySpreadFilter:
    name = "topology-spread"

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        spread = comp.placement.spread
        if spread is None or spread.when_unsatisfiable != "DoNotSchedule":
            return np.ones(ctx.table.size, dtype=bool)
        of_node, counts = domains(comp, ctx)
        present = {d for d in of_node if d is not None}
        floor = min((counts.get(d, 0) for d in present), default=0)
        ok = [d is not None and counts.get(d, 0) + 1 - floor <= spread.max_skew for d in of_node]
        return np.array(ok, dtype=bool)

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        spread = comp.placement.spread
        if spread is None or spread.when_unsatisfiable != "DoNotSchedule":
            return None
        of_node, counts = domains(comp, ctx)
        domain = of_node[i]
        if domain is None:
            return f"no label {spread.topology_key}"
        floor = min(counts.get(d, 0) for d in {d for d in of_node if d is not None})
        if counts.get(domain, 0) + 1 - floor > spread.max_skew:
            return f"{spread.topology_key}={domain} would exceed maxSkew {spread.max_skew}"
        return None
