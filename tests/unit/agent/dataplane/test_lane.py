"""Coalescing forwarded calls (agent.dataplane.lane): alone while few are in flight, batched beyond,
each with its own outcome."""

from __future__ import annotations

import functools
import threading
import time
from concurrent import futures
from typing import Any

import grpc
import pytest

from agent.dataplane import frames
from agent.dataplane.lane import Lane
from neon._proto import dataplane_pb2, values_pb2
from neon.errors import DeadlineExceeded, NotFound
from tests.support.helpers import assert_eventually


class RpcFailure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Node:
    """A node's data plane in-process: echoes ``args[0]``, knows no function ``missing``,
    and holds every call while ``gate`` is shut. It takes and gives serialized messages, as the
    lane's channel does, parsed and made by the generated classes (so the lane's hand-framed
    requests must parse as protobuf)."""

    def __init__(self, batching: bool = True, batch_failure: grpc.StatusCode | None = None) -> None:
        self.batching = batching
        self.batch_failure = batch_failure
        self.alone: list[str] = []
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Semaphore(0)  # released as each call reaches the node
        self.delay = 0.0  # seconds each call takes

    def call(self, raw: bytes, timeout: float) -> bytes:
        request = dataplane_pb2.CallRequest.FromString(raw)
        self.held.release()
        assert self.gate.wait(10)
        time.sleep(self.delay)
        self.alone.append(request.args[0].string)
        return dataplane_pb2.CallResponse(result=self._echo(request)).SerializeToString()

    def call_batch(self, raw: bytes, timeout: float) -> bytes:
        request = dataplane_pb2.CallBatchRequest.FromString(raw)
        if not self.batching:
            raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED)
        if self.batch_failure is not None:
            raise RpcFailure(self.batch_failure)
        assert request.caller == "cloud-1"
        assert all(0 < item.timeout <= timeout + 1e-6 for item in request.calls)
        self.batches.append([item.call.args[0].string for item in request.calls])
        outcomes = []
        for item in request.calls:
            if item.call.function == "missing":
                err = NotFound(f"exports no function {item.call.function}", kind="function", name="missing")
                failed = dataplane_pb2.CallOutcome(code=err.code.value[0], message=err.message, error=err.to_json())
                outcomes.append(failed)
            else:
                outcomes.append(dataplane_pb2.CallOutcome(result=self._echo(item.call)))
        return dataplane_pb2.CallBatchResponse(outcomes=outcomes).SerializeToString()

    @staticmethod
    def _echo(request: dataplane_pb2.CallRequest) -> values_pb2.Value:
        return values_pb2.Value(string="echo " + request.args[0].string)


def _request(text: str, function: str = "echo") -> bytes:
    prefix = frames.request_prefix("app", "parser", "", function, "cloud-1")
    return frames.call_request(prefix, [values_pb2.Value(string=text).SerializeToString()])


def _lane(node: Node, sizes: list[int] | None = None) -> Lane:
    on_batch = sizes.append if sizes is not None else None
    return Lane("cloud-1", node.call, node.call_batch, max_inflight=1, on_batch=on_batch)


def _send(lane: Lane, text: str, function: str = "echo", timeout: float = 10.0) -> Any:
    value, size = lane.call(_request(text, function), timeout)
    assert value is not None and size > 0
    return values_pb2.Value.FromString(value).string


def _queue_behind_a_held_call(
    lane: Lane, node: Node, pool: futures.ThreadPoolExecutor, calls: list[tuple[str, str, float]]
) -> tuple[futures.Future[Any], list[futures.Future[Any]]]:
    """Hold one call at the node, then queue ``calls`` (text, function, timeout) behind it."""
    node.gate.clear()
    first = pool.submit(_send, lane, "first")
    assert node.held.acquire(timeout=5)
    queued = []
    for text, function, timeout in calls:
        queued.append(pool.submit(_send, lane, text, function, timeout))
        assert_eventually(functools.partial(_queued, lane, len(queued)), timeout=5)
    return first, queued


def _queued(lane: Lane, count: int) -> None:
    assert lane.queued == count


def test_calls_one_at_a_time_go_alone() -> None:
    node, sizes = Node(), []
    lane = _lane(node, sizes)
    assert [_send(lane, t) for t in "abc"] == ["echo a", "echo b", "echo c"]
    assert node.alone == ["a", "b", "c"] and node.batches == [] and sizes == []


