"""Each placement policy, pure and exact: filters, scorers, links, spread, explanations."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.placement import NodeView, Placer, place
from neon import manifest
from neon.errors import InvalidManifest
from neon.policy import parse_taint

D = "sha256:" + "00" * 32


def app(*components: dict[str, Any], links: list[dict[str, Any]] | None = None) -> manifest.AppSpec:
    comps = [{"artifact": D, **c} for c in components]
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "demo"},
            "spec": {"components": comps, "links": links or []},
        }
    )


def node(name: str, **labels: str) -> NodeView:
    return NodeView(name, dict(labels))


def test_required_expressions() -> None:
    nodes = [node("a", zone="x", gpu="yes"), node("b", zone="y"), node("c", zone="z"), node("d")]
    spec = app(
        {
            "name": "c1",
            "placement": {
                "required": [
                    {"key": "zone", "operator": "In", "values": ["y", "z"]},
                    {"key": "gpu", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "NotIn", "values": ["z"]},
                    {"key": "zone", "operator": "Exists"},
                ]
            },
        }
    )
    assert place(spec, nodes).nodes_of("c1") == ("b",)
    blocked = place(
        app(
            {
                "name": "c1",
                "placement": {"required": [{"key": "gpu", "operator": "Exists"}], "nodeSelector": {"zone": "y"}},
            }
        ),
        nodes,
    )
    assert blocked.components["c1"].reason == "0/4 nodes: 2 zone!=y, 1 no label gpu, 1 no label zone"


def test_preferred_labels_weigh_in() -> None:
    nodes = [node("a", zone="x"), node("b", zone="y", ssd="yes"), node("c", zone="y")]
    spec = app(
        {
            "name": "c1",
            "placement": {
                "preferred": [
                    {"weight": 10, "key": "zone", "operator": "In", "values": ["y"]},
                    {"weight": 90, "key": "ssd", "operator": "Exists"},
                ]
            },
        }
    )
    assert place(spec, nodes).nodes_of("c1") == ("b",)


def test_taints_repel_unless_tolerated() -> None:
    tainted = NodeView("a", {}, taints=(parse_taint("dedicated=edge:NoSchedule"),))
    soft = NodeView("b", {}, taints=(parse_taint("busy:PreferNoSchedule"),))
    plain = node("c")
    result = place(app({"name": "c1", "replicas": 3}), [tainted, soft, plain])
    assert result.nodes_of("c1") == ("c", "b")  # PreferNoSchedule ranks last; NoSchedule never
    assert result.components["c1"].reason.endswith(
        "0/3 nodes: 2 runs another replica, 1 taint dedicated=edge:NoSchedule"
    )
    tolerant = app(
        {
            "name": "c1",
            "placement": {
                "nodeSelector": {},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}],
            },
        }
    )
    assert place(tolerant, [tainted]).nodes_of("c1") == ("a",)
    wrong_value = app({"name": "c1", "placement": {"tolerations": [{"key": "dedicated", "value": "cloud"}]}})
    assert place(wrong_value, [tainted]).nodes_of("c1") == ()


def test_capacity_and_capabilities() -> None:
    small = NodeView("small", memory_bytes=256 << 20, instance_slots=4, capabilities=frozenset({"volumes"}))
    big = NodeView("big", memory_bytes=8 << 30, instance_slots=1)
    hungry = app({"name": "c1", "runtime": {"memory": "512Mi"}})
    assert place(hungry, [small, big]).nodes_of("c1") == ("big",)
    wide = app({"name": "c1", "runtime": {"instances": 2, "memory": "1Mi"}})
    assert place(wide, [small, big]).nodes_of("c1") == ("small",)
    assert place(wide, [big]).components["c1"].reason == "0/1 nodes: 1 no free instance slots"
    volumes = app({"name": "c1", "grants": {"volumes": [{"name": "v", "path": "/v"}]}})
    assert place(volumes, [small, big]).nodes_of("c1") == ("small",)
    assert place(volumes, [big]).components["c1"].reason == "0/1 nodes: 1 missing capability volumes"
    explicit = app({"name": "c1", "placement": {"capabilities": ["gpu"]}})
    assert place(explicit, [small, big]).components["c1"].reason == "0/2 nodes: 2 missing capability gpu"


def test_memory_is_accounted_across_components() -> None:
    box = NodeView("box", memory_bytes=600 << 20)
    other = NodeView("other", memory_bytes=600 << 20)
    spec = app(*({"name": f"c{i}", "runtime": {"memory": "256Mi"}} for i in range(4)))
    result = place(spec, [box, other])
    assert sorted(n for c in ("c0", "c1", "c2", "c3") for n in result.nodes_of(c)) == ["box", "box", "other", "other"]


def test_affinity_and_anti_affinity() -> None:
    nodes = [node("a"), node("b"), node("c")]
    spec = app(
        {"name": "web", "placement": {"affinity": [{"component": "cache"}]}},
        {"name": "cache"},
        {"name": "batch", "placement": {"antiAffinity": [{"component": "cache"}]}},
        {"name": "log", "placement": {"affinity": [{"component": "batch", "type": "preferred", "weight": 100}]}},
    )
    result = place(spec, nodes)
    assert result.nodes_of("web") == result.nodes_of("cache")
    assert result.nodes_of("batch") != result.nodes_of("cache")
    assert result.nodes_of("log") == result.nodes_of("batch")
    # anti-affinity holds in both directions: the cache avoids nodes running batch too
    reverse = app(
        {"name": "batch"},
        {"name": "cache", "placement": {}},
        {"name": "x", "placement": {"antiAffinity": [{"component": "batch"}]}},
    )
    both = place(reverse, [node("a")])
    assert both.nodes_of("x") == () and both.components["x"].reason == "0/1 nodes: 1 runs batch (anti-affinity)"


LINK = {"importer": "processor", "import": "cyber-systems:logs/parser@0.1.0", "exporter": "parser"}


def test_link_colocation_policies() -> None:
    nodes = [node("a", tier="edge"), node("b", tier="edge"), node("c", tier="cloud")]
    edge = {"nodeSelector": {"tier": "edge"}}
    together = app(
        {"name": "processor"}, {"name": "parser", "placement": edge}, links=[{**LINK, "colocate": "required"}]
    )
    result = place(together, nodes)
    assert result.nodes_of("processor") == result.nodes_of("parser") == ("a",)
    apart = app(
        {"name": "processor", "placement": edge},
        {"name": "parser", "placement": edge},
        links=[{**LINK, "colocate": "never"}],
    )
    result = place(apart, nodes)
    assert result.nodes_of("processor") != result.nodes_of("parser")
    default = app({"name": "processor", "placement": edge}, {"name": "parser", "placement": edge}, links=[LINK])
    result = place(default, nodes)  # link cost beats balance: a linked pair lands together
    assert result.nodes_of("processor") == result.nodes_of("parser")


def test_latency_budget_and_measured_rtts() -> None:
    edge = NodeView("edge", {"tier": "edge"}, rtt_ms={"near": 2.0, "far": 40.0})
    near, far = NodeView("near", {"tier": "cloud"}), NodeView("far", {"tier": "cloud"})
    spec = app(
        {"name": "parser", "placement": {"nodeSelector": {"tier": "edge"}}},
        {"name": "processor", "placement": {"nodeSelector": {"tier": "cloud"}}},
        links=[{**LINK, "latencyBudget": "10ms"}],
    )
    assert place(spec, [edge, near, far]).nodes_of("processor") == ("near",)
    no_budget = app(
        {"name": "parser", "placement": {"nodeSelector": {"tier": "edge"}}},
        {"name": "processor", "placement": {"nodeSelector": {"tier": "cloud"}}},
        links=[LINK],
    )
    far_only = [edge, far]
    assert place(no_budget, far_only).nodes_of("processor") == ("far",)
    blocked = place(spec, far_only).components["processor"]
    assert blocked.reason == "0/2 nodes: 1 rtt to parser 40ms > budget 10ms, 1 tier!=cloud"


def test_call_rates_decide_which_pair_is_fused() -> None:
    # One slot per node after the hub: the chattier link wins the seat next to the hub.
    hub = NodeView("hub", instance_slots=2)
    others = [NodeView(f"n{i}", instance_slots=4) for i in range(2)]
    links = [
        {"importer": "quiet", "import": "a:b/quiet", "exporter": "hub"},
        {"importer": "chatty", "import": "a:b/chatty", "exporter": "hub"},
    ]
    spec = app({"name": "hub", "placement": {"nodeSelector": {}}}, {"name": "quiet"}, {"name": "chatty"}, links=links)
    result = place(spec, [hub, *others], call_rates={("quiet", "hub"): 1.0, ("chatty", "hub"): 500.0})
    assert result.nodes_of("hub") == ("hub",)
    assert result.nodes_of("chatty") == ("hub",) and result.nodes_of("quiet") != ("hub",)


def test_topology_spread() -> None:
    nodes = [node(f"{z}{i}", zone=z) for z in ("x", "y") for i in range(3)] + [node("nolabel")]
    spread = app({"name": "c1", "replicas": 4, "placement": {"spread": {"topologyKey": "zone", "maxSkew": 1}}})
    result = place(spread, nodes)
    zones = sorted(n[0] for n in result.nodes_of("c1"))
    assert zones == ["x", "x", "y", "y"]
    lopsided = [node("x0", zone="x"), node("x1", zone="x"), node("y0", zone="y")]
    strict = app({"name": "c1", "replicas": 3, "placement": {"spread": {"topologyKey": "zone", "maxSkew": 1}}})
    assert place(strict, lopsided).nodes_of("c1") == ("x0", "y0", "x1")
    capped = app({"name": "c1", "replicas": 4, "placement": {"spread": {"topologyKey": "zone", "maxSkew": 1}}})
    assert place(capped, lopsided).components["c1"].reason.startswith("3/4 replicas placed")
    anyway = app(
        {
            "name": "c1",
            "replicas": 3,
            "placement": {"spread": {"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}},
        }
    )
    # ScheduleAnyway: an unlabeled node is allowed but ranks below the emptier zone.
    assert place(anyway, [*lopsided, node("nolabel")]).nodes_of("c1") == ("x0", "y0", "x1")


def test_stability_and_violations() -> None:
    spec = app({"name": "c1", "placement": {"nodeSelector": {"tier": "edge"}}})
    before = place(spec, [node("m", tier="edge")])
    joined = place(spec, [node("a", tier="edge"), node("m", tier="edge")], current={"c1": before.nodes_of("c1")})
    assert joined.nodes_of("c1") == ("m",)
    relabeled = place(spec, [node("a", tier="edge"), node("m", tier="cloud")], current={"c1": ("m",)})
    assert relabeled.nodes_of("c1") == ("a",)  # the policy is violated now: it moves


def test_deterministic_for_the_same_input() -> None:
    nodes = [node(f"n{i}", zone=f"z{i % 3}") for i in range(12)]
    spec = app(*({"name": f"c{i}", "replicas": 2, "placement": {"spread": {"topologyKey": "zone"}}} for i in range(6)))
    assert place(spec, nodes) == place(spec, list(reversed(nodes)))


def test_explanation_lists_every_node() -> None:
    nodes = [node("a", tier="edge"), node("b", tier="cloud"), node("c", tier="edge")]
    spec = app({"name": "c1", "placement": {"nodeSelector": {"tier": "edge"}}})
    decision = place(spec, nodes, explain=True).components["c1"]
    by_node = {e.node: e for e in decision.explanation}
    assert by_node["b"].rejected_by == "node-selector" and by_node["b"].reason == "tier!=edge"
    assert by_node["a"].chosen and not by_node["c"].chosen
    assert by_node["a"].scores["balance"] == 1.0 and by_node["a"].total == by_node["c"].total
    assert place(spec, nodes).components["c1"].explanation == ()


def test_weights_come_from_configuration() -> None:
    nodes = [NodeView("busy", instances=5, rtt_ms={}), NodeView("idle")]
    spec = app({"name": "c1"})
    assert place(spec, nodes, current={"c1": ("busy",)}).nodes_of("c1") == ("busy",)
    no_sticky = Placer(weights={"sticky": 0.0})
    assert place(spec, nodes, current={"c1": ("busy",)}, placer=no_sticky).nodes_of("c1") == ("idle",)
    with pytest.raises(ValueError, match="unknown scorer weights: stickiness"):
        Placer(weights={"stickiness": 1.0})


@pytest.mark.parametrize(
    ("placement", "field", "words"),
    [
        ({"required": [{"key": "zone", "operator": "Near", "values": ["x"]}]}, "required[0].operator", "one of"),
        ({"required": [{"key": "zone", "operator": "In"}]}, "required[0].values", "at least one value"),
        ({"required": [{"key": "zone", "operator": "Exists", "values": ["x"]}]}, "required[0].values", "no values"),
        ({"preferred": [{"weight": 0, "key": "a", "operator": "Exists"}]}, "preferred[0].weight", "1 to 100"),
        ({"tolerations": [{"key": "k", "effect": "Evict"}]}, "tolerations[0].effect", "NoExecute"),
        (
            {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
            "tolerations[0].tolerationSeconds",
            "needs effect: NoExecute",
        ),
        (
            {"tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": -1}]},
            "tolerations[0].tolerationSeconds",
            ">= 0",
        ),
        ({"affinity": [{"component": "ghost"}]}, "affinity[0].component", "not a component"),
        ({"affinity": [{"component": "b"}], "antiAffinity": [{"component": "b"}]}, "antiAffinity", "both"),
        ({"spread": {"topologyKey": "zone", "maxSkew": 0}}, "spread.maxSkew", ">= 1"),
        (
            {"nodeSelector": {"zone": "x"}, "required": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]},
            "required",
            "contradicts",
        ),
        ({"capabilities": ["GPU!"]}, "capabilities[0]", "capability name"),
    ],
)
def test_policy_errors_name_the_field(placement: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidManifest) as err:
        app({"name": "a", "placement": placement}, {"name": "b"})
    assert err.value.field == f"spec.components[0].placement.{field}"
    assert words in err.value.message


def test_impossible_link_policies_are_refused() -> None:
    with pytest.raises(InvalidManifest) as err:
        app(
            {"name": "processor", "placement": {"antiAffinity": [{"component": "parser"}]}},
            {"name": "parser"},
            links=[{**LINK, "colocate": "required"}],
        )
    assert err.value.field == "spec.links[0].colocate" and "anti-affinity" in err.value.message
    with pytest.raises(InvalidManifest, match="colocate must be one of"):
        app({"name": "processor"}, {"name": "parser"}, links=[{**LINK, "colocate": "sometimes"}])
    with pytest.raises(InvalidManifest, match="duration"):
        app({"name": "processor"}, {"name": "parser"}, links=[{**LINK, "latencyBudget": "fast"}])
    with pytest.raises(InvalidManifest, match="affinity to itself"):
        app({"name": "a", "placement": {"affinity": [{"component": "a"}]}})


def test_policies_round_trip_through_yaml() -> None:
    spec = app(
        {
            "name": "processor",
            "replicas": 2,
            "placement": {
                "nodeSelector": {"tier": "cloud"},
                "required": [{"key": "zone", "operator": "In", "values": ["x", "y"]}],
                "preferred": [{"weight": 5, "key": "ssd", "operator": "Exists"}],
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                "affinity": [{"component": "parser", "type": "preferred", "weight": 7}],
                "antiAffinity": [],
                "spread": {"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "ScheduleAnyway"},
                "capabilities": ["volumes"],
            },
        },
        {"name": "parser"},
        links=[{**LINK, "colocate": "preferred", "latencyBudget": "5ms"}],
    )
    assert manifest.load(spec.to_yaml()) == spec


def test_masks_and_reasons_agree_on_every_node() -> None:
    """The vectorised masks (placement) and the scalar reasons (explanations) never disagree."""
    import random

    from controlplane.placement import NodeTable, default_filters
    from controlplane.placement._types import PlacementContext

    rng = random.Random(3)
    nodes = [
        NodeView(
            f"n{i:03d}",
            {
                k: v
                for k, v in (
                    ("tier", rng.choice(["edge", "cloud"])),
                    ("zone", rng.choice(["a", "b", "c"])),
                    ("ssd", "yes"),
                )
                if rng.random() < 0.8
            },
            taints=(parse_taint("dedicated=x:NoSchedule"),) if rng.random() < 0.2 else (),
            capabilities=frozenset({"volumes"}) if rng.random() < 0.7 else frozenset(),
            memory_bytes=rng.choice([0, 300 << 20, 1 << 30]),
            instance_slots=rng.choice([0, 1, 3]),
            rtt_ms={f"n{rng.randrange(60):03d}": rng.uniform(0.1, 30.0)},
        )
        for i in range(60)
    ]
    spec = app(
        {
            "name": "a",
            "replicas": 3,
            "placement": {"nodeSelector": {"tier": "edge"}, "spread": {"topologyKey": "zone", "maxSkew": 1}},
        },
        {
            "name": "b",
            "placement": {
                "required": [{"key": "zone", "operator": "NotIn", "values": ["c"]}],
                "antiAffinity": [{"component": "a"}],
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            },
        },
        {
            "name": "c",
            "replicas": 2,
            "grants": {"volumes": [{"name": "v", "path": "/v"}]},
            "runtime": {"memory": "200Mi"},
            "placement": {"affinity": [{"component": "b", "type": "preferred"}]},
        },
        {"name": "d", "placement": {"required": [{"key": "ssd", "operator": "Exists"}]}},
        links=[
            {"importer": "b", "import": "x:y/z", "exporter": "a", "latencyBudget": "10ms"},
            {"importer": "c", "import": "x:y/w", "exporter": "d", "colocate": "never"},
        ],
    )
    table = NodeTable(nodes)
    ctx = PlacementContext(app=spec, table=table, current={}, call_rates={})
    filters = default_filters()
    checked = 0
    for comp in spec.components:  # walk a placement, checking every filter on every node at every step
        chosen: list[int] = []
        ctx.placed[comp.name] = chosen
        for _ in range(comp.replicas):
            eligible = [True] * table.size
            for filt in filters:
                mask = filt.mask(comp, ctx)
                for i in range(table.size):
                    assert bool(mask[i]) == (filt.why(comp, ctx, i) is None), (filt.name, comp.name, table.names[i])
                    eligible[i] = eligible[i] and bool(mask[i])
                    checked += 1
            if not any(eligible):
                break
            best = eligible.index(True)
            chosen.append(best)
            table.take(best, float(comp.runtime.memory_bytes), float(comp.runtime.instances))
    assert checked > 2000
