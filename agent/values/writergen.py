"""A type's writer of Python values into serialized ``Value`` s, compiled into one Python function.

:meth:`agent.values.codec.Codec.to_wire` writes a forwarded call's arguments from the objects wasmtime-py
gives, one method call per node of the type. This compiles the same writing, once per type, into the source of
a single function (as :mod:`agent.values.readergen` does for reading the answer): each type checked and each
length framed inline, no path made. It writes exactly what ``to_proto`` would serialize to; a value that does
not fit raises :class:`Misfit`, and the caller encodes it again through ``to_wire``, which names where it
misfits. Types it does not inline (floats, chars, bytes) call their codec's ``to_wire``.

As in :mod:`agent.values.encodergen`, the source is written from the codec's shape only: names, keys and tables
are constants passed in, never spelled into the text.
"""

from __future__ import annotations

from typing import Any, Callable

from wasmtime import component as wc

from agent.values.codec import Codec
from agent.values.compound import CasesCodec, EnumCodec, FlagsCodec, ListCodec, RecordCodec, TupleCodec
from agent.values.framing import (
    CASE_INDEX_KEY,
    CASE_KEY,
    CASE_PAYLOAD_KEY,
    FLAGS_KEY,
    FLAGS_SET_KEY,
    ITEM_KEY,
    LIST_KEY,
    SMALL_VARINTS,
    STRING_KEY,
    varint,
    zigzag,
)
from agent.values.scalars import BoolCodec, IntCodec, StringCodec
from agent.values.sourcegen import Source

Write = Callable[[Any], bytes]


class Misfit(Exception):
    """The value does not fit the type (the caller asks ``to_wire`` to say where)."""


_GLOBALS: dict[str, Any] = {
    "M": Misfit,
    "S": SMALL_VARINTS,
    "varint": varint,
    "zigzag": zigzag,
    "Variant": wc.Variant,
    "__builtins__": {
        "len": len,
        "type": type,
        "getattr": getattr,
        "str": str,
        "int": int,
        "bool": bool,
        "list": list,
        "tuple": tuple,
        "set": set,
        "sorted": sorted,
    },
}


def compile_writer(codec: Codec) -> Write:
    """The writer of one value of ``codec``'s type: the object -> its serialized ``Value``; raises
    :class:`Misfit` (or another exception) for a value that does not fit."""
    source = _Source()
    out = source.emit(codec, "v", 1)
    write: Write = source.function("write(v)", out, _GLOBALS, f"writer of {codec.wit[:60]}")
    return write


