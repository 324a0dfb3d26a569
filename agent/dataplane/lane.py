"""The calls a forwarder sends to one node, coalesced under load.

While fewer than ``max_inflight`` calls to the node are in flight, a call goes
out at once on its own (``DataPlane.Call``): one call at a time costs what it
always did. Beyond that, calls queue; when an in-flight call finishes, the
first of them sends itself and every call queued behind it as one
``DataPlane.CallBatch``. That wait is worth it only for quick calls, whose cost
is mostly the round trip itself; once a node's calls typically take longer than
:data:`SLOW_CALL`, up to :data:`MAX_INFLIGHT_SLOW` go at once instead.

Under load one round trip, and one pass through grpc in each process, then
carries many calls: that is what lets a forwarded call keep up with a plain
gRPC call at 8 or 64 callers at once (bench/forwarding.py). No thread is
added: the caller at the head of the queue sends for the others.

Each call keeps its own deadline (one that passes while it waits in the queue
fails only that call) and its own outcome: the result, or the error the
serving node raised, exactly as a call on its own would get it. A node that
does not know ``CallBatch`` (an older agent) is sent each call on its own.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

import grpc

from agent.dataplane import frames
from neon._proto import dataplane_pb2
from neon.errors import DeadlineExceeded, NeonGridError, from_status, status_code
from neon.observe.metrics import moving_average

# What one call ends with: its result as a serialized Value (None for a function without one) and the
# reply's size.
Outcome = tuple[bytes | None, int]

MAX_INFLIGHT = 1  # calls (or batches) in flight to one node before the next ones queue
SLOW_CALL = 0.002  # seconds: calls that typically take longer than this...
MAX_INFLIGHT_SLOW = 16  # ...go at once while fewer than this many are in flight
MAX_BATCH = 64  # calls in one batch
MAX_BATCH_BYTES = 1 << 20  # bytes of requests in one batch (a larger call goes alone)

_QUEUED, _LEADING, _TAKEN, _ALONE, _DONE = "queued", "leading", "taken", "alone", "done"


class _Pending:
    """One call in the lane: its request (a serialized ``CallRequest``), when its caller stops waiting,
    and how it ended."""

    __slots__ = ("request", "deadline", "state", "wake", "outcome", "error")

    def __init__(self, request: bytes, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.state = _QUEUED
        self.wake = threading.Lock()  # held until whoever settles this call releases it
        self.wake.acquire()
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None

    def result(self) -> Outcome:
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


class Lane:
    """The calls to one node's data plane, through one channel's ``Call`` and ``CallBatch`` taking and
    giving serialized messages (:mod:`agent.dataplane.frames`): ``call(request, timeout=seconds) -> reply``."""

    def __init__(
        self,
        caller: str,
        call: Callable[..., bytes],
        call_batch: Callable[..., bytes],
        max_inflight: int = MAX_INFLIGHT,
        max_batch: int = MAX_BATCH,
        max_bytes: int = MAX_BATCH_BYTES,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """``on_batch`` is told the size of each batch the node answered."""
        self.caller = caller
        self._call = call
        self._call_batch = call_batch
        self.max_inflight = max_inflight
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self.batching = True  # False once the node said it has no CallBatch
        self.on_batch = on_batch
        self.typical_call = 0.0  # seconds a call to the node took lately, batched ones counted apart (moving average)
        self._lock = threading.Lock()
        self._inflight = 0
        self._queue: collections.deque[_Pending] = collections.deque()

    @property
    def queued(self) -> int:
        """Calls waiting for their turn to be sent."""
        return len(self._queue)

    def call(self, request: bytes, timeout: float) -> Outcome:
        """Send one call (a serialized ``CallRequest``) within ``timeout`` seconds; its result, or raise
        its error (a ``grpc.RpcError`` or ``ValueError`` when the transport failed, a NeonGridError the
        node raised)."""
        deadline = time.monotonic() + timeout
        pending = None
        with self._lock:
            leading = self.batching and self._inflight < self._limit() and not self._queue
            if leading:
                self._inflight += 1
            elif self.batching:
                pending = _Pending(request, deadline)
                self._queue.append(pending)
        if pending is None:  # nothing in flight or waiting (or no batching): the call goes out alone, now
            try:
                return self._unary(request, deadline)
            finally:
                if leading:
                    self._finished()
        self._wait(pending)
        if pending.state is _ALONE:
            return self._unary(pending.request, pending.deadline)
        if pending.state is _LEADING:
            self._send(self._take(pending))
        return pending.result()

    def _limit(self) -> int:
        return self.max_inflight if self.typical_call < SLOW_CALL else max(self.max_inflight, MAX_INFLIGHT_SLOW)

    def _timed(self, started: float, calls: int) -> None:
        took = (time.monotonic() - started) / calls
        self.typical_call = moving_average(self.typical_call, took)

    def _wait(self, pending: _Pending) -> None:
        """Until a finished call makes this one lead the next send, or the sender settles it."""
        if pending.wake.acquire(timeout=max(0.0, pending.deadline - time.monotonic())):
            return
        with self._lock:
            if pending.state is _QUEUED:  # still waiting its turn: its caller stops waiting now
                self._queue.remove(pending)
                pending.state = _DONE
                pending.error = DeadlineExceeded(
                    f"the deadline passed while the call waited to be sent ({self._inflight} call(s) to this node "
                    "in flight)"
                )
                return
        pending.wake.acquire()  # taken by a sender already: the batch's own deadline bounds the wait

    def _finished(self) -> None:
        """A call or batch came back: the first queued call leads the next send."""
        with self._lock:
            self._inflight -= 1
            head = None
            if self._queue and self._inflight < self._limit():
                head = self._queue.popleft()
                head.state = _LEADING
                self._inflight += 1
        if head is not None:
            head.wake.release()

    def _take(self, leader: _Pending) -> list[_Pending]:
        """``leader`` and the calls queued behind it, as many as one batch holds."""
        batch, size = [leader], len(leader.request)
        with self._lock:
            while self.batching and self._queue and len(batch) < self.max_batch:
                if size + len(self._queue[0].request) > self.max_bytes:
                    break
                pending = self._queue.popleft()
                pending.state = _TAKEN
                batch.append(pending)
                size += len(pending.request)
        return batch

    def _send(self, batch: list[_Pending]) -> None:
        """Send ``batch`` (one call alone, several as a CallBatch), free its place in flight and
        settle every call in it. A batch's place is freed as soon as its reply is in, before its
        callers are woken: the next batch goes out while they take their results."""
        freed = False

        def free() -> None:
            nonlocal freed
            if not freed:
                freed = True
                self._finished()

        try:
            if len(batch) == 1:
                self._settle_alone(batch[0])
            else:
                self._send_batch(batch, free)
        except BaseException as err:  # a bug here must not leave the others waiting for ever
            self._settle_all([p for p in batch if p.state is not _DONE], err)
            raise
        finally:
            free()

    def _send_batch(self, batch: list[_Pending], free: Callable[[], None]) -> None:
        now = time.monotonic()
        try:
            request = frames.batch_request(self.caller, [(p.request, max(p.deadline - now, 1e-3)) for p in batch])
            raw = self._call_batch(request, timeout=max(max(p.deadline for p in batch) - now, 1e-3))
            reply = dataplane_pb2.CallBatchResponse.FromString(raw)
            self._timed(now, len(batch))
            free()
        except grpc.RpcError as err:
            if _unimplemented(err):
                self._stop_batching(batch)
                return
            self._settle_all(batch, err)
            return
        except ValueError as err:  # the channel closed under it
            self._settle_all(batch, err)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch))
        outcomes = list(reply.outcomes)
        if len(outcomes) != len(batch):
            error = NeonGridError(f"the node answered {len(outcomes)} outcome(s) to a batch of {len(batch)} calls")
            self._settle_all(batch, error)
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if outcome.code:
                pending.error = from_status(status_code(outcome.code), outcome.message, outcome.error)
            else:
                result = outcome.result.SerializeToString() if outcome.HasField("result") else None
                pending.outcome = (result, outcome.ByteSize())
            self._done(pending)

    def _settle_alone(self, pending: _Pending) -> None:
        try:
            pending.outcome = self._unary(pending.request, pending.deadline)
        except (grpc.RpcError, ValueError, NeonGridError) as err:
            pending.error = err
        pending.state = _DONE

    def _unary(self, request: bytes, deadline: float) -> Outcome:
        started = time.monotonic()
        timeout = deadline - started
        if timeout <= 0:
            raise DeadlineExceeded("the deadline passed before the call was sent")
        raw = self._call(request, timeout=timeout)
        self._timed(started, 1)
        return frames.call_reply(raw)

    def _stop_batching(self, batch: list[_Pending]) -> None:
        """The node has no CallBatch: from now on every call goes alone, these and the queued ones too."""
        with self._lock:
            self.batching = False
            alone = [*batch[1:], *self._queue]
            self._queue.clear()
            for pending in alone:
                pending.state = _ALONE
        for pending in alone:
            pending.wake.release()
        self._settle_alone(batch[0])

    def _settle_all(self, batch: list[_Pending], error: BaseException) -> None:
        for pending in batch:
            pending.error = error
            self._done(pending)

    @staticmethod
    def _done(pending: _Pending) -> None:
        """Settle one call: its caller (unless it is the sender itself) stops waiting."""
        leading = pending.state is _LEADING
        pending.state = _DONE
        if not leading:
            pending.wake.release()


def _unimplemented(err: grpc.RpcError) -> bool:
    code: Any = getattr(err, "code", None)
    return callable(code) and code() == grpc.StatusCode.UNIMPLEMENTED
