"""A rollout held while the nodes that will run it fetch and compile it (controlplane.reconcile.prefetch): what is
written while it waits, when it goes ahead, and what is never held."""

from __future__ import annotations

from dataclasses import replace

from controlplane.reconcile.plan import plan
from controlplane.reconcile.prefetch import gate
from controlplane.state.world import AppPlan, AppRecord, World
from neon import manifest
from neon.model import Assignment, NodeInfo
from neon.rollout_spec import RolloutSpec

P1, P2 = "sha256:" + "11" * 32, "sha256:" + "12" * 32
Q = "sha256:" + "22" * 32
PARSE = "cyber-systems:logs/parser@0.1.0"
NODES = {
    "edge-1": NodeInfo("edge-1", {"tier": "edge"}, "10.0.0.1:7500"),
    "edge-2": NodeInfo("edge-2", {"tier": "edge"}, "10.0.0.3:7500"),
    "cloud-1": NodeInfo("cloud-1", {"tier": "cloud"}, "10.0.0.2:7500"),
}


def _spec(parser: str, rollout: dict[str, object] | None = None) -> manifest.AppSpec:
    spec: dict[str, object] = {
        "components": [
            {"name": "parser", "artifact": parser, "replicas": 2, "placement": {"nodeSelector": {"tier": "edge"}}},
            {"name": "processor", "artifact": Q, "placement": {"nodeSelector": {"tier": "cloud"}}},
        ],
        "links": [{"importer": "processor", "import": PARSE, "exporter": "parser"}],
    }
    if rollout is not None:
        spec["rollout"] = rollout
    return manifest.parse(
        {"apiVersion": manifest.API_VERSION, "kind": "Application", "metadata": {"name": "logs"}, "spec": spec}
    )


def _deployed() -> World:
    """Generation 1 (parser P1 on both edges, processor on the cloud) written and running."""
    record = AppRecord(spec=_spec(P1), generation=1, created_at=1.0, updated_at=1.0, revision=7)
    world = World(apps={"logs": record}, nodes=NODES, placements={}, now=100.0)
    (first,), _ = plan(world)
    return replace(
        world,
        placements={"logs": {c: d.nodes for c, d in first.placement.components.items()}},
        assigned={"logs": {n: a.to_dict() for n, a in first.assignments.items()}},
    )


def _applied(
    world: World, parser: str, rollout: dict[str, object] | None = None, **changes: object
) -> tuple[World, AppPlan]:
    """``world`` after applying generation 2 with ``parser``; and the plan computed for it."""
    record = AppRecord(spec=_spec(parser, rollout), generation=2, created_at=1.0, updated_at=2.0, revision=8)
    world = replace(world, apps={"logs": record}, **changes)  # type: ignore[arg-type]
    (computed,), _ = plan(world)
    return world, computed


def _stored(world: World, written: AppPlan) -> World:
    """``world`` once ``written`` is in etcd."""
    assigned = dict(world.assigned["logs"])
    assigned.update({n: a.to_dict() for n, a in written.writes.items()})
    return replace(world, assigned={"logs": assigned})


def test_a_new_version_is_held_until_every_node_has_it_ready_then_swapped_everywhere_at_once() -> None:
    world, computed = _applied(_deployed(), P2)
    held, rollout = gate(computed, world, RolloutSpec())
    assert rollout is not None and rollout.held and rollout.generation == 2
    assert [(n.node, n.ready, n.total) for n in rollout.nodes] == [("edge-1", 0, 1), ("edge-2", 0, 1)]
    assert held.holding is not None and held.holding["nodes"] == {"edge-1": [P2], "edge-2": [P2]}
    assert not held.placement_changed and held.remove_from == frozenset()
    for node in ("edge-1", "edge-2"):
        slice_ = held.writes[node]
        assert slice_.generation == 1 and [c.artifact for c in slice_.components] == [P1], "the old one keeps serving"
        assert [c.artifact for c in slice_.prefetch] == [P2] and slice_.prefetch_generation == 2
        assert slice_.prefetch_since == 100.0
    assert "cloud-1" not in held.writes, "a node with nothing new to fetch is left alone"

    # One edge has it ready, the other not: still held, and nothing more is written.
    world = replace(_stored(world, held), now=130.0, prefetched={"edge-1": frozenset({P2})})
    again, rollout = gate(plan(world)[0][0], world, RolloutSpec())
    assert rollout is not None and rollout.held and again.writes == {}
    assert [(n.node, n.ready) for n in rollout.nodes] == [("edge-1", 1), ("edge-2", 0)]
    assert rollout.since == 100.0, "the prefetch keeps the time it began"

    # Both ready: the plan as computed goes out, to every node in the same pass.
    world = replace(world, prefetched={"edge-1": frozenset({P2}), "edge-2": frozenset({P2})})
    computed = plan(world)[0][0]
    released, rollout = gate(computed, world, RolloutSpec())
    assert released is computed and rollout is not None and not rollout.held and rollout.late == []
    assert {n: [c.artifact for c in a.components] for n, a in released.writes.items() if n.startswith("edge")} == {
        "edge-1": [P2],
        "edge-2": [P2],
    }
    assert all(a.prefetch == () for a in released.writes.values())


