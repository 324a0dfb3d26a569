"""Filter: an unreachable node keeps only the components that tolerate it, for as long as they do.

A node whose lease expired is Unreachable and carries the NoExecute taint
``node.neon-grid.dev/unreachable``. It takes no new components; one already
running there stays while its tolerations allow (``tolerationSeconds``, or for
good without it) and is rescheduled elsewhere as soon as they do not.
"""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec
from neon.policy import UNREACHABLE, unreachable_grace


class UnreachableFilter:
    name = "unreachable"

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        table = ctx.table
        ok = np.ones(table.size, dtype=bool)
        if table.unreachable.size:
            ok[table.unreachable] = False
            grace = unreachable_grace(comp.placement.tolerations)
            for name in ctx.current.get(comp.name, frozenset()):
                i = table.index.get(name)
                if i is not None and table.unreachable_for[i] < grace:
                    ok[i] = True
        return ok

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        # No durations here: reasons are stored with the placement and would go stale.
        if np.isnan(ctx.table.unreachable_for[i]):
            return None
        if ctx.table.names[i] not in ctx.current.get(comp.name, frozenset()):
            return "unreachable (takes no new components)"
        grace = unreachable_grace(comp.placement.tolerations)
        if grace == 0:
            return f"unreachable (not tolerated: {UNREACHABLE})"
        return f"unreachable longer than the {grace:g}s tolerated"
