"""Filter: replicas stay within maxSkew across the values of a topology label (DoNotSchedule)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


def domains(
    comp: ComponentSpec, ctx: PlacementContext
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]]:
    """Each node's domain id (-1 without the label), replicas per domain so far, and the domain names."""
    assert comp.placement.spread is not None
    of_node, names = ctx.table.domains(comp.placement.spread.topology_key)
    placed = of_node[ctx.placed.get(comp.name, [])]
    counts = np.bincount(placed[placed >= 0], minlength=len(names)).astype(np.int64)
    return of_node, counts, names


class TopologySpreadFilter:
    name = "topology-spread"

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        spread = comp.placement.spread
        if spread is None or spread.when_unsatisfiable != "DoNotSchedule":
            return np.ones(ctx.table.size, dtype=bool)
        of_node, counts, names = domains(comp, ctx)
        if not names:
            return np.zeros(ctx.table.size, dtype=bool)
        floor = int(counts.min())
        allowed = counts + 1 - floor <= spread.max_skew
        result: Mask = (of_node >= 0) & allowed[np.maximum(of_node, 0)]
        return result

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        spread = comp.placement.spread
        if spread is None or spread.when_unsatisfiable != "DoNotSchedule":
            return None
        of_node, counts, names = domains(comp, ctx)
        domain = int(of_node[i])
        if domain < 0:
            return f"no label {spread.topology_key}"
        if counts[domain] + 1 - counts.min() > spread.max_skew:
            return f"{spread.topology_key}={names[domain]} would exceed maxSkew {spread.max_skew}"
        return None
