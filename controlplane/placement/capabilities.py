"""Filter: the node offers every capability the component needs.

Needed: the placement's explicit ``capabilities``, plus ``volumes`` when the
component is granted volumes.
"""

from __future__ import annotations

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


def needed(comp: ComponentSpec) -> frozenset[str]:
    caps = set(comp.placement.capabilities)
    if comp.grants.volumes:
        caps.add("volumes")
    return frozenset(caps)


class CapabilityFilter:
    name = "capabilities"
    class_based = True

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        want = needed(comp)
        return ctx.table.per_class((self.name, want), lambda c: want <= c.capabilities, bool)

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        missing = sorted(needed(comp) - ctx.table.classes[int(ctx.table.class_of[i])].capabilities)
        return f"missing capability {missing[0]}" if missing else None
