"""A type's reader of wasmtime's C values, compiled into one Python function.

:func:`encoder` turns wasmtime's C value of a type (a
``wasmtime_component_val_t``, read where it lies: :mod:`agent.values.clayout`) into the
serialized ``Value`` its lifted object would encode to. Walking the codec tree
for that costs a method call, a framing call and a length call per node:
``parse``'s ``result<log-entry, string>`` made 30 Python calls per result, and
in the serving agent, between calls a millisecond apart, each costs several
times what it does in a hot loop. So the tree is compiled, once per type, into
the source of a single function that reads the whole value inline: fields
unpacked with :mod:`struct` at offsets known when it is written, strings sliced,
every length framed in place, constant parts (enum cases, payload-less cases,
keys) made once.

The source is written from the codec's shape only: every name, key, table and
struct it uses is passed in as a constant, never spelled into the text, so
nothing a component declares (a field or case name) becomes code. Types this
module does not inline (flags) call a helper.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from agent.values import clayout
from agent.values.clayout import ENTRY, ENTRY_VAL, KIND, MEMORY, NAME, OF, OPTION, RESULT, RESULT_VAL, VAL, VARIANT_VAL
from agent.values.codec import Codec
from agent.values.compound import CasesCodec, EnumCodec, FlagsCodec, ListCodec, RecordCodec, TupleCodec
from agent.values.framing import (
    BYTES_KEY,
    CASE_INDEX_KEY,
    CASE_KEY,
    CASE_PAYLOAD_KEY,
    FLAGS_KEY,
    FLAGS_SET_KEY,
    ITEM_KEY,
    LIST_KEY,
    SMALL_VARINTS,
    STRING_KEY,
    delimited,
    varint,
    zigzag,
)
from agent.values.scalars import BoolCodec, BytesCodec, CharCodec, FloatCodec, IntCodec, StringCodec
from agent.values.sourcegen import Source

# What every compiled reader may use, by these names.
_GLOBALS: dict[str, Any] = {
    "M": MEMORY,
    "VEC": clayout.VEC_LAYOUT,  # a vector: count, then data pointer
    "PTR": clayout.POINTER_LAYOUT,
    "S": SMALL_VARINTS,
    "varint": varint,
    "zigzag": zigzag,
    "__builtins__": {"len": len, "range": range, "sorted": sorted},
}


def encoder(codec: Codec) -> Callable[[int], bytes]:
    """The function compiled for ``codec``'s type that turns its C value at an address into the
    serialized ``Value`` its lifted object's :meth:`~agent.values.codec.Codec.to_proto` would
    serialize to; compiled once per codec and kept on it."""
    compiled = codec._reader
    if compiled is None:
        compiled = codec._reader = compile_wire(codec)
    return compiled


def compile_wire(codec: Codec) -> Callable[[int], bytes]:
    """The reader of ``codec``'s C values: address -> serialized ``Value``."""
    source = _Source()
    result = source.emit(codec, "a", 1)
    reader: Callable[[int], bytes] = source.function("wire(a)", result, _GLOBALS, f"wire reader of {codec.wit[:60]}")
    return reader


