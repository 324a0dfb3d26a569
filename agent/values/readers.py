"""A serialized ``Value`` read straight into wasmtime's Python objects (a forwarded call's result).

The forwarder's reply carries its result as a serialized ``Value``. Parsing it
into a message and then walking the message's fields (:meth:`agent.values.codec.Codec.from_proto`)
makes a Python object per field twice over; :func:`agent.values.readergen.result_reader` reads the
bytes once, by the function's compiled types, into the objects wasmtime-py
takes. It reads the canonical encoding only: fields in number order, each
once, no unknown fields, as both :func:`agent.values.encodergen.encoder` and the
generated classes write it. Anything else (or a value that does not fit its
type) raises :class:`NotCanonical` inside, and the value is decoded through the
generated classes and ``from_proto`` instead, which also words the error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from wasmtime import component as wc

from agent.values.codec import Codec
from agent.values.compound import CasesCodec, EnumCodec, FlagsCodec, ListCodec, RecordCodec, TupleCodec
from agent.values.framing import (
    CASE_INDEX_KEY,
    CASE_PAYLOAD_KEY,
    FLAGS_SET_KEY,
    I32,
    I64,
    ITEM_KEY,
    LEN,
    VARINT,
    key_of,
    read_varint,
)
from agent.values.scalars import BoolCodec, BytesCodec, CharCodec, FloatCodec, IntCodec, StringCodec
from neon._proto import values_pb2

Value = values_pb2.Value
# What reads one Value: (bytes, where its key is) -> (the Python object, where the next field starts).
Read = Callable[[bytes, int], tuple[Any, int]]


class NotCanonical(ValueError):
    """Bytes this reader does not take; the generated classes decode them instead."""


def _single(field_key: bytes) -> int:
    if len(field_key) != 1:
        raise ImportError("agent.values.readers reads one-byte keys only")
    return field_key[0]


_ITEM, _CASE_INDEX = _single(ITEM_KEY), _single(CASE_INDEX_KEY)
_CASE_PAYLOAD, _FLAGS_SET = _single(CASE_PAYLOAD_KEY), _single(FLAGS_SET_KEY)
_F32, _F64 = struct.Struct("<f"), struct.Struct("<d")


def _length(buf: bytes, pos: int, key: int) -> tuple[int, int]:
    """The field at ``pos`` must have ``key`` and be length-delimited: (where its bytes start, where they end)."""
    if buf[pos] != key:
        raise NotCanonical(f"expected key {key}, got {buf[pos]}")
    size = buf[pos + 1]
    if size < 0x80:  # read_varint, inline: most lengths are short
        start = pos + 2
    else:
        size, start = read_varint(buf, pos + 1)
    end = start + size
    if end > len(buf):
        raise NotCanonical("truncated")
    return start, end


def reader(codec: Codec) -> Read:
    """The reader of one serialized ``Value`` of ``codec``'s type."""
    for cls, build in _READERS.items():  # most derived first: OptionCodec is a CasesCodec
        if isinstance(codec, cls):
            return build(codec)
    raise TypeError(f"no reader for {type(codec).__name__}")


def _key(field: str, wire_type: int = LEN) -> int:
    """The key of ``Value``'s ``field``."""
    return _single(key_of(Value, field, wire_type))


def _bool(codec: Codec) -> Read:
    key = _key("bool", VARINT)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        if buf[pos] != key:
            raise NotCanonical("kind")
        value, pos = read_varint(buf, pos + 1)
        if value > 1:
            raise NotCanonical("bool")
        return value == 1, pos

    return read


def _int(codec: Codec) -> Read:
    assert isinstance(codec, IntCodec)
    key = _key(codec.field, VARINT)
    signed, lo, hi = codec.signed, codec.lo, codec.hi

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        if buf[pos] != key:
            raise NotCanonical("kind")
        n, pos = read_varint(buf, pos + 1)
        if signed:
            n = (n >> 1) ^ -(n & 1)
        if not lo <= n <= hi:
            raise NotCanonical("range")
        return n, pos

    return read


def _float(codec: Codec) -> Read:
    assert isinstance(codec, FloatCodec)
    key = _key(codec.field, I32 if codec.field == "f32" else I64)
    fixed = _F32 if codec.field == "f32" else _F64

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        if buf[pos] != key:
            raise NotCanonical("kind")
        end = pos + 1 + fixed.size
        if end > len(buf):
            raise NotCanonical("truncated")
        return fixed.unpack_from(buf, pos + 1)[0], end

    return read


def _char(codec: Codec) -> Read:
    key = _key("char", VARINT)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        if buf[pos] != key:
            raise NotCanonical("kind")
        n, pos = read_varint(buf, pos + 1)
        if n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
            raise NotCanonical("char")
        return chr(n), pos

    return read


