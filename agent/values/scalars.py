"""Codecs of WIT's scalar types: bool, integers, floats, char, string, and ``list<u8>`` as bytes."""

from __future__ import annotations

import base64
import math
import re
import struct
from typing import Any

from agent.values.codec import Codec, Value, _fail
from agent.values.framing import I32, I64, STRING_KEY, VARINT, delimited, key_of, varint, zigzag


class BoolCodec(Codec):
    wit = "bool"

    def classes(self) -> frozenset[type]:
        return frozenset({bool})

    def matches(self, value: Any) -> bool:
        return type(value) is bool

    def to_proto(self, value: Any, path: str = "") -> Value:
        if type(value) is not bool:  # protobuf would take 0 and 1 (and any int) as a bool
            raise _fail(path, f"expected true or false, got {type(value).__name__} {value!r}")
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
        self.wide = bits == 64
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
        # proto3's JSON mapping: 64-bit integers as decimal strings (JavaScript's numbers round above 2^53).
        return str(value) if self.wide else value

    def from_json(self, doc: Any, path: str = "") -> Any:
        if type(doc) is str:  # proto3's JSON mapping: any integer may come as a decimal string
            if not _DECIMAL.fullmatch(doc):
                raise _fail(path, f"expected {self.wit} (a number or a decimal string), got {doc[:40]!r}")
            doc = int(doc)
        return self._check(doc, path)


_DECIMAL = re.compile(r"-?[0-9]{1,20}")


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

    _KEY = STRING_KEY

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