class _Source(Source):
    """The lines of one reader of C values."""

    def framed(self, indent: int, key: bytes, payload: str) -> str:
        """A variable holding ``key``, then ``payload`` (a variable of bytes) length-delimited."""
        size, out = self.name("n"), self.name("v")
        self.add(indent, f"{size} = len({payload})")
        self.add(indent, f"{out} = {self.const(key)} + (S[{size}] if {size} < 128 else varint({size})) + {payload}")
        return out

    def emit(self, codec: Codec, at: str, indent: int) -> str:
        """Lines reading the value at address ``at`` (an expression); the variable they leave it in."""

        out = self.name("v")
        if isinstance(codec, BoolCodec):
            true, false = self.const(codec._TRUE), self.const(codec._FALSE)
            self.add(indent, f"{out} = {true} if M[{at} + {OF}] else {false}")
        elif isinstance(codec, IntCodec):
            raw, key = self.const(codec._raw), self.const(codec._key)
            number = f"{raw}.unpack_from(M, {at} + {OF})[0]"
            self.add(indent, f"{out} = {key} + varint({f'zigzag({number})' if codec.signed else number})")
        elif isinstance(codec, FloatCodec):
            raw, fixed, key = self.const(codec._raw), self.const(codec._wire), self.const(codec._key)
            self.add(indent, f"{out} = {key} + {fixed}.pack({raw}.unpack_from(M, {at} + {OF})[0])")
        elif isinstance(codec, CharCodec):
            u32, key = self.const(struct.Struct("@I")), self.const(codec._KEY)
            self.add(indent, f"{out} = {key} + varint({u32}.unpack_from(M, {at} + {OF})[0])")
        elif isinstance(codec, StringCodec):
            size, data = self.name("n"), self.name("d")
            self.add(indent, f"{size}, {data} = VEC.unpack_from(M, {at} + {OF})")
            key, text = self.const(STRING_KEY), f"M[{data}:{data} + {size}].tobytes()"
            self.add(indent, f"{out} = {key} + (S[{size}] if {size} < 128 else varint({size})) + {text}")
        elif isinstance(codec, BytesCodec):
            size, data = self.name("n"), self.name("d")
            self.add(indent, f"{size}, {data} = VEC.unpack_from(M, {at} + {OF})")
            key = self.const(BYTES_KEY)
            # Each element is a u8 value: its byte lies at OF in it, one every VAL bytes.
            view = f"M[{data} + {OF}:{data} + {size} * {VAL}:{VAL}].tobytes()"
            self.add(indent, f"{out} = {key} + (S[{size}] if {size} < 128 else varint({size})) + {view}")
        elif isinstance(codec, ListCodec):
            size, data, parts, i = self.name("n"), self.name("d"), self.name("parts"), self.name("i")
            self.add(indent, f"{size}, {data} = VEC.unpack_from(M, {at} + {OF})")
            self.add(indent, f"{parts} = []")
            self.add(indent, f"for {i} in range({size}):")
            item = self.emit(codec.element, f"{data} + {i} * {VAL}", indent + 1)
            self.add(indent + 1, f"{parts}.append({self.framed(indent + 1, ITEM_KEY, item)})")
            return self._value_list(indent, f'b"".join({parts})', out)
        elif isinstance(codec, (RecordCodec, TupleCodec)):
            data = self.name("d")
            self.add(indent, f"_, {data} = VEC.unpack_from(M, {at} + {OF})")
            if isinstance(codec, RecordCodec):  # each field: its name, then its value
                places = [f"{data} + {ENTRY_VAL + i * ENTRY}" for i in range(len(codec.fields))]
                members = [member for _, member in codec.fields]
            else:
                places = [f"{data} + {i * VAL}" for i in range(len(codec.elements))]
                members = list(codec.elements)
            items = [
                self.framed(indent, ITEM_KEY, self.emit(m, p, indent)) for m, p in zip(members, places, strict=True)
            ]
            return self._value_list(indent, " + ".join(items) or 'b""', out)
        elif isinstance(codec, EnumCodec):
            size, data = self.name("n"), self.name("d")
            table = self.const([_case_value(i, None) for i in range(len(codec.names))])
            index = self.const(codec._by_name)
            self.add(indent, f"{size}, {data} = VEC.unpack_from(M, {at} + {OF})")
            self.add(indent, f"{out} = {table}[{index}[M[{data}:{data} + {size}].tobytes()]]")
        elif isinstance(codec, CasesCodec):
            self._cases(codec, at, indent, out)
        elif isinstance(codec, FlagsCodec):
            self.add(indent, f"{out} = {self.const(_flags)}({at}, {self.const(codec._by_name)})")
        else:
            raise TypeError(f"no wire reader for {type(codec).__name__}")
        return out

    def _value_list(self, indent: int, body: str, out: str) -> str:
        """The serialized Value of a list, record or tuple whose framed items are ``body``."""
        items = self.name("b")
        self.add(indent, f"{items} = {body}")
        framed = self.framed(indent, LIST_KEY, items)
        self.add(indent, f"{out} = {framed}")
        return out

    def _cases(self, codec: Any, at: str, indent: int, out: str) -> None:
        """variant, option and result: which case wasmtime wrote, then that case's payload."""
        kind, payload, index = self.name("kind"), self.name("p"), self.name("x")
        self.add(indent, f"{kind} = M[{at} + {KIND}]")
        self.add(indent, f"if {kind} == {OPTION}:")
        self.add(indent + 1, f"{payload} = PTR.unpack_from(M, {at} + {OF})[0]")
        self.add(indent + 1, f"{index} = 1 if {payload} else 0")
        self.add(indent, f"elif {kind} == {RESULT}:")
        self.add(indent + 1, f"{payload} = PTR.unpack_from(M, {at} + {OF + RESULT_VAL})[0]")
        self.add(indent + 1, f"{index} = 0 if M[{at} + {OF}] else 1")
        self.add(indent, "else:")
        size, data = self.name("n"), self.name("d")
        self.add(indent + 1, f"{size}, {data} = VEC.unpack_from(M, {at} + {OF})")
        self.add(indent + 1, f"{payload} = PTR.unpack_from(M, {at} + {OF + VARIANT_VAL})[0]")
        self.add(indent + 1, f"{index} = {self.const(codec._by_name)}[M[{data}:{data} + {size}].tobytes()]")
        for i, (_, case) in enumerate(codec.cases):
            self.add(indent, f"{'if' if i == 0 else 'elif'} {index} == {i}:")
            if case is None:
                self.add(indent + 1, f"{out} = {self.const(_case_value(i, None))}")
                continue
            inner = self.emit(case, payload, indent + 1)
            head = self.const(CASE_INDEX_KEY + varint(i) if i else b"")  # proto3 leaves an index of 0 out
            framed = self.framed(indent + 1, CASE_PAYLOAD_KEY, inner)
            body = self.name("c")
            self.add(indent + 1, f"{body} = {head} + {framed}")
            self.add(indent + 1, f"{out} = {self.framed(indent + 1, CASE_KEY, body)}")
        self.add(indent, "else:")
        self.add(indent + 1, f"raise ValueError('case ' + str({index}) + ' is out of range')")


def _case_value(index: int, payload: bytes | None) -> bytes:
    """The serialized Value of case ``index`` with a serialized ``payload`` (or none)."""
    case = CASE_INDEX_KEY + varint(index) if index else b""
    if payload is not None:
        case += delimited(CASE_PAYLOAD_KEY, payload)
    return delimited(CASE_KEY, case)


def _flags(address: int, by_name: dict[bytes, int]) -> bytes:
    """The serialized Value of the flags value at ``address``: the set flags' indexes, packed, in order."""
    count, names = clayout.vec(address + OF)
    indexes = sorted(by_name[clayout.text(names + i * NAME)] for i in range(count))
    packed = b"".join([varint(i) for i in indexes])
    return delimited(FLAGS_KEY, delimited(FLAGS_SET_KEY, packed) if packed else b"")
