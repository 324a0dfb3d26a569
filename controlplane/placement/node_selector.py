"""Filter: the node's labels satisfy nodeSelector and every required expression."""

from __future__ import annotations

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


class NodeSelectorFilter:
    name = "node-selector"
    class_based = True

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        exprs = comp.placement.expressions()
        return ctx.table.per_class((self.name, exprs), lambda c: all(e.why_not(c.labels) is None for e in exprs), bool)

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        labels = ctx.table.classes[int(ctx.table.class_of[i])].labels
        for expr in comp.placement.expressions():
            reason = expr.why_not(labels)
            if reason:
                return reason
        return None
