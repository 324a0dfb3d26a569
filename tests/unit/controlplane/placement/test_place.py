"""Placement is pure: filters with reasons, weighted scorers, stable results."""

from __future__ import annotations

from controlplane.placement import NodeView, place
from neon.manifest import AppSpec, ComponentSpec, PlacementSpec

DIGEST = "sha256:" + "00" * 32


def _app(*comps: ComponentSpec) -> AppSpec:
    return AppSpec(name="app", components=tuple(comps))


def _comp(name: str, replicas: int = 1, **selector: str) -> ComponentSpec:
    return ComponentSpec(name=name, artifact=DIGEST, replicas=replicas, placement=PlacementSpec(dict(selector)))


NODES = [
    NodeView("cloud-1", {"tier": "cloud"}),
    NodeView("edge-1", {"tier": "edge"}),
    NodeView("edge-2", {"tier": "edge"}),
    NodeView("bare"),
]


def test_node_selector_and_reasons() -> None:
    result = place(_app(_comp("parser", tier="edge"), _comp("gpu", tier="gpu")), NODES)
    assert result.nodes_of("parser") == ("edge-1",)
    gpu = result.components["gpu"]
    assert gpu.nodes == ()
    assert gpu.reason == "0/4 nodes: 3 tier!=gpu, 1 no label tier"
    assert gpu.filtered == {"node-selector": 4}


def test_replicas_spread_over_distinct_nodes_and_report_shortfall() -> None:
    result = place(_app(_comp("parser", replicas=3, tier="edge")), NODES)
    assert result.nodes_of("parser") == ("edge-1", "edge-2")
    reason = result.components["parser"].reason
    assert reason == "2/3 replicas placed; 0/4 nodes: 2 runs another replica, 1 no label tier, 1 tier!=edge"


def test_spread_prefers_less_loaded_nodes() -> None:
    result = place(_app(_comp("a", tier="edge"), _comp("b", tier="edge")), NODES)
    assert (result.nodes_of("a"), result.nodes_of("b")) == (("edge-1",), ("edge-2",))
    loaded = [NodeView("edge-1", {"tier": "edge"}, instances=5), NodeView("edge-2", {"tier": "edge"}, instances=1)]
    assert place(_app(_comp("a", tier="edge")), loaded).nodes_of("a") == ("edge-2",)


def test_sticky_keeps_current_placement_when_a_node_joins() -> None:
    before = place(_app(_comp("a")), [NodeView("n2")])
    assert before.nodes_of("a") == ("n2",)
    after = place(_app(_comp("a")), [NodeView("n1"), NodeView("n2")], current={"a": ["n2"]})
    assert after.nodes_of("a") == ("n2",)


def test_deterministic_and_inputs_untouched() -> None:
    nodes = [NodeView(f"n{i}", {"tier": "edge"}) for i in range(5)]
    app = _app(*(_comp(f"c{i}", tier="edge") for i in range(7)))
    first = place(app, list(reversed(nodes)))
    assert first == place(app, nodes)
    assert all(n.instances == 0 for n in nodes)
    assert sorted(first.nodes_of(f"c{i}")[0] for i in range(5)) == [f"n{i}" for i in range(5)]


def test_a_class_based_answer_is_made_once_per_table_and_kept_read_only() -> None:
    """10,000 components of a few hundred kinds ask the same class-based questions: each is answered once
    per placement run, and no plugin can change an answer another reads."""
    import numpy as np
    import pytest

    from controlplane.placement._types import NodeTable, PlacementContext
    from controlplane.placement.node_selector import NodeSelectorFilter

    table = NodeTable(NODES)
    asked: list[str] = []
    first = table.per_class("k", lambda c: asked.append(c.labels.get("tier", "")) or True, bool)
    again = table.per_class("k", lambda c: asked.append("again") or True, bool)
    assert again is first and "again" not in asked and len(asked) == len(table.classes)
    with pytest.raises(ValueError):
        first[0] = False
    app = _app(_comp("a", tier="edge"), _comp("b", tier="edge"), _comp("c", tier="cloud"))
    ctx = PlacementContext(app=app, table=table, current={}, call_rates={})
    masks = [NodeSelectorFilter().mask(comp, ctx) for comp in app.components]
    assert masks[0] is masks[1] and masks[0] is not masks[2]
    assert [table.names[i] for i in np.flatnonzero(masks[0])] == ["edge-1", "edge-2"]
    assert [table.names[i] for i in np.flatnonzero(masks[2])] == ["cloud-1"]