def test_calls_queued_behind_one_in_flight_go_as_one_batch_each_with_its_own_result() -> None:
    node, sizes = Node(), []
    lane = _lane(node, sizes)
    with futures.ThreadPoolExecutor(8) as pool:
        first, queued = _queue_behind_a_held_call(lane, node, pool, [(t, "echo", 10.0) for t in "abcde"])
        node.gate.set()
        assert first.result(5) == "echo first"
        assert [f.result(5) for f in queued] == [f"echo {t}" for t in "abcde"]
    assert node.alone == ["first"]
    assert node.batches == [list("abcde")] and sizes == [5]


def test_one_failing_call_in_a_batch_fails_only_its_caller_with_the_nodes_error() -> None:
    node = Node()
    lane = _lane(node)
    with futures.ThreadPoolExecutor(8) as pool:
        first, queued = _queue_behind_a_held_call(
            lane, node, pool, [("a", "echo", 10.0), ("b", "missing", 10.0), ("c", "echo", 10.0)]
        )
        node.gate.set()
        first.result(5)
        assert queued[0].result(5) == "echo a" and queued[2].result(5) == "echo c"
        with pytest.raises(NotFound, match="exports no function missing") as caught:
            queued[1].result(5)
    assert caught.value.attrs == {"kind": "function", "name": "missing"}


def test_a_call_whose_deadline_passes_in_the_queue_fails_alone_and_the_rest_are_sent() -> None:
    node = Node()
    lane = _lane(node)
    with futures.ThreadPoolExecutor(8) as pool:
        first, queued = _queue_behind_a_held_call(lane, node, pool, [("a", "echo", 10.0), ("late", "echo", 0.3)])
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="waited to be sent"):
            queued[1].result(5)
        assert time.monotonic() - started < 2
        assert lane.queued == 1
        node.gate.set()
        first.result(5)
        assert queued[0].result(5) == "echo a"
    assert node.alone == ["first", "a"] and node.batches == []  # "a" was left alone: it went alone


def test_calls_to_a_node_whose_calls_take_long_go_at_once_instead_of_waiting_for_a_batch() -> None:
    node = Node()
    node.delay = 0.01
    lane = _lane(node)
    assert [_send(lane, t) for t in "abc"] == ["echo a", "echo b", "echo c"]
    assert lane.typical_call >= 0.01
    node.gate.clear()
    with futures.ThreadPoolExecutor(8) as pool:
        held = [pool.submit(_send, lane, t) for t in "wxyz"]
        for _ in held:  # all four reach the node together: none queues behind another
            assert node.held.acquire(timeout=5)
        assert lane.queued == 0
        node.gate.set()
        assert [f.result(5) for f in held] == ["echo w", "echo x", "echo y", "echo z"]
    assert node.batches == []


def test_a_batch_that_fails_in_transit_fails_each_of_its_calls_with_the_transport_error() -> None:
    node = Node(batch_failure=grpc.StatusCode.UNAVAILABLE)
    lane = _lane(node)
    with futures.ThreadPoolExecutor(8) as pool:
        first, queued = _queue_behind_a_held_call(lane, node, pool, [(t, "echo", 10.0) for t in "ab"])
        node.gate.set()
        first.result(5)
        for future in queued:
            with pytest.raises(RpcFailure) as caught:
                future.result(5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_node_without_call_batch_is_sent_every_call_alone() -> None:
    node, sizes = Node(batching=False), []
    lane = _lane(node, sizes)
    with futures.ThreadPoolExecutor(8) as pool:
        first, queued = _queue_behind_a_held_call(lane, node, pool, [(t, "echo", 10.0) for t in "abc"])
        node.gate.set()
        first.result(5)
        assert [f.result(5) for f in queued] == ["echo a", "echo b", "echo c"]
        assert not lane.batching
        assert sorted(node.alone) == ["a", "b", "c", "first"] and sizes == []
        # From now on nothing queues: every call goes at once.
        node.gate.clear()
        held = [pool.submit(_send, lane, t) for t in "xyz"]
        for _ in held:
            assert node.held.acquire(timeout=5)
        assert lane.queued == 0
        node.gate.set()
        assert [f.result(5) for f in held] == ["echo x", "echo y", "echo z"]


def test_many_callers_at_once_each_get_their_own_answer() -> None:
    node, sizes = Node(), []
    lane = _lane(node, sizes)
    texts = [str(i) for i in range(400)]
    with futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda t: _send(lane, t), texts))
    assert answers == [f"echo {t}" for t in texts]
    assert len(node.alone) + sum(sizes) == len(texts)
    assert sorted(node.alone + [t for b in node.batches for t in b], key=int) == texts
