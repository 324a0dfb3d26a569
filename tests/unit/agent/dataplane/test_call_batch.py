"""How the agent serves a CallBatch: in turn for quick components, side by side for slow ones with several instances."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from agent.dataplane.server import QUICK_BELOW, DataPlaneServicer
from agent.values.scalars import StringCodec
from agent.values.signature import Signature
from neon._proto import dataplane_pb2, values_pb2
from neon.security.tls import Peer

SIG = Signature([("raw", StringCodec())], StringCodec(), "x:y/echo#echo")


class Node:
    """What the data plane asks of its agent, for one component. With ``together``, each thread's
    first call waits until that many calls run at once (a broken wait fails the call)."""

    def __init__(self, instances: int, typical_call: float, together: int) -> None:
        self.name = "edge-1"
        self.serving = 0
        self._pool = SimpleNamespace(
            template=SimpleNamespace(signature=lambda ref: SIG),
            settings=SimpleNamespace(instances=instances),
            typical_call=typical_call,
        )
        self.threads: set[str] = set()
        self.pools: list[Any] = []  # the pool each call was handed, if any
        self.together = threading.Barrier(together) if together > 1 else None
        self._lock = threading.Lock()

    def callers(self, app: str, component: str) -> frozenset[str]:
        return frozenset({"cloud-1"})

    def pool(self, app: str, component: str) -> Any:
        return self._pool

    def call_within(
        self,
        app: str,
        component: str,
        ref: Any,
        args: list[Any],
        deadline: float | None,
        lift: Any = None,
        pool: Any = None,
    ) -> Any:
        """Echoes; asked to ``lift`` (as for a forwarded call), it answers as the runtime does: a serialized Value."""
        name = threading.current_thread().name
        self.pools.append(pool)
        with self._lock:
            first = name not in self.threads
            self.threads.add(name)
        if first and self.together is not None:
            self.together.wait(timeout=10)
        return f"echo {args[0]}" if lift is None else _string(f"echo {args[0]}").SerializeToString()


class Context:
    def __init__(self) -> None:
        self._neon_peer = Peer("cloud-1", "agent")

    def time_remaining(self) -> float:
        return 10.0


def _batch(texts: list[str]) -> dataplane_pb2.CallBatchRequest:
    return dataplane_pb2.CallBatchRequest(
        caller="cloud-1",
        calls=[
            dataplane_pb2.BatchedCall(
                call=dataplane_pb2.CallRequest(
                    app="app", component="parser", interface="x:y/echo", function="echo", args=[_string(t)]
                ),
                timeout=5.0,
            )
            for t in texts
        ],
    )


def _string(text: str) -> values_pb2.Value:
    return values_pb2.Value(string=text)


@pytest.mark.parametrize(
    ("instances", "typical_call", "side_by_side"),
    [(1, 1.0, 1), (4, QUICK_BELOW / 10, 1), (4, QUICK_BELOW, 4)],
    ids=["one instance", "quick calls", "slow calls with four instances"],
)
def test_a_batch_runs_side_by_side_only_for_slow_components_with_several_instances(
    instances: int, typical_call: float, side_by_side: int
) -> None:
    agent = Node(instances, typical_call, together=side_by_side)
    servicer = DataPlaneServicer(agent, helpers=8)  # type: ignore[arg-type]
    try:
        texts = [str(i) for i in range(12)]
        raw = servicer.CallBatch(_batch(texts), Context())  # type: ignore[arg-type]
        reply = dataplane_pb2.CallBatchResponse.FromString(raw)
    finally:
        servicer.close()
    assert [o.code for o in reply.outcomes] == [0] * len(texts)
    assert [SIG.result_from_proto(o.result) for o in reply.outcomes] == [f"echo {t}" for t in texts]  # in order
    assert len(agent.threads) == side_by_side  # the handler's thread, and helpers beside it
