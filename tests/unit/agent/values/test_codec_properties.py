"""Property tests: random WIT types, random values, every path round-trips.

A random type tree is rendered as the parameter of a function in a WAT
component type and compiled by wasmtime, so the codec sees wasmtime's real type
objects. Values drawn for the type must survive protobuf (through bytes),
JSON (through text), and wasmtime's own lowering and lifting. A value read
from wasmtime's C form straight into a serialized Value (``agent.values.encodergen.encoder``, how an
agent answers a forwarded call) must be byte for byte what encoding its Python
object gives, and those bytes read straight back (``agent.values.readers``, how the
caller takes the answer) must give the value.
"""

from __future__ import annotations

import ctypes
import json
import math
from typing import Any

import pytest
import wasmtime
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from agent.runtime.functypes import _PROPERTIES as PROPERTIES
from agent.runtime.functypes import fix
from agent.values.codec import Codec, Unsupported
from agent.values.compound import CasesCodec, EnumCodec, FlagsCodec, ListCodec, OptionCodec, RecordCodec, TupleCodec
from agent.values.encodergen import encoder
from agent.values.readergen import compile_reader
from agent.values.readers import reader
from agent.values.scalars import BoolCodec, BytesCodec, CharCodec, FloatCodec, IntCodec, StringCodec
from agent.values.signature import compile_type
from agent.values.writergen import compile_writer
from neon._proto import values_pb2

ENGINE = wasmtime.Engine()
PRIMS = ["bool", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f32", "f64", "char", "string"]
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "f"])


def _distinct(n: int) -> st.SearchStrategy[list[str]]:
    return st.lists(NAMES, min_size=1, max_size=n, unique=True)


types: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from(PRIMS)
    | st.builds(lambda n: ("enum", n), _distinct(4))
    | st.builds(lambda n: ("flags", n), _distinct(5)),
    lambda inner: st.one_of(
        st.builds(lambda t: ("list", t), inner),
        st.builds(lambda t: ("option", t), inner),
        st.builds(lambda ok, err: ("result", ok, err), st.none() | inner, st.none() | inner),
        st.builds(lambda ts: ("tuple", ts), st.lists(inner, min_size=1, max_size=3)),
        st.builds(
            lambda ns, ts: ("record", list(zip(ns, ts, strict=False))),
            _distinct(3),
            st.lists(inner, min_size=3, max_size=3),
        ),
        st.builds(
            lambda ns, ts: ("variant", list(zip(ns, ts, strict=False))),
            _distinct(3),
            st.lists(st.none() | inner, min_size=3, max_size=3),
        ),
    ),
    max_leaves=6,
)


class _Wat:
    """Render a type tree as WAT type declarations inside an instance type."""

    def __init__(self) -> None:
        self.decls: list[str] = []
        self.n = 0

    def ref(self, ty: Any) -> str:
        if isinstance(ty, str):
            return ty
        kind = ty[0]
        if kind == "list":
            body = f"(list {self.ref(ty[1])})"
        elif kind == "option":
            body = f"(option {self.ref(ty[1])})"
        elif kind == "result":
            ok = "" if ty[1] is None else f" {self.ref(ty[1])}"
            err = "" if ty[2] is None else f" (error {self.ref(ty[2])})"
            body = f"(result{ok}{err})"
        elif kind == "tuple":
            body = "(tuple " + " ".join(self.ref(t) for t in ty[1]) + ")"
        elif kind == "record":
            body = "(record " + " ".join(f'(field "{n}" {self.ref(t)})' for n, t in ty[1]) + ")"
        elif kind == "variant":
            cases = " ".join(f'(case "{n}")' if t is None else f'(case "{n}" {self.ref(t)})' for n, t in ty[1])
            body = f"(variant {cases})"
        elif kind == "enum":
            body = "(enum " + " ".join(f'"{n}"' for n in ty[1]) + ")"
        else:
            body = "(flags " + " ".join(f'"{n}"' for n in ty[1]) + ")"
        self.n += 1
        name = f"$t{self.n}"
        if kind in ("record", "variant", "enum", "flags"):  # nominal types must be exported to be used
            self.decls.append(f"(type {name}' {body})")
            self.decls.append(f'(export "t{self.n}" (type {name} (eq {name}\')))')
        else:
            self.decls.append(f"(type {name} {body})")
        return name


def wasmtime_type(ty: Any) -> Any:
    wat = _Wat()
    top = wat.ref(ty)
    text = (
        '(component (import "test:prop/api" (instance '
        + " ".join(wat.decls)
        + f' (export "f" (func (param "x" {top})))'
        + ")))"
    )
    comp = wc.Component(ENGINE, text)
    (inst,) = (e.ty for e in comp.type.imports(ENGINE).values())
    return inst.exports(ENGINE)["f"].ty.params[0][1]


