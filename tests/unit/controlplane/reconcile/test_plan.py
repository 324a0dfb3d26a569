"""The reconciler's pure planning and the status it implies."""

from __future__ import annotations

from controlplane.placement import NodeView, place
from controlplane.reconcile.plan import plan, slice_graph
from controlplane.state.world import AppRecord, World
from neon import manifest
from neon.model import NodeInfo

P = "sha256:" + "11" * 32
Q = "sha256:" + "22" * 32
PARSE = "cyber-systems:logs/parser@0.1.0"


def _spec(processor_tier: str = "cloud") -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "logs"},
            "spec": {
                "components": [
                    {"name": "parser", "artifact": P, "placement": {"nodeSelector": {"tier": "edge"}}},
                    {"name": "processor", "artifact": Q, "placement": {"nodeSelector": {"tier": processor_tier}}},
                ],
                "links": [{"importer": "processor", "import": PARSE, "exporter": "parser"}],
            },
        }
    )


NODES = {
    "edge-1": NodeInfo("edge-1", {"tier": "edge"}, "10.0.0.1:7500"),
    "cloud-1": NodeInfo("cloud-1", {"tier": "cloud"}, "10.0.0.2:7500"),
}


def _record(spec: manifest.AppSpec, generation: int = 1) -> AppRecord:
    return AppRecord(spec=spec, generation=generation, created_at=1.0, updated_at=1.0, revision=7)


def test_split_link_carries_the_exporters_endpoints() -> None:
    spec = _spec()
    placement = place(spec, [NodeView(n, dict(i.labels)) for n, i in NODES.items()])
    slices = slice_graph(spec, 3, placement, NODES)
    assert sorted(slices) == ["cloud-1", "edge-1"]
    (proc,) = slices["cloud-1"].components
    assert proc.name == "processor" and proc.artifact == Q
    (binding,) = proc.imports
    assert (binding.import_name, binding.component, binding.local, binding.endpoints) == (
        PARSE,
        "parser",
        False,
        ("10.0.0.1:7500",),
    )
    assert slices["edge-1"].components[0].imports == ()
    assert slices["edge-1"].generation == 3
    # Only the node that imports the parser across nodes may call it; nobody calls the processor.
    assert slices["edge-1"].components[0].callers == ("cloud-1",) and proc.callers == ()


def test_colocated_link_is_local() -> None:
    spec = _spec(processor_tier="edge")
    placement = place(spec, [NodeView(n, dict(i.labels)) for n, i in NODES.items()])
    slices = slice_graph(spec, 1, placement, NODES)
    assert list(slices) == ["edge-1"]
    proc = {c.name: c for c in slices["edge-1"].components}["processor"]
    assert proc.imports[0].local and proc.imports[0].endpoints == ()
    assert all(c.callers == () for c in slices["edge-1"].components)  # no call crosses nodes


def test_plan_writes_only_what_changed_and_cleans_up_orphans() -> None:
    spec = _spec()
    world = World(apps={"logs": _record(spec)}, nodes=NODES, placements={})
    (first,), orphans = plan(world)
    assert first.changed and set(first.writes) == {"edge-1", "cloud-1"} and orphans == []

    stored = World(
        apps={"logs": _record(spec)},
        nodes=NODES,
        placements={"logs": {"parser": ("edge-1",), "processor": ("cloud-1",)}},
        assigned={"logs": {n: a.to_dict() for n, a in first.assignments.items()}, "gone": {"edge-1": {}}},
    )
    (again,), orphans = plan(stored)
    assert not again.changed
    assert orphans == [("gone", frozenset({"edge-1"}))]

    # The edge node dies: parser is unschedulable, the processor's route empties.
    lost = World(
        apps=stored.apps,
        nodes={"cloud-1": NODES["cloud-1"]},
        placements=stored.placements,
        assigned={"logs": stored.assigned["logs"]},
    )
    (after,), _ = plan(lost)
    assert after.placement.nodes_of("parser") == ()
    assert after.remove_from == frozenset({"edge-1"})
    assert after.writes["cloud-1"].components[0].imports[0].endpoints == ()