def _string(codec: Codec) -> Read:
    key = _key("string")

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        start, end = _length(buf, pos, key)
        try:
            return buf[start:end].decode(), end
        except UnicodeDecodeError:
            raise NotCanonical("utf-8") from None

    return read


def _bytes(codec: Codec) -> Read:
    key = _key("bytes")

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        start, end = _length(buf, pos, key)
        return buf[start:end], end

    return read


def _items(buf: bytes, pos: int, key: int, read: Read) -> tuple[list[Any], int]:
    """The items of a ValueList value (a list's), each read by ``read``."""
    at, end = _length(buf, pos, key)
    out = []
    while at < end:
        start, stop = _length(buf, at, _ITEM)
        value, at = read(buf, start)
        if at != stop:
            raise NotCanonical("item")
        out.append(value)
    if at != end:
        raise NotCanonical("items")
    return out, end


def _each(buf: bytes, pos: int, key: int, readers: list[Read]) -> tuple[list[Any], int]:
    """The items of a ValueList value (a record's or tuple's), one read by each of ``readers``."""
    at, end = _length(buf, pos, key)
    out = []
    for read in readers:
        start, stop = _length(buf, at, _ITEM)
        value, at = read(buf, start)
        if at != stop:
            raise NotCanonical("item")
        out.append(value)
    if at != end:
        raise NotCanonical("items")
    return out, end


def _list(codec: Codec) -> Read:
    assert isinstance(codec, ListCodec)
    key, element = _key("list"), reader(codec.element)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        return _items(buf, pos, key, element)

    return read


def _record(codec: Codec) -> Read:
    assert isinstance(codec, RecordCodec)
    key = _key("list")
    names = [name for name, _ in codec.fields]
    fields = [reader(c) for _, c in codec.fields]

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        values, end = _each(buf, pos, key, fields)
        record = wc.Record()
        for name, value in zip(names, values, strict=True):
            setattr(record, name, value)
        return record, end

    return read


def _tuple(codec: Codec) -> Read:
    assert isinstance(codec, TupleCodec)
    key, elements = _key("list"), [reader(c) for c in codec.elements]

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        values, end = _each(buf, pos, key, elements)
        return tuple(values), end

    return read


def _case(buf: bytes, pos: int, key: int) -> tuple[int, int | None, int]:
    """A Case value: its index, where its payload's key is (None without one), where it ends."""
    start, end = _length(buf, pos, key)
    index, at = 0, start
    if at < end and buf[at] == _CASE_INDEX:
        index, at = read_varint(buf, at + 1)
    if at == end:
        return index, None, end
    payload_start, payload_end = _length(buf, at, _CASE_PAYLOAD)
    if payload_end != end:
        raise NotCanonical("case")
    return index, payload_start, end


def _cases(codec: Codec) -> Read:
    assert isinstance(codec, CasesCodec)
    key = _key("case")
    payloads = [None if c is None else reader(c) for _, c in codec.cases]
    make = codec.make

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, payload_at, end = _case(buf, pos, key)
        if index >= len(payloads):
            raise NotCanonical("case index")
        payload = payloads[index]
        if payload is None:
            if payload_at is not None:
                raise NotCanonical("payload")
            return make(index, None), end
        if payload_at is None:
            raise NotCanonical("payload")
        value, _ = payload(buf, payload_at)
        return make(index, value), end

    return read


def _enum(codec: Codec) -> Read:
    assert isinstance(codec, EnumCodec)
    key = _key("case")
    names = codec.names

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, payload_at, end = _case(buf, pos, key)
        if index >= len(names) or payload_at is not None:
            raise NotCanonical("enum")
        return names[index], end

    return read


def _flags(codec: Codec) -> Read:
    assert isinstance(codec, FlagsCodec)
    key = _key("flags")
    names = codec.names

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        start, end = _length(buf, pos, key)
        out: set[str] = set()
        if start < end:
            at, stop = _length(buf, start, _FLAGS_SET)
            if stop != end:
                raise NotCanonical("flags")
            while at < stop:
                index, at = read_varint(buf, at)
                if index >= len(names):
                    raise NotCanonical("flag index")
                out.add(names[index])
        return out, end

    return read


_READERS: dict[type, Callable[[Codec], Read]] = {
    BoolCodec: _bool,
    IntCodec: _int,
    FloatCodec: _float,
    CharCodec: _char,
    StringCodec: _string,
    BytesCodec: _bytes,
    ListCodec: _list,
    RecordCodec: _record,
    TupleCodec: _tuple,
    EnumCodec: _enum,
    FlagsCodec: _flags,
    CasesCodec: _cases,
}
