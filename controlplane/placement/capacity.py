"""Filter: the node has the memory and instance slots the component's instances need."""

from __future__ import annotations

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


def demand(comp: ComponentSpec) -> tuple[float, float]:
    """(memory bytes, instance slots) one replica takes."""
    return float(comp.runtime.memory_bytes * comp.runtime.instances), float(comp.runtime.instances)


class CapacityFilter:
    name = "capacity"

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        memory, slots = demand(comp)
        t = ctx.table
        return (t.mem_used + memory <= t.mem_cap) & (t.slot_used + slots <= t.slot_cap)

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        memory, slots = demand(comp)
        t = ctx.table
        if t.mem_used[i] + memory > t.mem_cap[i]:
            return "insufficient memory"
        if t.slot_used[i] + slots > t.slot_cap[i]:
            return "no free instance slots"
        return None
