"""The plugin interfaces of placement and the node view they see."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from neon.manifest import ComponentSpec


@dataclass
class NodeView:
    """A node as placement sees it; ``instances`` grows as components are placed."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    instances: int = 0


class Filter(Protocol):
    """Decides whether a component may run on a node."""

    name: str

    def check(self, component: ComponentSpec, node: NodeView) -> str | None:
        """Return None if the node passes, else a short reason such as 'tier!=edge'."""


class Scorer(Protocol):
    """Ranks the nodes that passed every filter."""

    name: str
    weight: float

    def score(self, component: ComponentSpec, node: NodeView, current: frozenset[str]) -> float:
        """Return a score from 0 (worst) to 1 (best); ``current`` are the nodes it runs on now."""
