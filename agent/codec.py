"""Type-driven conversion of component values: wasmtime <-> protobuf and JSON.

A function's WIT types are compiled once into a tree of :class:`Codec` nodes;
encoding and decoding then never touch wasmtime's type objects (whose every
property access crosses the FFI). Both ends of a split link encode from their
own view of the same WIT types, so the wire carries no names or tags.

wasmtime-py represents values as Python objects: records as
``wasmtime.component.Record`` attributes, tuples, ``set`` for flags, ``str``
for enums, and for variant-like types either the bare payload or, when payload
classes would be ambiguous, ``Variant(tag, payload)``. :func:`_is_tagged`
replicates wasmtime's rule so the values we build are the ones it expects.

A result bound for the wire can skip those Python objects, and the ``Value``
message too: :meth:`Codec.wire` reads wasmtime's C value (``wasmtime_component_val_t``,
where it lies: :mod:`agent.cvalue`) straight into a serialized ``Value``
(:mod:`agent.pbwire`), the bytes :meth:`Codec.to_proto` of the lifted object
would serialize to, through one function compiled per type (:mod:`agent.wiregen`).
It reads only; the caller frees the C value once, whole (:mod:`agent.rawcall`).
"""

from __future__ import annotations

import base64
import functools
import math
import struct
from typing import Any, Callable, Sequence

from wasmtime import component as wc

from agent.pbwire import I32, I64, LEN, VARINT, delimited, key_of, varint, zigzag
from neon._proto import values_pb2
from neon.errors import InvalidArgument

Value = values_pb2.Value


class CodecError(InvalidArgument):
    """A value does not fit its WIT type; ``path`` says where."""


class Unsupported(InvalidArgument):
    """A WIT type that cannot cross nodes (resources, streams, futures)."""


def _sub(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fail(path: str, message: str) -> CodecError:
    return CodecError(f"{path or 'value'}: {message}", path=path)


class Codec:
    """One WIT type."""

    wit: str = "?"
    _reader: Callable[[int], bytes] | None = None  # the compiled reader of C values (wire), once made

    def classes(self) -> frozenset[type]:
        """Python classes wasmtime uses for this type (for the tagging rule)."""
        raise NotImplementedError

    def matches(self, value: Any) -> bool:
        """Whether a lifted wasmtime value belongs to this type (exactly, bool is not int)."""
        raise NotImplementedError

    def to_proto(self, value: Any, path: str = "") -> Value:
        raise NotImplementedError

    def to_wire(self, value: Any, path: str = "") -> bytes:
        """:meth:`to_proto`, serialized (written directly by the types a call's arguments most often have)."""
        return self.to_proto(value, path).SerializeToString()

    def wire(self, address: int) -> bytes:
        """The serialized ``Value`` of wasmtime's C value of this type at ``address``: what :meth:`to_proto`
        of its lifted object serializes to (read by :meth:`wire_reader`'s function)."""
        return self.wire_reader()(address)

    def wire_reader(self) -> Callable[[int], bytes]:
        """The function compiled for this type (:mod:`agent.wiregen`) that :meth:`wire` calls, made once."""
        reader = self._reader
        if reader is None:
            from agent.wiregen import compile_wire  # it reads the codec classes of this module

            reader = self._reader = compile_wire(self)
        return reader

    def from_proto(self, msg: Value, path: str = "") -> Any:
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        raise NotImplementedError

    def from_json(self, doc: Any, path: str = "") -> Any:
        raise NotImplementedError

    def _kind(self, msg: Value, want: str, path: str) -> None:
        got = msg.WhichOneof("kind")
        if got != want:
            raise _fail(path, f"expected {self.wit} on the wire, got {got or 'nothing'}")


class BoolCodec(Codec):
    wit = "bool"

    def classes(self) -> frozenset[type]:
        return frozenset({bool})

    def matches(self, value: Any) -> bool:
        return type(value) is bool

    def to_proto(self, value: Any, path: str = "") -> Value:
        return Value(bool=value)

    _TRUE = key_of(Value, "bool", VARINT) + b"\x01"
    _FALSE = key_of(Value, "bool", VARINT) + b"\x00"

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, "bool", path)
        return msg.bool

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is not bool:
            raise _fail(path, f"expected true or false, got {doc!r}")
        return doc


