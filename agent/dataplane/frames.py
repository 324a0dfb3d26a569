"""A forwarded call's request and reply in protobuf's wire form, written by hand where that saves work.

A forwarder sends ``DataPlane.Call`` many times with the same app, component,
interface, function and caller; only the arguments change. Those five fields
are serialized once (:func:`request_prefix`) and each call appends its
arguments to them: protobuf's wire form is a sequence of fields, and a parser
reads a repeated field's items wherever they appear. That skips building a
``CallRequest`` (and copying the arguments into it), measuring it and
serializing it again on every call. A batch of such requests
(``CallBatchRequest``) is framed the same way. A reply's result is handed on
still serialized (:mod:`agent.values.readers` reads it into the objects the guest
gets); a reply's size is the length of the bytes received.

Framing is :mod:`agent.values.framing`'s. The serving side answers the same way
(:mod:`agent.dataplane.server`): a result goes from wasmtime's C value straight into a
serialized ``CallResponse``.
"""

from __future__ import annotations

import struct

from agent.values.framing import I64, LEN, delimited, key_of, read_varint
from neon._proto import dataplane_pb2

SERVICE: str = dataplane_pb2.DESCRIPTOR.services_by_name["DataPlane"].full_name  # neon.v1.DataPlane
_RESULT = key_of(dataplane_pb2.CallResponse, "result", LEN)
_ARGS = key_of(dataplane_pb2.CallRequest, "args", LEN)
_BATCH_CALLER = key_of(dataplane_pb2.CallBatchRequest, "caller", LEN)
_BATCH_CALLS = key_of(dataplane_pb2.CallBatchRequest, "calls", LEN)
_BATCHED_CALL = key_of(dataplane_pb2.BatchedCall, "call", LEN)
_BATCHED_TIMEOUT = key_of(dataplane_pb2.BatchedCall, "timeout", I64)
_DOUBLE = struct.Struct("<d")


def request_prefix(app: str, component: str, interface: str, function: str, caller: str) -> bytes:
    """A ``CallRequest`` with every field but the arguments, serialized."""
    return dataplane_pb2.CallRequest(
        app=app, component=component, interface=interface, function=function, caller=caller
    ).SerializeToString()


def call_request(prefix: bytes, args: list[bytes]) -> bytes:
    """The serialized ``CallRequest`` of ``prefix`` (:func:`request_prefix`) with ``args``, serialized ``Value`` s."""
    return prefix + b"".join([delimited(_ARGS, arg) for arg in args])


def batch_request(caller: str, calls: list[tuple[bytes, float]]) -> bytes:
    """The serialized ``CallBatchRequest`` of serialized ``CallRequest`` s, each with its timeout (seconds)."""
    parts = [delimited(_BATCH_CALLER, caller.encode())]
    for request, timeout in calls:
        batched = delimited(_BATCHED_CALL, request) + _BATCHED_TIMEOUT + _DOUBLE.pack(timeout)
        parts.append(delimited(_BATCH_CALLS, batched))
    return b"".join(parts)


def call_reply(raw: bytes) -> tuple[bytes | None, int]:
    """A serialized ``CallResponse``'s result, a serialized ``Value`` (None for a function without
    one), and the reply's size. The canonical reply (the result field alone) is sliced; any other
    encoding of it is parsed."""
    if not raw:
        return None, 0
    if raw[: len(_RESULT)] == _RESULT:
        try:
            size, start = read_varint(raw, len(_RESULT))
        except (IndexError, ValueError):  # not a length: parsed below, which says what is wrong
            size, start = -1, 0
        if start + size == len(raw):
            return raw[start:], len(raw)
    reply = dataplane_pb2.CallResponse.FromString(raw)
    return (reply.result.SerializeToString() if reply.HasField("result") else None), len(raw)


_OUTCOME_RESULT = key_of(dataplane_pb2.CallOutcome, "result", LEN)
_OUTCOMES = key_of(dataplane_pb2.CallBatchResponse, "outcomes", LEN)


def call_response(result: bytes | None) -> bytes:
    """The serialized ``CallResponse`` carrying a serialized result ``Value`` (None: a function without one)."""
    return b"" if result is None else delimited(_RESULT, result)


def succeeded(result: bytes | None) -> bytes:
    """The serialized ``CallOutcome`` of a batched call that returned a serialized ``Value`` (or nothing)."""
    return b"" if result is None else delimited(_OUTCOME_RESULT, result)


def batch_response(outcomes: list[bytes]) -> bytes:
    """The serialized ``CallBatchResponse`` of serialized ``CallOutcome`` s, in order."""
    return b"".join([delimited(_OUTCOMES, outcome) for outcome in outcomes])
