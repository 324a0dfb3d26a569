"""Placement: a pure function from (application, nodes, current) to a decision.

Filters say pass/fail with a reason; scorers return 0..1 and are multiplied by
a configured weight. Nothing here does I/O.
"""

from controlplane.placement._place import ComponentDecision, Placement, Placer, place
from controlplane.placement._types import Filter, NodeView, Scorer
from controlplane.placement.node_selector import NodeSelectorFilter
from controlplane.placement.spread import SpreadScorer
from controlplane.placement.sticky import StickyScorer

__all__ = [
    "ComponentDecision",
    "Filter",
    "NodeSelectorFilter",
    "NodeView",
    "Placement",
    "Placer",
    "Scorer",
    "SpreadScorer",
    "StickyScorer",
    "place",
]