def values(codec: Codec) -> st.SearchStrategy[Any]:
    if isinstance(codec, BoolCodec):
        return st.booleans()
    if isinstance(codec, IntCodec):
        return st.integers(codec.lo, codec.hi)
    if isinstance(codec, FloatCodec):
        return st.floats(width=32 if codec.wit == "f32" else 64)
    if isinstance(codec, CharCodec):
        return st.characters(blacklist_categories=("Cs",))
    if isinstance(codec, StringCodec):
        return st.text(max_size=8)
    if isinstance(codec, BytesCodec):
        return st.binary(max_size=8)
    if isinstance(codec, ListCodec):
        return st.lists(values(codec.element), max_size=3)
    if isinstance(codec, RecordCodec):

        def record(vals: list[Any]) -> wc.Record:
            rec = wc.Record()
            for (name, _), val in zip(codec.fields, vals, strict=True):
                setattr(rec, name, val)
            return rec

        return st.tuples(*(values(c) for _, c in codec.fields)).map(lambda t: record(list(t)))
    if isinstance(codec, TupleCodec):
        return st.tuples(*(values(c) for c in codec.elements))
    if isinstance(codec, CasesCodec):
        options = [
            st.just(codec.make(i, None)) if c is None else values(c).map(lambda v, i=i: codec.make(i, v))
            for i, (_, c) in enumerate(codec.cases)
        ]
        return st.one_of(options)
    if isinstance(codec, EnumCodec):
        return st.sampled_from(codec.names)
    assert isinstance(codec, FlagsCodec)
    return st.sets(st.sampled_from(codec.names))


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and compares records by fields."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, wc.Record) and isinstance(b, wc.Record):
        return vars(a).keys() == vars(b).keys() and all(same(v, getattr(b, k)) for k, v in vars(a).items())
    if isinstance(a, wc.Variant) and isinstance(b, wc.Variant):
        return a.tag == b.tag and same(a.payload, b.payload)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def lifted(ty: Any, codec: Codec, value: Any) -> bytes:
    """``value`` lowered by wasmtime to its C form, then read from it straight into a serialized Value."""
    store = wasmtime.Store(ENGINE)
    raw = ffi.wasmtime_component_val_t()
    ty.convert_to_c(store, value, ctypes.pointer(raw))
    try:
        return encoder(codec)(ctypes.addressof(raw))
    finally:
        ffi.wasmtime_component_val_delete(ctypes.byref(raw))


def through_wasmtime(ty: Any, value: Any) -> Any:
    store = wasmtime.Store(ENGINE)
    raw = ffi.wasmtime_component_val_t()
    ty.convert_to_c(store, value, ctypes.pointer(raw))
    return ty.convert_from_c(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), types)
def test_random_types_round_trip(data: st.DataObject, tree: Any) -> None:
    ty = wasmtime_type(tree)
    try:
        codec = compile_type(ty, "f(x)")
    except Unsupported as err:
        assert "cannot tell" in err.message  # the only refusal here; see test_wasmtime_py_ambiguity_is_refused
        assume(False)
        return
    value = data.draw(values(codec))
    serialized = codec.to_proto(value).SerializeToString()
    assert codec.to_wire(value) == serialized
    assert compile_writer(codec)(value) == serialized  # what a forwarder frames into its request
    wire = values_pb2.Value.FromString(serialized)
    assert same(codec.from_proto(wire), value)
    read, end = reader(codec)(serialized, 0)  # straight from the bytes (agent/values/readers.py)
    assert end == len(serialized) and same(read, value)
    read, end = compile_reader(codec)(serialized, 0)  # the same, compiled for the type (agent/values/readergen.py)
    assert end == len(serialized) and same(read, value)
    text = json.dumps(codec.to_json(value))
    assert same(codec.from_json(json.loads(text)), value)
    assert same(through_wasmtime(ty, value), value)
    assert lifted(ty, codec, value) == codec.to_proto(value).SerializeToString(deterministic=True)
    # The same type read once (agent/runtime/functypes.py), as the agent calls components:
    # the same lowering and lifting.
    fixed = fix(wasmtime_type(tree))
    assert same(through_wasmtime(fixed, value), value)
    for name in PROPERTIES.get(type(fixed).__mro__[1].__name__, ()):
        assert getattr(fixed, name) is getattr(fixed, name)  # answered from what was read, not the C API
    for name in PROPERTIES.get(type(ty).__name__, ()):
        if getattr(ty, name) is not None:  # wasmtime-py's own type reads through the C API each time
            assert getattr(ty, name) is not getattr(ty, name)


def _accepts(read: Any, raw: bytes) -> tuple[bool, Any]:
    try:
        value, end = read(raw, 0)
    except (ValueError, IndexError):  # NotCanonical, a bad varint or UTF-8, bytes that end too soon
        return False, None
    return end == len(raw), value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), types)
