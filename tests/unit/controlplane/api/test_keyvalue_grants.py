"""The grant cache of AgentControl.KeyValue (controlplane.api.keyvalue.Grants): a component's assignment is
read at most once a TTL per (node, app, component), a refusal is never kept, and a grant taken away stops
applying once the TTL has passed. The clock is the test's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controlplane.api.keyvalue import Grants
from neon.errors import PermissionDenied
from neon.model import ComponentAssignment


class Assignments:
    """What the node's assignments say, and how often they were read."""

    def __init__(self) -> None:
        self.assigned: dict[tuple[str, str, str], ComponentAssignment] = {}
        self.reads = 0

    async def lookup(self, _store: Any, node: str, app: str, component: str, what: str) -> ComponentAssignment:
        self.reads += 1
        found = self.assigned.get((node, app, component))
        if found is None:
            raise PermissionDenied(f"node {node} runs no component {app}/{component}: it is given no {what} of it")
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ask(grants: Grants, node: str = "edge-1", app: str = "shop", component: str = "cart") -> ComponentAssignment:
    return asyncio.run(grants.component(None, node, app, component))  # type: ignore[arg-type]


def test_an_assignment_is_read_once_a_ttl_then_again() -> None:
    table, clock = Assignments(), Clock()
    table.assigned[("edge-1", "shop", "cart")] = ComponentAssignment("cart", "sha256:" + "a" * 64)
    grants = Grants(table.lookup, clock)
    for _ in range(50):
        assert ask(grants).name == "cart"
    assert table.reads == 1
    clock.now += Grants.TTL - 0.01
    ask(grants)
    assert table.reads == 1, "read again before its TTL was over"
    clock.now += 0.02
    ask(grants)
    assert table.reads == 2, "not read again once its TTL was over"


def test_a_grant_taken_away_applies_after_the_ttl_and_a_refusal_is_not_kept() -> None:
    table, clock = Assignments(), Clock()
    table.assigned[("edge-1", "shop", "cart")] = ComponentAssignment("cart", "sha256:" + "a" * 64)
    grants = Grants(table.lookup, clock)
    ask(grants)
    del table.assigned[("edge-1", "shop", "cart")]
    ask(grants)  # still held: at most a TTL late
    clock.now += Grants.TTL
    with pytest.raises(PermissionDenied, match="no key-value bucket"):
        ask(grants)
    with pytest.raises(PermissionDenied):
        ask(grants)
    assert table.reads == 3, "a refusal was kept instead of read again"
    table.assigned[("edge-1", "shop", "cart")] = ComponentAssignment("cart", "sha256:" + "b" * 64)
    assert ask(grants).artifact.endswith("b" * 64), "a grant given back is not seen at once"


def test_each_node_app_and_component_is_held_apart_and_the_cache_is_bounded() -> None:
    table, clock = Assignments(), Clock()
    for node in ("edge-1", "edge-2"):
        table.assigned[(node, "shop", "cart")] = ComponentAssignment("cart", "sha256:" + "a" * 64)
    grants = Grants(table.lookup, clock)
    ask(grants, "edge-1")
    ask(grants, "edge-2")
    with pytest.raises(PermissionDenied):
        ask(grants, "edge-3")
    assert table.reads == 3
    Grants.MAX, saved = 2, Grants.MAX
    try:
        table.assigned[("edge-1", "shop", "other")] = ComponentAssignment("other", "sha256:" + "c" * 64)
        ask(grants, "edge-1", component="other")  # a third entry: the cache starts again
        ask(grants, "edge-1")
        assert table.reads == 5, "the cache grew past its bound"
    finally:
        Grants.MAX = saved
