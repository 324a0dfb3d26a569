"""Answers to reads are made once per state of the read mirror, and never kept when they could be stale."""

from __future__ import annotations

from controlplane.api.queries import Queries
from controlplane.state.mirror import View
from neon.model import NodeInfo


def _view(stamp: int, unreachable_since: float | None = None) -> View:
    node = NodeInfo(name="n1", labels={}, dataplane_address="10.0.0.1:7500")
    members = {"n1": (node, 0.0)}
    if unreachable_since is not None:
        lost = NodeInfo(name="n2", labels={}, dataplane_address="10.0.0.2:7500")
        members["n2"] = (lost, unreachable_since)
    return View(apps={}, nodes={"n1": node}, members=members, placements={}, status={}, leader=None, stamp=stamp)


def test_an_answer_is_made_once_per_stamp() -> None:
    reads = Queries(store=None, mirror=None)  # type: ignore[arg-type]
    made: list[int] = []

    def make() -> list[int]:
        made.append(len(made))
        return [len(made)]

    first = reads.memo("nodes", _view(5), make)
    assert reads.memo("nodes", _view(5), make) is first and made == [0]
    assert reads.memo("apps", _view(5), make) == [2], "another key is its own answer"
    assert reads.memo("nodes", _view(6), make) == [3], "a table changed: made again"
    reads.memo("nodes", _view(-1), make)
    reads.memo("nodes", _view(-1), make)
    assert len(made) == 5, "a view read from etcd has no stamp: nothing kept"
    reads.memo("nodes", _view(7, unreachable_since=0.0), make)
    reads.memo("nodes", _view(7, unreachable_since=0.0), make)
    assert len(made) == 7, "a node lost but not yet marked: its status says 'since now', so nothing is kept"
    reads.memo("nodes", _view(8, unreachable_since=123.0), make)
    reads.memo("nodes", _view(8, unreachable_since=123.0), make)
    assert len(made) == 8


def test_the_node_list_says_who_is_ready_and_who_is_lost_since_when() -> None:
    reads = Queries(store=None, mirror=None)  # type: ignore[arg-type]
    listed = reads.node_list(_view(1, unreachable_since=123.0))
    assert [(n.name, n.state, n.unreachable_since) for n in listed.nodes] == [
        ("n1", "Ready", 0.0),
        ("n2", "Unreachable", 123.0),
    ]
