"""Scorer: prefer the nodes a component already runs on, so re-placing moves little."""

from __future__ import annotations

from controlplane.placement._types import NodeView
from neon.manifest import ComponentSpec


class StickyScorer:
    name = "sticky"

    def __init__(self, weight: float = 10.0) -> None:
        self.weight = weight

    def score(self, component: ComponentSpec, node: NodeView, current: frozenset[str]) -> float:
        return 1.0 if node.name in current else 0.0
