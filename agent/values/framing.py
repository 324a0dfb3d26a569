"""Protobuf's wire form, written by hand where that saves building messages on a call's path.

A message on the wire is a sequence of fields, each a key (field number and
wire type) and a value: a varint, 4 or 8 fixed bytes, or a length and that many
bytes (strings, bytes, nested messages, packed repeated scalars). Writing the
few messages a forwarded call carries straight into bytes skips making the
message objects and serializing them again. Field numbers are read from the
generated classes (:func:`key_of`), so they cannot drift from the .proto files;
tests compare what is written here with what the generated classes write.
"""

from __future__ import annotations

from typing import Any

from neon._proto import values_pb2

VARINT, I64, LEN, I32 = 0, 1, 2, 5  # wire types

SMALL_VARINTS = tuple(bytes((n,)) for n in range(0x80))  # the varints of one byte, made once


def varint(n: int) -> bytes:
    """An unsigned varint (``n`` >= 0)."""
    if n < 0x80:
        return SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` in ``buf`` and where it ends. Raises IndexError when ``buf`` ends
    inside it, ValueError when it runs past 64 bits."""
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 64 bits")


def zigzag(n: int) -> int:
    """A signed 64-bit integer as a ``sint64`` field stores it."""
    return (n << 1) ^ (n >> 63)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def key_of(message: Any, field: str, wire_type: int) -> bytes:
    """The key of ``message``'s ``field`` (a generated class), numbered as the class says."""
    number: int = message.DESCRIPTOR.fields_by_name[field].number
    return key(number, wire_type)


def delimited(field_key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or a nested message."""
    size = len(payload)
    return field_key + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + payload  # varint, inline: it is short


# The keys of neon.v1.Value's fields (and of the messages inside it) that the codecs write and read.
LIST_KEY = key_of(values_pb2.Value, "list", LEN)
ITEM_KEY = key_of(values_pb2.ValueList, "values", LEN)
CASE_KEY = key_of(values_pb2.Value, "case", LEN)
CASE_INDEX_KEY = key_of(values_pb2.Case, "index", VARINT)
CASE_PAYLOAD_KEY = key_of(values_pb2.Case, "payload", LEN)
STRING_KEY = key_of(values_pb2.Value, "string", LEN)
BYTES_KEY = key_of(values_pb2.Value, "bytes", LEN)
FLAGS_KEY = key_of(values_pb2.Value, "flags", LEN)
FLAGS_SET_KEY = key_of(values_pb2.Flags, "set", LEN)  # packed, as proto3 writes repeated numbers