class IntCodec(Codec):
    def __init__(self, wit: str, signed: bool, bits: int) -> None:
        self.wit = wit
        self.signed = signed
        self.lo = -(1 << (bits - 1)) if signed else 0
        self.hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        self.field = "s64" if signed else "u64"
        letter = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
        self._raw = struct.Struct("@" + (letter if signed else letter.upper()))  # how wasmtime holds it
        self._key = key_of(Value, self.field, VARINT)

    def classes(self) -> frozenset[type]:
        return frozenset({int})

    def matches(self, value: Any) -> bool:
        return type(value) is int

    def _check(self, value: Any, path: str) -> int:
        if type(value) is not int:
            raise _fail(path, f"expected {self.wit}, got {type(value).__name__} {value!r}")
        if not self.lo <= value <= self.hi:
            raise _fail(path, f"{value} is out of range for {self.wit} ({self.lo}..{self.hi})")
        return value

    def to_proto(self, value: Any, path: str = "") -> Value:
        checked = self._check(value, path)
        return Value(s64=checked) if self.signed else Value(u64=checked)

    def to_wire(self, value: Any, path: str = "") -> bytes:
        checked = self._check(value, path)
        return self._key + varint(zigzag(checked) if self.signed else checked)

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, self.field, path)
        return self._check(getattr(msg, self.field), path)

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, doc: Any, path: str = "") -> Any:
        return self._check(doc, path)


class FloatCodec(Codec):
    def __init__(self, wit: str) -> None:
        self.wit = wit
        self.field = wit
        self._raw = struct.Struct("@f" if wit == "f32" else "@d")
        self._wire = struct.Struct("<f" if wit == "f32" else "<d")  # the fixed-width field on the wire
        self._key = key_of(Value, self.field, I32 if wit == "f32" else I64)

    def classes(self) -> frozenset[type]:
        return frozenset({float})

    def matches(self, value: Any) -> bool:
        return type(value) is float

    def to_proto(self, value: Any, path: str = "") -> Value:
        if type(value) not in (float, int) or type(value) is bool:
            raise _fail(path, f"expected {self.wit}, got {type(value).__name__}")
        return Value(f32=float(value)) if self.field == "f32" else Value(f64=float(value))

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, self.field, path)
        return float(getattr(msg, self.field))

    def to_json(self, value: Any) -> Any:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value

    def from_json(self, doc: Any, path: str = "") -> Any:
        if doc in ("NaN", "Infinity", "-Infinity"):
            return float(doc.replace("Infinity", "inf"))
        if type(doc) not in (float, int):
            raise _fail(path, f"expected a number for {self.wit}, got {doc!r}")
        return float(doc)


class CharCodec(Codec):
    wit = "char"

    def classes(self) -> frozenset[type]:
        return frozenset({str})

    def matches(self, value: Any) -> bool:
        return type(value) is str and len(value) == 1

    def _check(self, value: Any, path: str) -> str:
        if type(value) is not str or len(value) != 1 or 0xD800 <= ord(value) <= 0xDFFF:
            raise _fail(path, f"expected one Unicode scalar value, got {value!r}")
        return value

    def to_proto(self, value: Any, path: str = "") -> Value:
        return Value(char=ord(self._check(value, path)))

    _KEY = key_of(Value, "char", VARINT)

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, "char", path)
        if msg.char > 0x10FFFF or 0xD800 <= msg.char <= 0xDFFF:
            raise _fail(path, f"{msg.char:#x} is not a Unicode scalar value")
        return chr(msg.char)

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, doc: Any, path: str = "") -> Any:
        return self._check(doc, path)


class StringCodec(Codec):
    wit = "string"

    def classes(self) -> frozenset[type]:
        return frozenset({str})

    def matches(self, value: Any) -> bool:
        return type(value) is str

    def _check(self, value: Any, path: str) -> str:
        if type(value) is not str:
            raise _fail(path, f"expected a string, got {type(value).__name__}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise _fail(path, f"not valid Unicode: {err.reason} at index {err.start}") from None
        return value

    def to_proto(self, value: Any, path: str = "") -> Value:
        return Value(string=self._check(value, path))

    _KEY = key_of(Value, "string", LEN)

    def to_wire(self, value: Any, path: str = "") -> bytes:
        return delimited(self._KEY, self._check(value, path).encode())

    def from_proto(self, msg: Value, path: str = "") -> Any:
        if msg.WhichOneof("kind") != "string":  # _kind, inline: on every call's path
            self._kind(msg, "string", path)
        return msg.string

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, doc: Any, path: str = "") -> Any:
        return self._check(doc, path)


