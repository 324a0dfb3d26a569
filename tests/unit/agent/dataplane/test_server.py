"""The data plane keeps what serving a function takes until what the node serves changes (Serving.serving)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent.dataplane.server import DataPlaneServicer
from neon._proto import dataplane_pb2, values_pb2
from neon.errors import PermissionDenied
from tests.unit.agent.dataplane.test_call_batch import SIG, Node, _string


class Recording(Node):
    """Counts its pool lookups; its callers can change."""

    def __init__(self) -> None:
        super().__init__(instances=1, typical_call=0.0, together=1)
        self.allowed = frozenset({"cloud-1"})
        self.looked_up = 0

    def callers(self, app: str, component: str) -> frozenset[str]:
        return self.allowed

    def pool(self, app: str, component: str) -> Any:
        self.looked_up += 1
        return self._pool


def _call(servicer: DataPlaneServicer, caller: str = "cloud-1") -> Any:
    request = dataplane_pb2.CallRequest(
        app="app", component="parser", interface="x:y/echo", function="echo", args=[_string("hi")]
    )
    return servicer._serve_call(request, caller, None)


def test_a_function_is_looked_up_once_until_what_the_node_serves_changes() -> None:
    agent = Recording()
    servicer = DataPlaneServicer(agent)  # type: ignore[arg-type]
    try:
        first = agent._pool
        assert SIG.result_from_proto(values_pb2.Value.FromString(_call(servicer))) == "echo hi"
        _call(servicer)
        assert agent.looked_up == 1 and agent.pools == [first, first]
        # A hot swap: a new pool, and the generation moves on; the next call goes to the new one.
        agent._pool = SimpleNamespace(**vars(first))
        agent.serving += 1
        _call(servicer)
        assert agent.looked_up == 2 and agent.pools[-1] is agent._pool
        # The callers change (a new desired state): a node no longer linked is refused at once.
        agent.allowed = frozenset({"cloud-2"})
        agent.serving += 1
        with pytest.raises(PermissionDenied, match="node cloud-1 is not linked"):
            _call(servicer)
        assert _call(servicer, "cloud-2") is not None
    finally:
        servicer.close()


def test_a_call_runs_inline_only_when_its_component_answers_quickly_and_has_an_idle_instance() -> None:
    agent = Recording()
    servicer = DataPlaneServicer(agent)  # type: ignore[arg-type]
    request = dataplane_pb2.CallRequest(app="app", component="parser", interface="x:y/echo", function="echo")
    pool = agent._pool
    pool.ready = lambda: pool.idle  # type: ignore[attr-defined]
    pool.idle, pool.typical_call = True, 0.0002
    try:
        assert not servicer.quick(request)  # never served here: nothing known of it
        _call(servicer)
        assert servicer.quick(request)
        pool.typical_call = 0.005  # its calls take longer (they wait on others): a worker thread
        assert not servicer.quick(request)
        pool.typical_call, pool.idle = 0.0002, False  # every instance busy (a batch runs): no waiting in the poller
        assert not servicer.quick(request)
        pool.idle = True
        agent.serving += 1  # what the node serves changed: looked up again first, by a worker
        assert not servicer.quick(request)
    finally:
        servicer.close()
