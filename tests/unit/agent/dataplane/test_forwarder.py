"""Forwarded calls against real gRPC servers: retries only for idempotent functions, never past the deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from agent.dataplane.forwarder import Router, set_call_deadline
from agent.values.scalars import StringCodec
from agent.values.signature import Signature
from cli.devcluster.etcd_launcher import free_port
from neon._proto import dataplane_pb2, dataplane_pb2_grpc
from neon.errors import DeadlineExceeded, NeonGridError, Unavailable

SIG = Signature([("raw", StringCodec())], StringCodec(), "x:y/echo#echo")


class Replica(dataplane_pb2_grpc.DataPlaneServicer):
    """A data plane that answers, refuses (UNAVAILABLE), hangs, or fails the call itself."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls = 0
        self.release = threading.Event()

    def Call(self, request: dataplane_pb2.CallRequest, context: Any) -> dataplane_pb2.CallResponse:
        self.calls += 1
        if self.behaviour == "down":
            context.abort(grpc.StatusCode.UNAVAILABLE, "instance stopping")
        if self.behaviour == "silent":
            self.release.wait(30)
        if self.behaviour == "broken":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the guest refused it")
        return dataplane_pb2.CallResponse(result=SIG.result_to_proto(f"echo {request.args[0].string}"))


@pytest.fixture
def replicas() -> Iterator[dict[str, tuple[str, Replica]]]:
    out: dict[str, tuple[str, Replica]] = {}
    servers = []
    for behaviour in ("alive", "down", "silent", "broken"):
        replica = Replica(behaviour)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        dataplane_pb2_grpc.add_DataPlaneServicer_to_server(replica, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        out[behaviour] = (f"127.0.0.1:{port}", replica)
    out["dead"] = (f"127.0.0.1:{free_port()}", Replica("dead"))  # nothing listens: connection refused
    yield out
    for _, replica in out.values():
        replica.release.set()
    for server in servers:
        server.stop(None)


def _call(replicas: dict[str, tuple[str, Replica]], order: list[str], idempotent: bool, timeout: float = 5.0) -> Any:
    router = Router("edge-1", default_timeout=timeout)
    router.set_routes("app", "parser", tuple(replicas[name][0] for name in order))
    forward = router.forwarder("app", "processor", "parser", "x:y/echo", "echo", SIG, idempotent)
    try:
        return forward("hi")
    finally:
        router.close()


@pytest.mark.parametrize("first", ["dead", "down"])
def test_an_idempotent_call_moves_to_a_live_replica(replicas: dict[str, tuple[str, Replica]], first: str) -> None:
    assert _call(replicas, [first, "alive"], idempotent=True) == "echo hi"
    assert replicas["alive"][1].calls == 1


@pytest.mark.parametrize("first", ["dead", "down"])
def test_other_calls_fail_at_once_saying_why_they_were_not_retried(
    replicas: dict[str, tuple[str, Replica]], first: str
) -> None:
    with pytest.raises(Unavailable) as err:
        _call(replicas, [first, "alive"], idempotent=False)
    assert err.value.message.startswith(f"parser x:y/echo#echo at {replicas[first][0]}: ")
    assert err.value.message.endswith(
        "not retried on the other 1 replica(s): echo is not marked idempotent on this link (spec.links[].idempotent)"
    )
    assert replicas["alive"][1].calls == 0


def test_a_silent_replica_gets_only_its_share_of_the_deadline(replicas: dict[str, tuple[str, Replica]]) -> None:
    started = time.monotonic()
    assert _call(replicas, ["silent", "alive"], idempotent=True, timeout=2.0) == "echo hi"
    took = time.monotonic() - started
    assert 1.0 <= took < 2.0, took  # the silent try had half of the 2 s, the live one answered at once


def test_no_call_outlives_its_deadline(replicas: dict[str, tuple[str, Replica]]) -> None:
    for idempotent, order in ((False, ["silent", "alive"]), (True, ["silent", "silent"])):
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            _call(replicas, order, idempotent=idempotent, timeout=0.6)
        assert time.monotonic() - started < 0.6 + 0.5
    # The caller's own deadline (a call that came in over the data plane) bounds it too.
    set_call_deadline(time.monotonic() + 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            _call(replicas, ["silent"], idempotent=True, timeout=10.0)
        assert time.monotonic() - started < 0.3 + 0.5
    finally:
        set_call_deadline(None)


def test_when_every_replica_fails_the_error_lists_them(replicas: dict[str, tuple[str, Replica]]) -> None:
    with pytest.raises(Unavailable, match=r"every replica failed \(127\.0\.0\.1:\d+: .*; 127\.0\.0\.1:\d+: .*\)"):
        _call(replicas, ["dead", "down"], idempotent=True)


def test_an_error_from_the_function_itself_is_not_retried(replicas: dict[str, tuple[str, Replica]]) -> None:
    with pytest.raises(NeonGridError, match="the guest refused it") as err:
        _call(replicas, ["broken", "alive"], idempotent=True)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (replicas["broken"][1].calls, replicas["alive"][1].calls) == (1, 0)


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_call_waiting_on_a_replica_that_leaves_the_routes_moves_on_at_once(
    replicas: dict[str, tuple[str, Replica]], idempotent: bool
) -> None:
    router = Router("edge-1", default_timeout=10.0)
    router.set_routes("app", "parser", (replicas["silent"][0],))
    forward = router.forwarder("app", "processor", "parser", "x:y/echo", "echo", SIG, idempotent)
    outcome: dict[str, Any] = {}

    def call() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = forward("hi")
        except NeonGridError as err:
            outcome["error"] = err
        outcome["took"] = time.monotonic() - started

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)  # the call waits on the silent replica ...
    router.set_routes("app", "parser", (replicas["alive"][0],))  # ... when the control plane moves the parser
    caller.join(15)
    router.close()
    assert outcome["took"] < 3.0, outcome  # not the 10 s deadline
    if idempotent:
        assert outcome.get("value") == "echo hi", outcome
        assert replicas["alive"][1].calls == 1
    else:
        assert isinstance(outcome.get("error"), Unavailable), outcome
        assert "left the routes while the call waited" in outcome["error"].message
        assert replicas["alive"][1].calls == 0


def test_a_forwarder_dials_anew_after_the_credentials_change(replicas: dict[str, tuple[str, Replica]]) -> None:
    """Renewing the node's certificate replaces the channels: a forwarder made before keeps working
    once the old ones are closed (the certificate rotation path), without a failed call."""
    router = Router("edge-1")
    router.set_routes("app", "parser", (replicas["alive"][0],))
    forward = router.forwarder("app", "processor", "parser", "x:y/echo", "echo", SIG)
    try:
        assert forward("before") == "echo before"
        old = router.lane(replicas["alive"][0])
        router.set_credentials(router.creds, grace=0.05)
        time.sleep(0.3)  # the old channels are closed by now
        assert forward("after") == "echo after"
        assert router.lane(replicas["alive"][0]) is not old
    finally:
        router.close()
