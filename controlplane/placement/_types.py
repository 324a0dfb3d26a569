"""What placement plugins see: the node table, the context, and the two plugin interfaces.

Nodes are held column-wise in numpy arrays so a filter or scorer handles all
nodes at once; attributes that depend only on a node's labels, taints and
capabilities are evaluated once per distinct combination (a node *class*) and
broadcast, which is what makes 10,000 nodes cheap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from neon.manifest import AppSpec, ComponentSpec
from neon.policy import Taint

Mask = npt.NDArray[np.bool_]
Vector = npt.NDArray[np.float64]

DEFAULT_RTT_MS = 1.0  # assumed between two nodes that have not measured each other


@dataclass
class NodeView:
    """A node as placement sees it. Zero capacity means unknown, i.e. unlimited."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    instances: int = 0
    taints: tuple[Taint, ...] = ()
    capabilities: frozenset[str] = frozenset()
    memory_bytes: int = 0
    instance_slots: int = 0
    memory_used: int = 0
    slots_used: int = 0
    rtt_ms: dict[str, float] = field(default_factory=dict)
    unreachable_for: float | None = None  # seconds since the node lost its lease; None while it holds one


@dataclass(frozen=True)
class NodeClass:
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    capabilities: frozenset[str]


class NodeTable:
    """Nodes sorted by name, column-wise; usage columns change as placement proceeds."""

    def __init__(self, nodes: Sequence[NodeView]) -> None:
        ordered = sorted(nodes, key=lambda n: n.name)
        self.views = ordered
        self.names = [n.name for n in ordered]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.size = len(ordered)
        keys: dict[tuple[object, ...], int] = {}
        self.classes: list[NodeClass] = []
        class_of = np.empty(self.size, dtype=np.int64)
        for i, node in enumerate(ordered):
            key = (tuple(sorted(node.labels.items())), node.taints, node.capabilities)
            if key not in keys:
                keys[key] = len(self.classes)
                self.classes.append(NodeClass(dict(node.labels), node.taints, node.capabilities))
            class_of[i] = keys[key]
        self.class_of = class_of
        self.instances = np.array([n.instances for n in ordered], dtype=np.float64)
        self.mem_cap = np.array([n.memory_bytes or np.inf for n in ordered], dtype=np.float64)
        self.mem_used = np.array([n.memory_used for n in ordered], dtype=np.float64)
        self.slot_cap = np.array([n.instance_slots or np.inf for n in ordered], dtype=np.float64)
        self.slot_used = np.array([n.slots_used for n in ordered], dtype=np.float64)
        # Seconds each node has been unreachable (NaN: reachable); few are, so keep their indexes too.
        self.unreachable_for = np.array(
            [np.nan if n.unreachable_for is None else n.unreachable_for for n in ordered], dtype=np.float64
        )
        self.unreachable = np.flatnonzero(~np.isnan(self.unreachable_for))
        self._rtt_rows: dict[int, Vector] = {}
        self._measured_by: dict[str, list[tuple[int, float]]] = {}  # node -> [(who measured it, ms)]
        for j, node in enumerate(ordered):
            for peer, ms in node.rtt_ms.items():
                self._measured_by.setdefault(peer, []).append((j, ms))
        self._domains: dict[str, tuple[npt.NDArray[np.int64], list[str]]] = {}
        self._per_class: dict[Hashable, npt.NDArray[Any]] = {}

    def by_class(self, values: Sequence[bool] | Sequence[float]) -> npt.NDArray[np.generic]:
        """Broadcast one value per node class to every node."""
        return np.asarray(values)[self.class_of]

    def per_class(self, key: Hashable, value: Callable[[NodeClass], bool | float], dtype: type) -> npt.NDArray[Any]:
        """``value`` of each node class broadcast to every node, made once per ``key`` for this table (what
        a class-based plugin answers depends only on the classes and on the part of the component named by
        ``key``; 10,000 components of a few hundred kinds ask the same few hundred questions). Read-only."""
        made = self._per_class.get(key)
        if made is None:
            made = self.by_class([value(c) for c in self.classes]).astype(dtype)
            made.flags.writeable = False
            self._per_class[key] = made
        return made

    def rtt_from(self, i: int) -> Vector:
        """Round-trip times in ms from node ``i`` to every node (0 to itself)."""
        row = self._rtt_rows.get(i)
        if row is None:
            measured = self.views[i].rtt_ms
            row = np.full(self.size, DEFAULT_RTT_MS)
            for name, ms in measured.items():
                j = self.index.get(name)
                if j is not None:
                    row[j] = ms
            for j, ms in self._measured_by.get(self.names[i], ()):  # a measurement either way counts
                if self.names[j] not in measured:
                    row[j] = ms
            row[i] = 0.0
            self._rtt_rows[i] = row
        return row

    def domains(self, key: str) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Each node's topology domain for label ``key`` as an index into the returned names (-1: none)."""
        cached = self._domains.get(key)
        if cached is None:
            names = sorted({c.labels[key] for c in self.classes if key in c.labels})
            ids = {name: i for i, name in enumerate(names)}
            per_class = np.array([ids.get(c.labels.get(key, ""), -1) for c in self.classes], dtype=np.int64)
            cached = (per_class[self.class_of], names)
            self._domains[key] = cached
        return cached

    def take(self, i: int, memory: float, slots: float) -> None:
        self.instances[i] += 1
        self.mem_used[i] += memory
        self.slot_used[i] += slots


@dataclass
class PlacementContext:
    """The state of one placement pass over one application."""

    app: AppSpec
    table: NodeTable
    current: Mapping[str, frozenset[str]]
    call_rates: Mapping[tuple[str, str], float]
    placed: dict[str, list[int]] = field(default_factory=dict)  # this pass: component -> node indexes

    def peers(self, component: str) -> list[tuple[str, list[int]]]:
        """Components already placed in this pass, with their nodes."""
        return [(name, nodes) for name, nodes in self.placed.items() if name != component and nodes]


class Filter(Protocol):
    """Says which nodes a component may run on, and why not."""

    name: str

    def mask(self, comp: ComponentSpec, ctx: PlacementContext) -> Mask:
        """True for the nodes that pass."""

    def why(self, comp: ComponentSpec, ctx: PlacementContext, i: int) -> str | None:
        """Why node ``i`` fails (None if it passes), in a few words such as 'tier!=edge'."""


class Scorer(Protocol):
    """Ranks nodes; results are in 0..1 and multiplied by the configured weight."""

    name: str
    weight: float

    def scores(self, comp: ComponentSpec, ctx: PlacementContext) -> Vector:
        """A score per node, 0 (worst) to 1 (best)."""


def reasons(filt: Filter, comp: ComponentSpec, ctx: PlacementContext, nodes: Sequence[int]) -> Counter[str]:
    """Count why the given nodes fail a filter (one ``why`` per node class when the filter allows)."""
    out: Counter[str] = Counter()
    per_class = getattr(filt, "class_based", False)
    cache: dict[int, str | None] = {}
    for i in nodes:
        if per_class:
            cls = int(ctx.table.class_of[i])
            if cls not in cache:
                cache[cls] = filt.why(comp, ctx, i)
            why = cache[cls]
        else:
            why = filt.why(comp, ctx, i)
        if why:
            out[why] += 1
    return out
