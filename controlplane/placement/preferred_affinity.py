"""Scorer: preferred affinity / anti-affinity, and links marked colocate: preferred.

The share (by weight) of those wishes a node satisfies, counting only
components already placed in this pass.
"""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import PlacementContext, Vector
from neon.manifest import ComponentSpec

LINK_WEIGHT = 50


class PreferredAffinityScorer:
    name = "preferred-affinity"

    def __init__(self, weight: float = 2.0) -> None:
        self.weight = weight

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        placed = dict(ctx.peers(comp.name))
        wishes: list[tuple[int, bool, list[int]]] = []  # (weight, together?, nodes of the other)
        for term in comp.placement.affinity:
            if not term.required and term.component in placed:
                wishes.append((term.weight, True, placed[term.component]))
        for term in comp.placement.anti_affinity:
            if not term.required and term.component in placed:
                wishes.append((term.weight, False, placed[term.component]))
        for link in ctx.app.links:
            if link.colocate == "preferred" and comp.name in (link.importer, link.exporter):
                other = link.exporter if link.importer == comp.name else link.importer
                if other in placed:
                    wishes.append((LINK_WEIGHT, True, placed[other]))
        if not wishes:
            return np.zeros(ctx.table.size)
        out = np.zeros(ctx.table.size)
        for weight, together, nodes in wishes:
            on = np.zeros(ctx.table.size)
            on[nodes] = 1.0
            out += weight * (on if together else 1.0 - on)
        result: Vector = out / sum(w for w, _, _ in wishes)
        return result
