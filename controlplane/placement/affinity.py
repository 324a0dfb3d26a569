"""Filter: required affinity and anti-affinity, colocate required/never on links, latency budgets.

Constraints are checked against components already placed in this pass;
placement orders components so that required-affinity targets come first, and
anti-affinity is checked in both directions.
"""

from __future__ import annotations

import numpy as np

from controlplane.placement._types import Mask, PlacementContext
from neon.manifest import ComponentSpec


def _rules(comp: ComponentSpec, ctx: PlacementContext) -> list[tuple[str, str, list[int], float | None]]:
    """(kind, other component, its nodes, budget ms) for each hard rule that applies now."""
    placed = dict(ctx.peers(comp.name))
    rules: list[tuple[str, str, list[int], float | None]] = []
    for term in comp.placement.affinity:
        if term.required and term.component in placed:
            rules.append(("with", term.component, placed[term.component], None))
    for term in comp.placement.anti_affinity:
        if term.required and term.component in placed:
            rules.append(("apart", term.component, placed[term.component], None))
    for peer in ctx.app.components:  # anti-affinity is symmetric
        if peer.name in placed and any(t.required and t.component == comp.name for t in peer.placement.anti_affinity):
            rules.append(("apart", peer.name, placed[peer.name], None))
    for link in ctx.app.links:
        if comp.name not in (link.importer, link.exporter):
            continue
        other = link.exporter if link.importer == comp.name else link.importer
        if other not in placed:
            continue
        if link.colocate == "required":
            rules.append(("with", other, placed[other], None))
        elif link.colocate == "never":
            rules.append(("never", other, placed[other], None))
        elif link.latency_budget_ms is not None:
            rules.append(("budget", other, placed[other], link.latency_budget_ms))
    return rules


class AffinityFilter:
    name = "affinity"

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        ok = np.ones(ctx.table.size, dtype=bool)
        for kind, _, nodes, budget in _rules(comp, ctx):
            on = np.zeros(ctx.table.size, dtype=bool)
            on[nodes] = True
            if kind == "with":
                ok &= on
            elif kind in ("apart", "never"):
                ok &= ~on
            else:
                assert budget is not None
                best = np.min(np.stack([ctx.table.rtt_from(j) for j in nodes]), axis=0)
                ok &= best <= budget
        return ok

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        for kind, other, nodes, budget in _rules(comp, ctx):
            if kind == "with" and i not in nodes:
                return f"does not run {other}"
            if kind == "apart" and i in nodes:
                return f"runs {other} (anti-affinity)"
            if kind == "never" and i in nodes:
                return f"runs {other} (colocate: never)"
            if kind == "budget":
                assert budget is not None
                best = min(float(ctx.table.rtt_from(j)[i]) for j in nodes)
                if best > budget:
                    return f"rtt to {other} {best:g}ms > budget {budget:g}ms"
        return None