class BytesCodec(Codec):
    """``list<u8>``: Python ``bytes``, protobuf ``bytes``, JSON list of ints (or base64 string in)."""

    wit = "list<u8>"

    def classes(self) -> frozenset[type]:
        return frozenset({bytes})

    def matches(self, value: Any) -> bool:
        return isinstance(value, (bytes, bytearray))

    def to_proto(self, value: Any, path: str = "") -> Value:
        if not isinstance(value, (bytes, bytearray)):
            raise _fail(path, f"expected bytes, got {type(value).__name__}")
        return Value(bytes=bytes(value))

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, "bytes", path)
        return msg.bytes

    def to_json(self, value: Any) -> Any:
        return list(value)

    def from_json(self, doc: Any, path: str = "") -> Any:
        if isinstance(doc, str):
            try:
                return base64.b64decode(doc, validate=True)
            except ValueError:
                raise _fail(path, "expected base64 text or a list of bytes") from None
        if not isinstance(doc, list) or any(type(b) is not int or not 0 <= b <= 255 for b in doc):
            raise _fail(path, "expected a list of integers 0..255 or base64 text")
        return bytes(doc)


class ListCodec(Codec):
    def __init__(self, element: Codec) -> None:
        self.element = element
        self.wit = f"list<{element.wit}>"

    def classes(self) -> frozenset[type]:
        return frozenset({list})

    def matches(self, value: Any) -> bool:
        return type(value) is list

    def to_proto(self, value: Any, path: str = "") -> Value:
        if type(value) is not list:
            raise _fail(path, f"expected a list, got {type(value).__name__}")
        enc = self.element.to_proto
        return Value(list=values_pb2.ValueList(values=[enc(v, f"{path}[{i}]") for i, v in enumerate(value)]))

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, "list", path)
        dec = self.element.from_proto
        return [dec(v, f"{path}[{i}]") for i, v in enumerate(msg.list.values)]

    def to_json(self, value: Any) -> Any:
        enc = self.element.to_json
        return [enc(v) for v in value]

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is not list:
            raise _fail(path, f"expected a JSON array for {self.wit}, got {type(doc).__name__}")
        dec = self.element.from_json
        return [dec(v, f"{path}[{i}]") for i, v in enumerate(doc)]


class RecordCodec(Codec):
    def __init__(self, fields: Sequence[tuple[str, Codec]]) -> None:
        self.fields = list(fields)
        self.wit = "record {" + ", ".join(f"{n}: {c.wit}" for n, c in self.fields) + "}"

    def classes(self) -> frozenset[type]:
        return frozenset({wc.Record})

    def matches(self, value: Any) -> bool:
        return isinstance(value, wc.Record)

    def to_proto(self, value: Any, path: str = "") -> Value:
        out = []
        for name, codec in self.fields:
            if not hasattr(value, name):
                raise _fail(path, f"record has no field {name!r}")
            out.append(codec.to_proto(getattr(value, name), _sub(path, name)))
        return Value(list=values_pb2.ValueList(values=out))

    def from_proto(self, msg: Value, path: str = "") -> Any:
        if msg.WhichOneof("kind") != "list":
            self._kind(msg, "list", path)
        items = msg.list.values
        if len(items) != len(self.fields):
            raise _fail(path, f"expected {len(self.fields)} record fields, got {len(items)}")
        record = wc.Record()
        for (name, codec), item in zip(self.fields, items, strict=False):
            setattr(record, name, codec.from_proto(item, _sub(path, name)))
        return record

    def to_json(self, value: Any) -> Any:
        return {name: codec.to_json(getattr(value, name)) for name, codec in self.fields}

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is not dict:
            raise _fail(path, f"expected a JSON object for a record, got {type(doc).__name__}")
        names = {n for n, _ in self.fields}
        for key in doc:
            if key not in names:
                raise _fail(_sub(path, key), f"unknown record field (fields: {', '.join(sorted(names))})")
        record = wc.Record()
        for name, codec in self.fields:
            if name not in doc:
                raise _fail(_sub(path, name), "missing record field")
            setattr(record, name, codec.from_json(doc[name], _sub(path, name)))
        return record