def test_the_compiled_reader_takes_no_bytes_the_closures_refuse(data: st.DataObject, tree: Any) -> None:
    """Damaged bytes (cut short, a byte changed or added): what the compiled reader takes, the closures
    take too, as the same value; whatever it refuses is decoded by the generated classes instead."""
    try:
        codec = compile_type(wasmtime_type(tree), "f(x)")
    except Unsupported:
        assume(False)
        return
    raw = bytearray(codec.to_proto(data.draw(values(codec))).SerializeToString())
    cut = data.draw(st.integers(0, len(raw)))
    how = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    if how == "cut":
        damaged = bytes(raw[:cut])
    elif how == "flip" and raw:
        raw[min(cut, len(raw) - 1)] ^= data.draw(st.integers(1, 255))
        damaged = bytes(raw)
    else:
        damaged = bytes(raw[:cut]) + bytes([data.draw(st.integers(0, 255))]) + bytes(raw[cut:])
    compiled_ok, compiled_value = _accepts(compile_reader(codec), damaged)
    closure_ok, closure_value = _accepts(reader(codec), damaged)
    if compiled_ok:
        assert closure_ok and same(compiled_value, closure_value)


def test_wasmtime_py_ambiguity_is_refused_not_corrupted() -> None:
    """wasmtime-py picks a result/variant case by isinstance: True is an int, an option matches anything."""
    ty = wasmtime_type(("result", "u32", "bool"))
    try:
        compile_type(ty, "f(x)")
    except Unsupported as err:
        assert "cannot tell" in err.message and "f(x)" in err.message
    else:
        raise AssertionError("result<u32, bool> was accepted although wasmtime-py would lower err(true) as ok(1)")
    assert compile_type(wasmtime_type(("result", "bool", "u32")), "ok")  # bool first: wasmtime gets it right
    assert isinstance(compile_type(wasmtime_type(("option", "bool")), "ok"), OptionCodec)
    shadowing = wasmtime_type(("result", ("option", "bool"), ("result", None, None)))
    try:
        compile_type(shadowing, "g(y)")
    except Unsupported as err:
        assert "case err wasmtime-py cannot tell from case ok" in err.message
    else:
        raise AssertionError("result<option<bool>, result> was accepted; wasmtime-py lowers err(..) into ok")
    assert compile_type(wasmtime_type(("result", ("record", [("v", ("option", "u32"))]), "string")), "wrapped")


@pytest.mark.parametrize(
    ("tree", "value"),
    [
        (("list", "u8"), b"\x00\x07\xff\x01"),
        (("list", "u8"), b""),
        (("list", "string"), ["a", "", "ü€"]),
        (("result", "string", "u32"), "ok"),
        (("result", None, "string"), None),
        (("result", "u64", ("list", "u8")), b"\x01\x02"),
        (("option", "s16"), -300),
        (("option", "s16"), None),
        (("variant", [("a", None), ("b", "f64"), ("c", "char")]), "variant-c"),
        (("enum", ["a", "b", "c"]), "c"),
        (("flags", ["a", "b", "c", "d"]), {"d", "a"}),
        (("tuple", ["bool", "f32", "s64"]), (True, 1.5, -(2**63))),
        (("record", [("a", "u8"), ("b", ("list", "u8")), ("c", "u64")]), "record"),
    ],
)
def test_each_kind_lifts_straight_from_wasmtime(tree: Any, value: Any) -> None:
    """Every kind of value, read from wasmtime's C form, serializes as encoding its Python object does
    (the random types above reach some kinds, such as list<u8>, only now and then)."""
    ty = wasmtime_type(tree)
    codec = compile_type(ty, "f(x)")
    if value == "variant-c":
        value = codec.make(2, "ж")  # type: ignore[attr-defined]
    elif value == "record":
        value = wc.Record()
        value.a, value.b, value.c = 9, b"\x00\xff", 2**64 - 1
    direct = lifted(ty, codec, value)
    assert direct == codec.to_proto(value).SerializeToString(deterministic=True)
    assert same(
        codec.from_proto(values_pb2.Value.FromString(direct)),
        value if not isinstance(value, list) or tree != ("list", "u8") else bytes(value),
    )


@pytest.mark.parametrize(("wit", "out_of_range"), [("u8", 256), ("u32", 1 << 32), ("s8", -129), ("s16", 1 << 15)])
def test_the_compiled_reader_refuses_an_integer_out_of_its_range(wit: str, out_of_range: int) -> None:
    codec = compile_type(wasmtime_type(wit), "f(x)")
    assert isinstance(codec, IntCodec)
    field = {"s64": out_of_range} if codec.signed else {"u64": out_of_range}
    ok, _ = _accepts(compile_reader(codec), values_pb2.Value(**field).SerializeToString())
    inside = codec.hi if out_of_range > 0 else codec.lo
    assert not ok and _accepts(compile_reader(codec), codec.to_proto(inside).SerializeToString()) == (True, inside)
