"""What heartbeats answer, from the read mirror: the route table and the peers, made again only when a table
changed, and the leader's last pass while the mirror is not open."""

from __future__ import annotations

import asyncio
from typing import Any

from controlplane.api.beats import PEERS_LIMIT, Beats
from controlplane.state.mirror import View
from controlplane.state.world import AppRecord
from neon import manifest
from neon.model import NodeInfo

P = "sha256:" + "33" * 32


class _Mirror:
    """The mirror's surface Beats reads: open, changes, now() (the copy itself, read without awaiting)."""

    def __init__(self, view: View) -> None:
        self.open = True
        self.changes = 1
        self.current = view
        self.views = 0

    def now(self) -> View:
        self.views += 1
        return self.current


class _Loop:
    routes_version = "from-the-leader"
    routes = ()

    def peers_of(self, node: str, limit: int) -> list[NodeInfo]:
        return [NodeInfo(name="leader-said", labels={}, dataplane_address="x:1")]


def _app() -> AppRecord:
    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "web"},
            "spec": {
                "components": [
                    {"name": "front", "artifact": P, "http": {"routes": ["/shop/..."]}},
                    {"name": "back", "artifact": P},
                ],
                "links": [{"importer": "front", "import": "acme:shop/back@1.0.0", "exporter": "back"}],
            },
        }
    )
    return AppRecord(spec=spec, generation=1, created_at=0.0, updated_at=0.0)


def _view(nodes: int, unreachable: tuple[str, ...] = ()) -> View:
    infos = {
        f"n{i:03d}": NodeInfo(name=f"n{i:03d}", labels={}, dataplane_address=f"10.0.0.{i}:7500") for i in range(nodes)
    }
    members = {name: (info, 0.0) for name, info in infos.items()}
    live = {name: info for name, info in infos.items() if name not in unreachable}
    placement = {"components": {"front": {"nodes": ["n000", "n001"]}, "back": {"nodes": ["n002"]}}}
    return View(
        apps={"web": _app()}, nodes=live, members=members, placements={"web": placement}, status={}, leader=None
    )


def _answers(beats: Beats, node: str) -> Any:
    return asyncio.run(beats.answers(node))


def test_the_route_table_and_peers_come_from_the_mirror_and_are_made_once_per_change() -> None:
    mirror = _Mirror(_view(5, unreachable=("n001",)))
    beats = Beats(mirror, _Loop())  # type: ignore[arg-type]
    peers, version, routes = _answers(beats, "n000")
    assert [p.name for p in peers] == ["n002", "n003", "n004"], "every other live node in a small cluster"
    (entry,) = routes
    assert (entry.route, entry.component, entry.nodes, entry.endpoints) == (
        "/shop/...",
        "front",
        ("n000",),
        ("10.0.0.0:7500",),
    ), "an Unreachable node serves nothing"
    assert _answers(beats, "n002")[1] == version and mirror.views == 1, "no table changed: nothing made again"
    mirror.current, mirror.changes = _view(5), 2
    _, again, routes = _answers(beats, "n000")
    assert again != version and routes[0].nodes == ("n000", "n001") and mirror.views == 2


def test_a_large_cluster_measures_only_where_its_links_go() -> None:
    beats = Beats(_Mirror(_view(PEERS_LIMIT + 10)), _Loop())  # type: ignore[arg-type]
    assert [p.name for p in _answers(beats, "n000")[0]] == ["n002"], "front on n000 forwards to back on n002"
    assert _answers(beats, "n050")[0] == [], "a node running nothing linked measures no one"


def test_a_change_in_a_large_cluster_is_answered_without_walking_its_nodes() -> None:
    """Each registration changes the copy; with thousands of nodes, a walk of them per change was the control
    plane's largest cost under many agents. The nodes table handed over is never iterated."""

    class _Unwalkable(dict[str, NodeInfo]):
        def __iter__(self) -> Any:
            raise AssertionError("the nodes were walked")

        def items(self) -> Any:
            raise AssertionError("the nodes were walked")

        def values(self) -> Any:
            raise AssertionError("the nodes were walked")

    view = _view(PEERS_LIMIT + 10)
    mirror = _Mirror(View(**{**view.__dict__, "nodes": _Unwalkable(view.nodes)}))
    beats = Beats(mirror, _Loop())  # type: ignore[arg-type]
    peers, _, routes = _answers(beats, "n000")
    assert [p.name for p in peers] == ["n002"] and routes[0].nodes == ("n000", "n001")


def test_the_leaders_pass_answers_while_the_mirror_is_not_open() -> None:
    mirror = _Mirror(_view(3))
    mirror.open = False
    peers, version, _ = _answers(Beats(mirror, _Loop()), "n000")  # type: ignore[arg-type]
    assert ([p.name for p in peers], version, mirror.views) == (["leader-said"], "from-the-leader", 0)