class TupleCodec(Codec):
    def __init__(self, elements: Sequence[Codec]) -> None:
        self.elements = list(elements)
        self.wit = "tuple<" + ", ".join(c.wit for c in self.elements) + ">"

    def classes(self) -> frozenset[type]:
        return frozenset({tuple})

    def matches(self, value: Any) -> bool:
        return type(value) is tuple

    def _arity(self, n: int, path: str) -> None:
        if n != len(self.elements):
            raise _fail(path, f"expected {len(self.elements)} tuple elements, got {n}")

    def to_proto(self, value: Any, path: str = "") -> Value:
        if not isinstance(value, (tuple, list)):
            raise _fail(path, f"expected a tuple, got {type(value).__name__}")
        self._arity(len(value), path)
        return Value(
            list=values_pb2.ValueList(
                values=[
                    c.to_proto(v, f"{path}[{i}]") for i, (c, v) in enumerate(zip(self.elements, value, strict=False))
                ]
            )
        )

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, "list", path)
        self._arity(len(msg.list.values), path)
        return tuple(
            c.from_proto(v, f"{path}[{i}]")
            for i, (c, v) in enumerate(zip(self.elements, msg.list.values, strict=False))
        )

    def to_json(self, value: Any) -> Any:
        return [c.to_json(v) for c, v in zip(self.elements, value, strict=False)]

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is not list:
            raise _fail(path, f"expected a JSON array for {self.wit}")
        self._arity(len(doc), path)
        return tuple(c.from_json(v, f"{path}[{i}]") for i, (c, v) in enumerate(zip(self.elements, doc, strict=False)))


class CasesCodec(Codec):
    """variant, option and result: a case index with an optional payload."""

    def __init__(self, wit: str, cases: Sequence[tuple[str, Codec | None]], where: str = "") -> None:
        self.wit = wit
        self.cases = list(cases)
        self.index = {name: i for i, (name, _) in enumerate(self.cases)}
        self._by_name = {name.encode(): i for name, i in self.index.items()}
        self.tagged = _is_tagged(self.cases)
        shadowed = None if self.tagged else _shadowed_case(self.cases)
        if shadowed is not None:
            raise Unsupported(
                f"{where or 'a function'} uses {wit}, whose case {shadowed[1]} wasmtime-py cannot tell from case "
                f"{shadowed[0]} (it picks cases by isinstance: a bool is an int, and an option payload matches "
                "anything); reorder the cases or wrap the payload in a record",
                where=where,
                type=wit,
            )

    def classes(self) -> frozenset[type]:
        if self.tagged:
            return frozenset({wc.Variant})
        out: set[type] = set()
        for _, payload in self.cases:
            out |= {object} if payload is None else payload.classes()
        return frozenset(out)

    def matches(self, value: Any) -> bool:
        if self.tagged:
            return isinstance(value, wc.Variant) and value.tag in self.index
        return any((p is None and value is None) or (p is not None and p.matches(value)) for _, p in self.cases)

    def case_of(self, value: Any, path: str = "") -> tuple[int, Any]:
        """The case index and payload of a lifted wasmtime value."""
        if self.tagged:
            if not isinstance(value, wc.Variant) or value.tag not in self.index:
                raise _fail(path, f"expected one of the cases {', '.join(self.index)} of {self.wit}")
            return self.index[value.tag], value.payload
        for i, (_, payload) in enumerate(self.cases):
            if payload is None:
                if value is None:
                    return i, None
            elif payload.matches(value):
                return i, value
        raise _fail(path, f"{value!r} matches no case of {self.wit}")

    def make(self, index: int, payload: Any) -> Any:
        """The wasmtime value for a case."""
        if self.tagged:
            return wc.Variant(self.cases[index][0], payload)
        return payload

    def to_proto(self, value: Any, path: str = "") -> Value:
        index, payload = self.case_of(value, path)
        codec = self.cases[index][1]
        case = values_pb2.Case(index=index)
        if codec is not None:
            case.payload.CopyFrom(codec.to_proto(payload, _sub(path, self.cases[index][0])))
        return Value(case=case)

    def from_proto(self, msg: Value, path: str = "") -> Any:
        if msg.WhichOneof("kind") != "case":
            self._kind(msg, "case", path)
        case = msg.case
        index = case.index
        if index >= len(self.cases):
            raise _fail(path, f"case index {index} out of range for {self.wit}")
        name, codec = self.cases[index]
        if codec is None:
            if case.HasField("payload"):
                raise _fail(path, f"case {name} carries no payload")
            return self.make(index, None)
        if not case.HasField("payload"):
            raise _fail(path, f"case {name} needs a payload")
        return self.make(index, codec.from_proto(case.payload, _sub(path, name)))

    def to_json(self, value: Any) -> Any:
        index, payload = self.case_of(value)
        name, codec = self.cases[index]
        return name if codec is None else {name: codec.to_json(payload)}

    def from_json(self, doc: Any, path: str = "") -> Any:
        if isinstance(doc, str) and doc in self.index and self.cases[self.index[doc]][1] is None:
            return self.make(self.index[doc], None)
        if type(doc) is dict and len(doc) == 1:
            ((name, payload),) = doc.items()
            if name in self.index:
                index = self.index[name]
                codec = self.cases[index][1]
                if codec is None:
                    if payload is not None:
                        raise _fail(_sub(path, name), "this case carries no payload; use null")
                    return self.make(index, None)
                return self.make(index, codec.from_json(payload, _sub(path, name)))
        cases = ", ".join(n if c is None else f'{{"{n}": ...}}' for n, c in self.cases)
        raise _fail(path, f"expected one of {cases} for {self.wit}, got {doc!r}")


