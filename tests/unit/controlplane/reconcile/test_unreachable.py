"""Unreachable nodes: what stays (tolerated, within its grace), what moves, and when to look again."""

from __future__ import annotations

import math
from typing import Any

import pytest

from controlplane.reconcile.plan import explain, next_grace_expiry, plan
from controlplane.state.world import AppRecord, World
from neon import manifest
from neon.model import NodeInfo
from neon.policy import UNREACHABLE, Toleration, unreachable_grace

A = "sha256:" + "11" * 32
NODES = {name: NodeInfo(name, {"tier": "edge"}, f"10.0.0.{i}:7500") for i, name in enumerate(("edge-1", "edge-2"), 1)}
STAY = {"key": UNREACHABLE.key, "operator": "Exists", "effect": "NoExecute"}


def _world(tolerations: list[dict[str, Any]], since: float | None, now: float = 1000.0) -> World:
    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "app"},
            "spec": {
                "components": [
                    {
                        "name": "parser",
                        "artifact": A,
                        "placement": {"nodeSelector": {"tier": "edge"}, "tolerations": tolerations},
                    }
                ]
            },
        }
    )
    return World(
        apps={"app": AppRecord(spec=spec, generation=1, created_at=1.0, updated_at=1.0, revision=3)},
        nodes=NODES,
        placements={"app": {"parser": ("edge-1",)}},
        unreachable_since={} if since is None else {"edge-1": since},
        now=now,
    )


def _where(world: World) -> tuple[str, ...]:
    (app_plan,), _ = plan(world)
    return app_plan.placement.nodes_of("parser")


def test_grace_is_the_longest_matching_toleration() -> None:
    assert unreachable_grace(()) == 0
    assert unreachable_grace((Toleration(UNREACHABLE.key, "Exists", "", "NoExecute", 30.0),)) == 30
    assert unreachable_grace((Toleration(UNREACHABLE.key, "Exists", "", "NoExecute"),)) == math.inf
    # The wrong effect or key tolerates nothing here; an empty effect tolerates every effect.
    assert unreachable_grace((Toleration(UNREACHABLE.key, "Exists", "", "NoSchedule"),)) == 0
    assert unreachable_grace((Toleration("other", "Exists", "", "NoExecute"),)) == 0
    both = (Toleration(UNREACHABLE.key, "Exists", "", "", None), Toleration(UNREACHABLE.key, "Exists", "", "", 5.0))
    assert unreachable_grace(both) == math.inf


def test_without_toleration_a_component_leaves_an_unreachable_node_at_once() -> None:
    assert _where(_world([], None)) == ("edge-1",)  # reachable: sticky keeps it
    assert _where(_world([], since=1000.0)) == ("edge-2",)  # just found unreachable
    assert _where(_world([], since=0.0)) == ("edge-2",)  # not marked yet: still unreachable


@pytest.mark.parametrize(("gone", "where"), [(0.0, "edge-1"), (29.0, "edge-1"), (30.0, "edge-2"), (400.0, "edge-2")])
def test_tolerated_for_a_while_it_stays_that_long(gone: float, where: str) -> None:
    world = _world([STAY | {"tolerationSeconds": 30}], since=1000.0 - gone)
    assert _where(world) == (where,)
    assert next_grace_expiry(world) == (pytest.approx(30.0 - gone) if where == "edge-1" else None)


def test_tolerated_without_seconds_it_waits_for_the_node() -> None:
    world = _world([STAY], since=1.0, now=1e9)
    assert _where(world) == ("edge-1",)
    assert next_grace_expiry(world) is None  # nothing to wake up for


def test_an_unreachable_node_takes_no_new_components_even_tolerating_ones() -> None:
    world = _world([STAY], since=990.0)
    world = World(**{**world.__dict__, "placements": {}})  # a new application
    assert _where(world) == ("edge-2",)
    why = {e.node: e.reason for e in explain(world, "app").components["parser"].explanation}
    assert why["edge-1"] == "unreachable (takes no new components)"
    assert why["edge-2"] == ""


def test_explain_says_why_a_component_left() -> None:
    world = _world([STAY | {"tolerationSeconds": 5}], since=980.0)
    why = {e.node: e.reason for e in explain(world, "app").components["parser"].explanation}
    assert why["edge-1"] == "unreachable longer than the 5s tolerated"
    world = _world([], since=990.0)
    why = {e.node: e.reason for e in explain(world, "app").components["parser"].explanation}
    assert why["edge-1"] == f"unreachable (not tolerated: {UNREACHABLE})"


def test_toleration_seconds_round_trip_through_the_manifest() -> None:
    world = _world([STAY | {"tolerationSeconds": 30}], since=None)
    spec = world.apps["app"].spec
    assert manifest.parse(spec.to_dict()) == spec
    (toleration,) = spec.component("parser").placement.tolerations
    assert (toleration.effect, toleration.seconds) == ("NoExecute", 30.0)
