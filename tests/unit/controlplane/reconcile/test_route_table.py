"""The cluster's HTTP route table: routes with the nodes that run their components, and a version that moves
only when the table does."""

from __future__ import annotations

from controlplane.reconcile.route_table import RouteEntry, route_table
from controlplane.state.world import AppRecord, World
from neon import manifest
from neon.model import NodeInfo

DIGEST = "sha256:" + "ab" * 32


def _world(placed: tuple[str, ...], unreachable: dict[str, float] | None = None) -> World:
    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": manifest.KIND,
            "metadata": {"name": "shop"},
            "spec": {
                "components": [
                    {"name": "web", "artifact": DIGEST, "http": {"routes": ["/shop/...", "/cart"]}},
                    {"name": "db", "artifact": DIGEST},
                ]
            },
        }
    )
    nodes = {n: NodeInfo(name=n, labels={}, dataplane_address=f"{n}:7500") for n in ("a", "b")}
    return World(
        apps={"shop": AppRecord(spec=spec, generation=1, created_at=0, updated_at=0)},
        nodes=nodes,
        placements={"shop": {"web": placed, "db": ("a",)}},
        unreachable_since=unreachable or {},
    )


def test_each_route_names_where_it_runs() -> None:
    version, entries = route_table(_world(("a", "b")))
    assert entries == (
        RouteEntry("/shop/...", "shop", "web", ("a", "b"), ("a:7500", "b:7500")),
        RouteEntry("/cart", "shop", "web", ("a", "b"), ("a:7500", "b:7500")),
    )
    assert route_table(_world(("a", "b")))[0] == version
    moved, _ = route_table(_world(("b",)))
    assert moved != version
    _, without = route_table(_world(("a", "b"), unreachable={"b": 1.0}))
    assert without[0].nodes == ("a",)  # an Unreachable node serves nothing