class OptionCodec(CasesCodec):
    """option<T>: JSON null or the value ({"some": v} when T itself may be null)."""

    def __init__(self, payload: Codec, where: str = "") -> None:
        super().__init__(f"option<{payload.wit}>", [("none", None), ("some", payload)], where)
        self.payload = payload
        self.boxed = isinstance(payload, OptionCodec) or (
            isinstance(payload, CasesCodec) and not payload.tagged and any(p is None for _, p in payload.cases)
        )

    def to_json(self, value: Any) -> Any:
        index, payload = self.case_of(value)
        if index == 0:
            return None
        inner = self.payload.to_json(payload)
        return {"some": inner} if self.boxed else inner

    def from_json(self, doc: Any, path: str = "") -> Any:
        if doc is None:
            return self.make(0, None)
        if self.boxed:
            if type(doc) is not dict or set(doc) != {"some"}:
                raise _fail(path, f'expected null or {{"some": ...}} for {self.wit}')
            doc = doc["some"]
        return self.make(1, self.payload.from_json(doc, _sub(path, "some")))


class EnumCodec(Codec):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self._by_name = {n.encode(): i for i, n in enumerate(self.names)}
        self.wit = "enum {" + ", ".join(self.names) + "}"

    def classes(self) -> frozenset[type]:
        return frozenset({str})

    def matches(self, value: Any) -> bool:
        return type(value) is str and value in self.index

    def _check(self, value: Any, path: str) -> str:
        if value not in self.index:
            raise _fail(path, f"expected one of {', '.join(self.names)}, got {value!r}")
        return value  # type: ignore[no-any-return]

    def to_proto(self, value: Any, path: str = "") -> Value:
        return Value(case=values_pb2.Case(index=self.index[self._check(value, path)]))

    def from_proto(self, msg: Value, path: str = "") -> Any:
        if msg.WhichOneof("kind") != "case":
            self._kind(msg, "case", path)
        case = msg.case
        if case.index >= len(self.names) or case.HasField("payload"):
            raise _fail(path, f"bad enum case {case.index} for {self.wit}")
        return self.names[case.index]

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is not str:
            raise _fail(path, f"expected one of {', '.join(self.names)}")
        return self._check(doc, path)


