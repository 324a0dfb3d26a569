"""Scorer: prefer nodes running fewer instances."""

from __future__ import annotations

from controlplane.placement._types import NodeView
from neon.manifest import ComponentSpec


class SpreadScorer:
    name = "spread"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def score(self, component: ComponentSpec, node: NodeView, current: frozenset[str]) -> float:
        return 1.0 / (1.0 + node.instances)
