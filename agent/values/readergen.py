"""A type's reader of serialized ``Value`` s, compiled into one Python function.

:func:`agent.values.readers.reader` reads a forwarded call's result from the reply's
bytes into the objects wasmtime-py takes, one closure per node of the type: a
call per field, and another per length. This compiles the same reading, once
per type, into the source of a single function (as :mod:`agent.values.encodergen` does
for the serving side): keys checked and lengths read inline, records built in
place. It takes what :mod:`agent.values.readers` takes, the canonical encoding,
and raises :class:`agent.values.readers.NotCanonical` (or IndexError, for bytes
that end too soon) for anything else, which the caller then decodes through
the generated classes. Types it does not inline (flags, floats and the like)
are read by :mod:`agent.values.readers`'s closure for them.

As in :mod:`agent.values.encodergen`, the source is written from the codec's shape only:
names, keys and tables are constants passed in, never spelled into the text.
"""

from __future__ import annotations

from typing import Any, Callable

from wasmtime import component as wc

from agent.values import readers
from agent.values.codec import Codec
from agent.values.compound import CasesCodec, EnumCodec, ListCodec, RecordCodec, TupleCodec
from agent.values.framing import (
    CASE_INDEX_KEY,
    CASE_KEY,
    CASE_PAYLOAD_KEY,
    ITEM_KEY,
    LIST_KEY,
    STRING_KEY,
    VARINT,
    read_varint,
)
from agent.values.scalars import IntCodec, StringCodec
from agent.values.signature import Signature
from agent.values.sourcegen import Source
from neon._proto import values_pb2

Value = values_pb2.Value
_ITEM, _CASE_INDEX, _CASE_PAYLOAD = ITEM_KEY[0], CASE_INDEX_KEY[0], CASE_PAYLOAD_KEY[0]
_LIST, _CASE, _STRING = LIST_KEY[0], CASE_KEY[0], STRING_KEY[0]

_GLOBALS: dict[str, Any] = {
    "NC": readers.NotCanonical,
    "varint": read_varint,
    "Record": wc.Record,
    "__builtins__": {"len": len, "setattr": setattr},
}


def compile_reader(codec: Codec) -> readers.Read:
    """The reader of one serialized ``Value`` of ``codec``'s type: (bytes, where its key is) ->
    (the object, where the next field starts)."""
    source = _Source()
    source.add(1, "n = len(buf)")
    value, end = source.emit(codec, "p", 1)
    read: readers.Read = source.function("read(buf, p)", f"{value}, {end}", _GLOBALS, f"reader of {codec.wit[:60]}")
    return read