def test_the_rollout_goes_ahead_without_a_node_that_fails_is_unreachable_or_outlasts_the_timeout() -> None:
    world, computed = _applied(_deployed(), P2, rollout={"prefetchTimeout": "30s"})
    held, _ = gate(computed, world, world.apps["logs"].spec.rollout)
    world = _stored(world, held)

    failing = replace(
        world, now=101.0, prefetched={"edge-1": frozenset({P2})}, prefetch_failed={"edge-2": {P2: "no space left"}}
    )
    released, rollout = gate(plan(failing)[0][0], failing, failing.apps["logs"].spec.rollout)
    assert rollout is not None and not rollout.held and released.holding is None
    assert [(n.node, n.failed) for n in rollout.late] == [("edge-2", f"{P2[:19]}: no space left")]

    gone = replace(world, now=101.0, prefetched={"edge-1": frozenset({P2})}, unreachable_since={"edge-2": 90.0})
    _, rollout = gate(plan(gone)[0][0], gone, gone.apps["logs"].spec.rollout)
    assert rollout is not None and not rollout.held, "an unreachable node is not waited for"

    waiting = replace(world, now=129.9)
    _, rollout = gate(plan(waiting)[0][0], waiting, waiting.apps["logs"].spec.rollout)
    assert rollout is not None and rollout.held and rollout.deadline == 130.0
    late = replace(world, now=130.0)
    _, rollout = gate(plan(late)[0][0], late, late.apps["logs"].spec.rollout)
    assert rollout is not None and not rollout.held and len(rollout.late) == 2


def test_what_is_never_held() -> None:
    deployed = _deployed()
    # A first deployment: nothing serves yet.
    first = replace(deployed, assigned={})
    (computed,), _ = plan(first)
    assert gate(computed, first, RolloutSpec()) == (computed, None)
    # A new generation whose artifacts every node runs already (a config change, say).
    world, computed = _applied(deployed, P1)
    assert gate(computed, world, RolloutSpec()) == (computed, None)
    # Prefetch turned off.
    world, computed = _applied(deployed, P2, rollout={"prefetch": False})
    assert gate(computed, world, world.apps["logs"].spec.rollout) == (computed, None)
    # A move at the same generation (a node lost): the plan goes out as computed.
    lost = replace(deployed, nodes={n: i for n, i in NODES.items() if n != "edge-2"})
    (computed,), _ = plan(lost)
    assert gate(computed, lost, RolloutSpec()) == (computed, None)


def test_a_component_moving_to_a_new_node_keeps_running_where_it_was_until_the_new_node_is_ready() -> None:
    deployed = _deployed()
    # A third edge joins, and generation 2 moves the parser's replicas (a new version) wherever placement puts them.
    edge3 = NodeInfo("edge-3", {"tier": "edge"}, "10.0.0.4:7500")
    world, computed = _applied(deployed, P2, nodes={**NODES, "edge-3": edge3})
    held, rollout = gate(computed, world, RolloutSpec())
    assert rollout is not None and rollout.held
    for node, slice_ in held.assignments.items():
        before = deployed.assigned["logs"].get(node)
        now = slice_.to_dict()
        assert now["components"] == (before["components"] if before else []), f"{node} changed what it runs"
    assert {n for n, a in held.assignments.items() if a.prefetch} <= {"edge-1", "edge-2", "edge-3"}


def test_manifest_rollout_settings_are_checked() -> None:
    import pytest

    from neon.errors import InvalidManifest

    assert _spec(P1).rollout == RolloutSpec()
    assert _spec(P1, {"prefetchTimeout": "2m"}).rollout.prefetch_timeout == 120.0
    for bad, field in (
        ({"prefetch": "yes"}, "spec.rollout.prefetch"),
        ({"prefetchTimeout": "0s"}, "spec.rollout.prefetchTimeout"),
        ({"wait": 1}, "spec.rollout"),
    ):
        with pytest.raises(InvalidManifest) as err:
            _spec(P1, bad)
        assert err.value.attrs.get("field", "").startswith(field), err.value.attrs
    assert Assignment.from_dict(Assignment("a", 1).to_dict()) == Assignment("a", 1)