class FlagsCodec(Codec):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self._by_name = {n.encode(): i for i, n in enumerate(self.names)}
        self.wit = "flags {" + ", ".join(self.names) + "}"

    def classes(self) -> frozenset[type]:
        return frozenset({set})

    def matches(self, value: Any) -> bool:
        return isinstance(value, set)

    def _check(self, value: Any, path: str) -> set[str]:
        if not isinstance(value, (set, frozenset, list)):
            raise _fail(path, f"expected a set of flag names for {self.wit}")
        for name in value:
            if type(name) is not str or name not in self.index:
                raise _fail(path, f"unknown flag {name!r} (flags: {', '.join(self.names)})")
        return set(value)

    def to_proto(self, value: Any, path: str = "") -> Value:
        return Value(flags=values_pb2.Flags(set=sorted(self.index[n] for n in self._check(value, path))))

    def from_proto(self, msg: Value, path: str = "") -> Any:
        self._kind(msg, "flags", path)
        if any(i >= len(self.names) for i in msg.flags.set):
            raise _fail(path, f"flag index out of range for {self.wit}")
        return {self.names[i] for i in msg.flags.set}

    def to_json(self, value: Any) -> Any:
        return sorted(value, key=self.index.__getitem__)

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is not list:
            raise _fail(path, f"expected a JSON array of flag names for {self.wit}")
        return self._check(doc, path)


def _shadowed_case(cases: Sequence[tuple[str, Codec | None]]) -> tuple[str, str] | None:
    """A case whose bare payload wasmtime-py would mistake for an earlier case's, if any.

    Untagged, wasmtime-py lowers a value into the first case whose classes it
    is an instance of. ``True`` is an ``int``, so a bool case after an integer
    case is never chosen; and a payload that can itself be "nothing" (an
    option, say) brings ``object`` into its case's classes, which every later
    case's values are instances of.
    """
    for j, (later, later_codec) in enumerate(cases):
        if later_codec is None:
            continue
        for earlier, earlier_codec in cases[:j]:
            if earlier_codec is None:
                continue  # a case without payload is matched by `value is None`, not isinstance
            if any(issubclass(b, a) for a in earlier_codec.classes() for b in later_codec.classes()):
                return earlier, later
    return None


def _is_tagged(cases: Sequence[tuple[str, Codec | None]]) -> bool:
    """wasmtime-py's rule: payload class sets that overlap force Variant(tag, payload)."""
    seen: set[type] = set()
    for _, payload in cases:
        case = {object} if payload is None else set(payload.classes())
        if case & seen:
            return True
        seen |= case
    return False


_PRIMITIVES: dict[type, Codec] = {
    wc.Bool: BoolCodec(),
    wc.S8: IntCodec("s8", True, 8),
    wc.S16: IntCodec("s16", True, 16),
    wc.S32: IntCodec("s32", True, 32),
    wc.S64: IntCodec("s64", True, 64),
    wc.U8: IntCodec("u8", False, 8),
    wc.U16: IntCodec("u16", False, 16),
    wc.U32: IntCodec("u32", False, 32),
    wc.U64: IntCodec("u64", False, 64),
    wc.F32: FloatCodec("f32"),
    wc.F64: FloatCodec("f64"),
    wc.Char: CharCodec(),
    wc.String: StringCodec(),
}


def compile_type(ty: Any, where: str = "") -> Codec:
    """Compile a wasmtime ``ValType`` into a codec; refuses types that cannot cross nodes."""
    prim = _PRIMITIVES.get(type(ty))
    if prim is not None:
        return prim
    if isinstance(ty, wc.ListType):
        element = compile_type(ty.element, where)
        return BytesCodec() if isinstance(ty.element, wc.U8) else ListCodec(element)
    if isinstance(ty, wc.RecordType):
        return RecordCodec([(name, compile_type(t, where)) for name, t in ty.fields])
    if isinstance(ty, wc.TupleType):
        return TupleCodec([compile_type(t, where) for t in ty.elements])
    if isinstance(ty, wc.VariantType):
        cases = [(name, None if t is None else compile_type(t, where)) for name, t in ty.cases]
        return CasesCodec("variant {" + ", ".join(n for n, _ in cases) + "}", cases, where)
    if isinstance(ty, wc.EnumType):
        return EnumCodec(ty.names)
    if isinstance(ty, wc.OptionType):
        return OptionCodec(compile_type(ty.payload, where), where)
    if isinstance(ty, wc.ResultType):
        ok = None if ty.ok is None else compile_type(ty.ok, where)
        err = None if ty.err is None else compile_type(ty.err, where)
        wit = f"result<{ok.wit if ok else '_'}, {err.wit if err else '_'}>"
        return CasesCodec(wit, [("ok", ok), ("err", err)], where)
    if isinstance(ty, wc.FlagsType):
        return FlagsCodec(ty.names)
    kind = {
        wc.OwnType: "resource (own)",
        wc.BorrowType: "resource (borrow)",
        wc.FutureType: "future",
        wc.StreamType: "stream",
        wc.ErrorContext: "error-context",
    }.get(type(ty), type(ty).__name__)
    raise Unsupported(f"{where or 'a function'} uses a {kind}, which cannot cross nodes", where=where, type=kind)