class _Source(Source):
    """The lines of one reader of serialized Values."""

    def framed(self, indent: int, at: str, key: int) -> tuple[str, str]:
        """Lines checking that the field at ``at`` has ``key`` and is length-delimited; the variables
        holding where its bytes start and end."""
        start, end = self.name("s"), self.name("e")
        self.add(indent, f"if buf[{at}] != {key}:")
        self.add(indent + 1, "raise NC('key')")
        self.add(indent, f"{end} = buf[{at} + 1]")
        self.add(indent, f"if {end} < 128:")
        self.add(indent + 1, f"{start} = {at} + 2")
        self.add(indent, "else:")
        self.add(indent + 1, f"{end}, {start} = varint(buf, {at} + 1)")
        self.add(indent, f"{end} += {start}")
        self.add(indent, f"if {end} > n:")
        self.add(indent + 1, "raise NC('truncated')")
        return start, end

    def emit(self, codec: Codec, at: str, indent: int) -> tuple[str, str]:
        """Lines reading the Value whose key is at ``at``; the variables of the object and of where it ends."""
        value = self.name("v")
        if isinstance(codec, StringCodec):
            start, end = self.framed(indent, at, _STRING)
            self.add(indent, f"{value} = buf[{start}:{end}].decode()")
            return value, end
        if isinstance(codec, IntCodec):
            key, end = readers._key(codec.field, VARINT), self.name("e")
            self.add(indent, f"if buf[{at}] != {key}:")
            self.add(indent + 1, "raise NC('kind')")
            self.add(indent, f"{value}, {end} = varint(buf, {at} + 1)")
            if codec.signed:
                self.add(indent, f"{value} = ({value} >> 1) ^ -({value} & 1)")
            self.add(indent, f"if not {codec.lo} <= {value} <= {codec.hi}:")
            self.add(indent + 1, "raise NC('range')")
            return value, end
        if isinstance(codec, (RecordCodec, TupleCodec)):
            start, end = self.framed(indent, at, _LIST)
            members = [c for _, c in codec.fields] if isinstance(codec, RecordCodec) else list(codec.elements)
            cursor, items = start, []
            for member in members:
                item_start, item_end = self.framed(indent, cursor, _ITEM)
                item, after = self.emit(member, item_start, indent)
                self.add(indent, f"if {after} != {item_end}:")
                self.add(indent + 1, "raise NC('item')")
                items.append(item)
                cursor = item_end
            self.add(indent, f"if {cursor} != {end}:")
            self.add(indent + 1, "raise NC('items')")
            if isinstance(codec, RecordCodec):
                self.add(indent, f"{value} = Record()")
                for (name, _), item in zip(codec.fields, items, strict=True):
                    self.add(indent, f"setattr({value}, {self.const(name)}, {item})")
            else:
                self.add(indent, f"{value} = ({', '.join(items)}{',' if len(items) == 1 else ''})")
            return value, end
        if isinstance(codec, (CasesCodec, EnumCodec)):
            return self._cases(codec, at, indent, value)
        if isinstance(codec, ListCodec):
            start, end = self.framed(indent, at, _LIST)
            cursor = self.name("c")
            self.add(indent, f"{value} = []")
            self.add(indent, f"{cursor} = {start}")
            self.add(indent, f"while {cursor} < {end}:")
            item_start, item_end = self.framed(indent + 1, cursor, _ITEM)
            item, after = self.emit(codec.element, item_start, indent + 1)
            self.add(indent + 1, f"if {after} != {item_end}:")
            self.add(indent + 2, "raise NC('item')")
            self.add(indent + 1, f"{value}.append({item})")
            self.add(indent + 1, f"{cursor} = {item_end}")
            self.add(indent, f"if {cursor} != {end}:")
            self.add(indent + 1, "raise NC('items')")
            return value, end
        end = self.name("e")  # any other type: valueread's own reader of it
        self.add(indent, f"{value}, {end} = {self.const(readers.reader(codec))}(buf, {at})")
        return value, end

    def _cases(self, codec: CasesCodec | EnumCodec, at: str, indent: int, value: str) -> tuple[str, str]:
        """variant, option, result and enum: a case index, then the case's payload if it has one."""
        start, end = self.framed(indent, at, _CASE)
        index, cursor = self.name("x"), self.name("c")
        self.add(indent, f"{index}, {cursor} = 0, {start}")
        self.add(indent, f"if {cursor} < {end} and buf[{cursor}] == {_CASE_INDEX}:")
        self.add(indent + 1, f"{index}, {cursor} = varint(buf, {cursor} + 1)")
        payloads: list[Codec | None] = (
            [None] * len(codec.names) if isinstance(codec, EnumCodec) else [c for _, c in codec.cases]
        )
        for i, payload in enumerate(payloads):
            self.add(indent, f"{'if' if i == 0 else 'elif'} {index} == {i}:")
            if payload is None:
                self.add(indent + 1, f"if {cursor} != {end}:")
                self.add(indent + 2, "raise NC('payload')")
                if isinstance(codec, EnumCodec):
                    self.add(indent + 1, f"{value} = {self.const(codec.names[i])}")
                elif codec.tagged:  # a fresh Variant each time: the caller gets its own object
                    self.add(indent + 1, f"{value} = {self.const(codec.make)}({i}, None)")
                else:
                    self.add(indent + 1, f"{value} = None")
                continue
            inner_start, inner_end = self.framed(indent + 1, cursor, _CASE_PAYLOAD)
            self.add(indent + 1, f"if {inner_end} != {end}:")
            self.add(indent + 2, "raise NC('case')")
            inner, after = self.emit(payload, inner_start, indent + 1)
            self.add(indent + 1, f"if {after} != {inner_end}:")
            self.add(indent + 2, "raise NC('payload')")
            assert isinstance(codec, CasesCodec)
            if codec.tagged:
                self.add(indent + 1, f"{value} = {self.const(codec.make)}({i}, {inner})")
            else:
                self.add(indent + 1, f"{value} = {inner}")  # make() of an untagged case is its payload
        self.add(indent, "else:")
        self.add(indent + 1, "raise NC('case index')")
        return value, end


def result_reader(signature: Signature) -> Callable[[bytes | None], Any]:
    """What a forwarder turns its reply's serialized result into (None: the reply carried none):
    read canonically (by one function compiled for the type, :mod:`agent.values.readergen`), else through the
    generated classes and ``from_proto`` (which word the error)."""
    read = compile_reader(signature.result) if signature.result is not None else None

    def decode(raw: bytes | None) -> Any:
        if read is not None and raw is not None:
            try:
                value, end = read(raw, 0)
                if end == len(raw):
                    return value
            except (ValueError, IndexError):  # NotCanonical, or a varint that is not one
                pass
        return signature.result_from_proto(None if raw is None else Value.FromString(raw))

    return decode
