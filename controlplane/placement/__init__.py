"""Placement: a pure function from (application, nodes, current) to a decision.

Filters say pass/fail with a reason; scorers return 0..1 and are multiplied by
a configured weight. One plugin per module; nothing here does I/O.
"""

from controlplane.placement._place import (
    DEFAULT_WEIGHTS,
    ComponentDecision,
    NodeExplanation,
    Placement,
    Placer,
    default_filters,
    default_scorers,
    place,
)
from controlplane.placement._types import DEFAULT_RTT_MS, Filter, NodeTable, NodeView, Scorer

__all__ = [
    "DEFAULT_RTT_MS",
    "DEFAULT_WEIGHTS",
    "ComponentDecision",
    "Filter",
    "NodeExplanation",
    "NodeTable",
    "NodeView",
    "Placement",
    "Placer",
    "Scorer",
    "default_filters",
    "default_scorers",
    "place",
]
