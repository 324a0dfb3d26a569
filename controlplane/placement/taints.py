"""Filter: every NoSchedule taint of the node is tolerated by the component."""

from __future__ import annotations

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec
from neon.policy import Taint


def untolerated(comp: ComponentSpec, taints: tuple[Taint, ...], effect: str) -> list[Taint]:
    return [t for t in taints if t.effect == effect and not any(tol.tolerates(t) for tol in comp.placement.tolerations)]


class TaintFilter:
    name = "taints"
    class_based = True

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        key = (self.name, comp.placement.tolerations)
        return ctx.table.per_class(key, lambda c: not untolerated(comp, c.taints, "NoSchedule"), bool)

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        bad = untolerated(comp, ctx.table.classes[int(ctx.table.class_of[i])].taints, "NoSchedule")
        return f"taint {bad[0]}" if bad else None