class Signature:
    """A function's compiled parameter and result codecs."""

    def __init__(self, params: Sequence[tuple[str, Codec]], result: Codec | None, name: str = "") -> None:
        self.params = list(params)
        self.result = result
        self.name = name

    @classmethod
    def of(cls, func_type: Any, name: str = "") -> Signature:
        """Compile a wasmtime ``FuncType``."""
        params = [(pname, compile_type(t, f"{name}({pname})")) for pname, t in func_type.params]
        result = None if func_type.result is None else compile_type(func_type.result, f"{name} result")
        return cls(params, result, name)

    def _arity(self, n: int) -> None:
        if n != len(self.params):
            names = ", ".join(f"{p}: {c.wit}" for p, c in self.params)
            raise CodecError(f"{self.name} takes {len(self.params)} argument(s) ({names}), got {n}", path="args")

    def args_to_proto(self, args: Sequence[Any]) -> list[Value]:
        self._arity(len(args))
        return [c.to_proto(v, p) for (p, c), v in zip(self.params, args, strict=False)]

    def args_to_wire(self, args: Sequence[Any]) -> list[bytes]:
        """:meth:`args_to_proto`, each serialized (a forwarder frames them into its request)."""
        if len(args) != len(self.params):
            self._arity(len(args))
        return [c.to_wire(v, p) for (p, c), v in zip(self.params, args, strict=False)]

    def args_from_proto(self, msgs: Sequence[Value]) -> list[Any]:
        self._arity(len(msgs))
        return [c.from_proto(m, p) for (p, c), m in zip(self.params, msgs, strict=False)]

    @functools.cached_property
    def decode_args(self) -> Callable[[Sequence[Value]], list[Any]]:
        """:meth:`args_from_proto`, made for this signature's arity (a forwarded call's path decodes with it)."""
        if len(self.params) != 1:
            return self.args_from_proto
        ((name, codec),) = self.params
        decode = codec.from_proto

        def decode_one(msgs: Sequence[Value]) -> list[Any]:
            if len(msgs) != 1:
                self._arity(len(msgs))
            return [decode(msgs[0], name)]

        return decode_one

    def args_from_json(self, docs: Any) -> list[Any]:
        if type(docs) is not list:
            raise CodecError(f"{self.name}: arguments must be a JSON array, one element per parameter", path="args")
        self._arity(len(docs))
        return [c.from_json(d, p) for (p, c), d in zip(self.params, docs, strict=False)]

    def result_to_proto(self, value: Any) -> Value | None:
        return None if self.result is None else self.result.to_proto(value, "result")

    @functools.cached_property
    def wire_result(self) -> Callable[[int], bytes]:
        """What reads the result, wasmtime's C value (a ``wasmtime_component_val_t``) at an address, into a
        serialized ``Value``: the result type's compiled reader (:mod:`agent.wiregen`). Only called for
        a function with a result: :class:`agent.rawcall.Plan` returns None for one without."""
        return _no_result if self.result is None else self.result.wire_reader()

    def result_from_proto(self, msg: Value | None) -> Any:
        if self.result is None:
            return None
        if msg is None:
            raise CodecError(f"{self.name}: the reply carries no result", path="result")
        return self.result.from_proto(msg, "result")

    def result_to_json(self, value: Any) -> Any:
        return None if self.result is None else self.result.to_json(value)


def _no_result(address: int) -> bytes:
    raise AssertionError("asked to read the result of a function that has none")
