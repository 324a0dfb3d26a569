"""A forwarded call's request and reply in protobuf's wire form, written by hand where that saves work.

A forwarder sends ``DataPlane.Call`` many times with the same app, component,
interface, function and caller; only the arguments change. Those five fields
are serialized once (:func:`request_prefix`) and each call appends its
arguments to them: protobuf's wire form is a sequence of fields, and a parser
reads a repeated field's items wherever they appear. That skips building a
``CallRequest`` (and copying the arguments into it), measuring it and
serializing it again on every call. A batch of such requests
(``CallBatchRequest``) is framed the same way. Replies are parsed by the
generated classes; their size is the length of the bytes received.

The field numbers are read from the generated classes
(``proto/neon/v1/dataplane.proto``), so they cannot drift from it.
"""

from __future__ import annotations

import struct

from neon._proto import dataplane_pb2, values_pb2

_LENGTH_DELIMITED, _FIXED64 = 2, 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(message: type, field: str, wire_type: int) -> bytes:
    """The key of ``message``'s ``field``, numbered as the generated class says."""
    number: int = message.DESCRIPTOR.fields_by_name[field].number  # type: ignore[attr-defined]
    return _varint(number << 3 | wire_type)


_ARGS = _tag(dataplane_pb2.CallRequest, "args", _LENGTH_DELIMITED)
_BATCH_CALLER = _tag(dataplane_pb2.CallBatchRequest, "caller", _LENGTH_DELIMITED)
_BATCH_CALLS = _tag(dataplane_pb2.CallBatchRequest, "calls", _LENGTH_DELIMITED)
_BATCHED_CALL = _tag(dataplane_pb2.BatchedCall, "call", _LENGTH_DELIMITED)
_BATCHED_TIMEOUT = _tag(dataplane_pb2.BatchedCall, "timeout", _FIXED64)
_DOUBLE = struct.Struct("<d")


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def request_prefix(app: str, component: str, interface: str, function: str, caller: str) -> bytes:
    """A ``CallRequest`` with every field but the arguments, serialized."""
    return dataplane_pb2.CallRequest(
        app=app, component=component, interface=interface, function=function, caller=caller
    ).SerializeToString()


def call_request(prefix: bytes, args: list[values_pb2.Value]) -> bytes:
    """The serialized ``CallRequest`` of ``prefix`` (:func:`request_prefix`) with ``args``."""
    return prefix + b"".join([_delimited(_ARGS, arg.SerializeToString()) for arg in args])


def batch_request(caller: str, calls: list[tuple[bytes, float]]) -> bytes:
    """The serialized ``CallBatchRequest`` of serialized ``CallRequest`` s, each with its timeout (seconds)."""
    parts = [_delimited(_BATCH_CALLER, caller.encode())]
    for request, timeout in calls:
        batched = _delimited(_BATCHED_CALL, request) + _BATCHED_TIMEOUT + _DOUBLE.pack(timeout)
        parts.append(_delimited(_BATCH_CALLS, batched))
    return b"".join(parts)


def call_reply(raw: bytes) -> tuple[values_pb2.Value | None, int]:
    """A serialized ``CallResponse``'s result (None for a function without one) and its size."""
    reply = dataplane_pb2.CallResponse.FromString(raw)
    return (reply.result if reply.HasField("result") else None), len(raw)