class _Source(Source):
    """The lines of one writer of serialized Values."""

    def framed(self, indent: int, key: bytes, body: str) -> str:
        """A line framing ``body`` (a bytes variable) as a length-delimited field of ``key``; its variable."""
        out, size = self.name("o"), self.name("n")
        self.add(indent, f"{size} = len({body})")
        self.add(indent, f"{out} = {self.const(key)} + (S[{size}] if {size} < 128 else varint({size})) + {body}")
        return out

    def emit(self, codec: Codec, value: str, indent: int) -> str:
        """Lines writing ``value`` (a variable) as a serialized Value of ``codec``; the variable of its bytes."""
        if isinstance(codec, StringCodec):
            raw = self.name("b")
            self.add(indent, f"if type({value}) is not str:")
            self.add(indent + 1, "raise M()")
            self.add(indent, f"{raw} = {value}.encode()")  # a lone surrogate raises: to_wire then says so
            return self.framed(indent, STRING_KEY, raw)
        if isinstance(codec, IntCodec):
            out, number = self.name("o"), self.name("x")
            self.add(indent, f"if type({value}) is not int or not {codec.lo} <= {value} <= {codec.hi}:")
            self.add(indent + 1, "raise M()")
            self.add(indent, f"{number} = {'zigzag(' + value + ')' if codec.signed else value}")
            self.add(
                indent, f"{out} = {self.const(codec._key)} + (S[{number}] if {number} < 128 else varint({number}))"
            )
            return out
        if isinstance(codec, BoolCodec):
            out = self.name("o")
            self.add(indent, f"if type({value}) is not bool:")
            self.add(indent + 1, "raise M()")
            true, false = self.const(BoolCodec._TRUE), self.const(BoolCodec._FALSE)
            self.add(indent, f"{out} = {true} if {value} else {false}")
            return out
        if isinstance(codec, (RecordCodec, TupleCodec)):
            return self._members(codec, value, indent)
        if isinstance(codec, ListCodec):
            parts, item = self.name("p"), self.name("i")
            self.add(indent, f"if type({value}) is not list:")
            self.add(indent + 1, "raise M()")
            self.add(indent, f"{parts} = []")
            self.add(indent, f"for {item} in {value}:")
            inner = self.emit(codec.element, item, indent + 1)
            self.add(indent + 1, f"{parts}.append({self.framed(indent + 1, ITEM_KEY, inner)})")
            body = self.name("b")
            self.add(indent, f"{body} = b''.join({parts})")
            return self.framed(indent, LIST_KEY, body)
        if isinstance(codec, EnumCodec):
            index, body = self.name("x"), self.name("b")
            self.add(indent, f"{index} = {self.const(codec.index)}.get({value}) if type({value}) is str else None")
            self.add(indent, f"if {index} is None:")
            self.add(indent + 1, "raise M()")
            self.add(indent, f"{body} = {self.const(CASE_INDEX_KEY)} + varint({index}) if {index} else b''")
            return self.framed(indent, CASE_KEY, body)
        if isinstance(codec, CasesCodec):
            return self._cases(codec, value, indent)
        if isinstance(codec, FlagsCodec) and len(codec.names) <= 128:  # each index a varint of one byte
            indexes, body, flag = self.name("x"), self.name("b"), self.name("n")
            self.add(indent, f"if type({value}) is not set:")
            self.add(indent + 1, "raise M()")
            self.add(indent, f"{indexes} = sorted([{self.const(codec.index)}[{flag}] for {flag} in {value}])")
            self.add(indent, f"{body} = b''")
            self.add(indent, f"if {indexes}:")
            packed = self.name("b")
            self.add(indent + 1, f"{packed} = b''.join([S[{flag}] for {flag} in {indexes}])")
            self.add(indent + 1, f"{body} = {self.framed(indent + 1, FLAGS_SET_KEY, packed)}")
            return self.framed(indent, FLAGS_KEY, body)
        out = self.name("o")  # any other type: its codec's own writer
        self.add(indent, f"{out} = {self.const(codec.to_wire)}({value})")
        return out

    def _members(self, codec: RecordCodec | TupleCodec, value: str, indent: int) -> str:
        """A record's fields or a tuple's elements, in order, as the items of a list."""
        if isinstance(codec, RecordCodec):
            members = [(self.name("f"), c, name) for name, c in codec.fields]
            for var, _, name in members:  # a missing field raises AttributeError: to_wire then names it
                self.add(indent, f"{var} = getattr({value}, {self.const(name)})")
        else:
            members = [(self.name("f"), c, "") for c in codec.elements]
            self.add(indent, f"if type({value}) not in (tuple, list) or len({value}) != {len(members)}:")
            self.add(indent + 1, "raise M()")
            for i, (var, _, _) in enumerate(members):
                self.add(indent, f"{var} = {value}[{i}]")
        items = [self.framed(indent, ITEM_KEY, self.emit(c, var, indent)) for var, c, _ in members]
        body = self.name("b")
        self.add(indent, f"{body} = {' + '.join(items) if items else repr(b'')}")
        return self.framed(indent, LIST_KEY, body)

    def _cases(self, codec: CasesCodec, value: str, indent: int) -> str:
        """variant, option and result: the case's index (left out when 0, as proto3 does) and payload."""
        body, payload = self.name("b"), self.name("y")
        branches: list[tuple[str, int]] = []
        if codec.tagged:
            index = self.name("x")
            self.add(indent, f"if type({value}) is not Variant:")
            self.add(indent + 1, "raise M()")
            self.add(indent, f"{index} = {self.const(codec.index)}.get({value}.tag)")
            self.add(indent, f"{payload} = {value}.payload")
            branches = [(f"{index} == {i}", i) for i in range(len(codec.cases))]
        else:  # wasmtime-py's bare payloads: the first case whose payload the value matches (case_of's rule)
            self.add(indent, f"{payload} = {value}")
            for i, (_, case) in enumerate(codec.cases):
                test = f"{value} is None" if case is None else f"{self.const(case.matches)}({value})"
                branches.append((test, i))
        for n, (test, i) in enumerate(branches):
            self.add(indent, f"{'if' if n == 0 else 'elif'} {test}:")
            head = self.const(CASE_INDEX_KEY + varint(i)) if i else "b''"
            case = codec.cases[i][1]
            if case is None:
                if codec.tagged:
                    self.add(indent + 1, f"if {payload} is not None:")
                    self.add(indent + 2, "raise M()")
                self.add(indent + 1, f"{body} = {head}")
                continue
            inner = self.emit(case, payload, indent + 1)
            self.add(indent + 1, f"{body} = {head} + {self.framed(indent + 1, CASE_PAYLOAD_KEY, inner)}")
        self.add(indent, "else:")
        self.add(indent + 1, "raise M()")
        return self.framed(indent, CASE_KEY, body)
