"""Host function values read and written where wasmtime keeps them (agent.runtime.cvalues): each type's writer
and reader give back what was written, and agree with wasmtime-py's own conversions where the two forms are
the same. The types are a real component's (an imported instance in WAT); resources are covered by the
wasi:keyvalue and wasi:http hosts' guest tests."""

from __future__ import annotations

import ctypes
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st
from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component import Variant

from agent.runtime import cvalues
from agent.runtime.functypes import fix
from agent.runtime.glue import imported_instances

WAT = Path(__file__).with_name("host_types.wat")


@pytest.fixture(scope="module")
def types() -> dict[str, Any]:
    engine = wasmtime.Engine(wasmtime.Config())
    host = imported_instances(engine, wc.Component(engine, WAT.read_text()))["host"]
    return {name: fix(item.ty) for name, item in host.items() if isinstance(item.ty, wc.FuncType)}


def param(types: dict[str, Any], func: str, index: int) -> Any:
    return types[func].params[index][1]


def result(types: dict[str, Any], func: str) -> Any:
    return types[func].result


def round_trip(ty: Any, value: Any) -> Any:
    """``value`` written by our writer into a fresh heap value, then read back by our reader (which frees it)."""
    read, write = cvalues.pair(ty)
    boxed = cvalues._box()
    write(0, value, boxed)
    found = read(0, boxed)
    cvalues._free_box(boxed)
    return found


def written_then_stock(ty: Any, value: Any) -> Any:
    """Our writer's value as wasmtime-py reads it."""
    boxed = cvalues._box()
    cvalues.pair(ty)[1](0, value, boxed)
    found = ty.convert_from_c(ffi.wasmtime_component_val_t.from_address(boxed))
    cvalues._free_box(boxed)
    return found


def stock_then_read(ty: Any, value: Any) -> Any:
    """wasmtime-py's value as our reader reads it."""
    boxed = cvalues._box()
    ty.convert_to_c(None, value, ctypes.cast(boxed, ctypes.POINTER(ffi.wasmtime_component_val_t)))
    found = cvalues.pair(ty)[0](0, boxed)
    cvalues._free_box(boxed)
    return found


SCALARS = (True, -128, 65535, -(2**31), 2**64 - 1, 1.5, -2.25e300, "é")


def test_scalars_round_trip_and_agree_with_wasmtime_py(types: dict[str, Any]) -> None:
    tuple_type = result(types, "scalars")
    assert round_trip(tuple_type, SCALARS) == SCALARS
    assert tuple(written_then_stock(tuple_type, SCALARS)) == SCALARS
    for i, value in enumerate(SCALARS):
        ty = param(types, "scalars", i)
        assert round_trip(ty, value) == value
        assert stock_then_read(ty, value) == value


def test_a_scalar_out_of_its_range_or_of_the_wrong_kind_is_refused(types: dict[str, Any]) -> None:
    for i, bad in ((1, 128), (2, -1), (4, 2**64)):
        with pytest.raises(struct.error):
            round_trip(param(types, "scalars", i), bad)
    with pytest.raises(TypeError, match="expected a bool"):
        round_trip(param(types, "scalars", 0), 1)


def test_strings_and_byte_lists(types: dict[str, Any]) -> None:
    string, data = param(types, "texts", 0), param(types, "texts", 1)
    for text in ("", "hello", "ünïcödé ✓" * 100):
        assert round_trip(string, text) == text
        assert written_then_stock(string, text) == text
        assert stock_then_read(string, text) == text
    for raw in (b"", b"\x00\xff" * 3, bytes(range(256)) * 300):
        assert round_trip(data, raw) == raw
        assert bytes(written_then_stock(data, raw)) == raw
        assert stock_then_read(data, raw) == raw
    with pytest.raises(TypeError, match="expected a string"):
        round_trip(string, b"bytes")
    with pytest.raises(TypeError, match="expected bytes"):
        round_trip(data, "text")


def test_result_of_option_keeps_the_error_case(types: dict[str, Any]) -> None:
    """result<option<list<u8>>, string>: wasmtime-py lowering a bare payload took an error for ``ok``."""
    ty = result(types, "texts")
    for value in (Variant("ok", None), Variant("ok", b"abc"), Variant("ok", b""), Variant("err", "denied")):
        assert round_trip(ty, value) == value
    with pytest.raises(TypeError, match="expected Variant"):
        round_trip(ty, b"abc")


def test_records_variants_enums_flags(types: dict[str, Any]) -> None:
    rec_type, var_type, enum_type, flags_type = (param(types, "shapes", i) for i in range(4))
    record = wc.Record()
    record.n, record.tags = 7, ["a", "b"]
    setattr(record, "the-name", "seven")
    found = round_trip(rec_type, record)
    assert (found.n, getattr(found, "the-name"), found.tags) == (7, "seven", ["a", "b"])
    assert written_then_stock(rec_type, record) == record
    assert stock_then_read(rec_type, record) == record
    for value in (
        Variant("nothing"),
        Variant("text", "t"),
        Variant("num", -(2**63)),
        Variant("pair", (3, None)),
        Variant("pair", (4, record)),
    ):
        assert round_trip(var_type, value) == value
    with pytest.raises(TypeError, match="one of"):
        round_trip(var_type, Variant("absent"))
    for name in ("first", "second-one"):
        assert round_trip(enum_type, name) == name
        assert written_then_stock(enum_type, name) == name
        assert stock_then_read(enum_type, name) == name
    assert round_trip(flags_type, {"read", "write"}) == {"read", "write"}
    many = [Variant("text", "x"), Variant("nothing"), Variant("pair", (1, record))]
    assert round_trip(result(types, "shapes"), many) == many


texts = st.text(max_size=40)
blobs = st.binary(max_size=200)
nested = st.one_of(
    st.builds(lambda items: Variant("ok", items), st.lists(st.tuples(texts, st.none() | blobs), max_size=6)),
    st.just(Variant("err", None)),
)


options = st.one_of(
    st.just(Variant("none")),
    st.just(Variant("some", None)),
    st.builds(lambda text: Variant("some", text), texts),
)


@settings(max_examples=150, deadline=None)
@given(value=nested, option=options)
def test_nested_values_round_trip(types: dict[str, Any], value: Variant, option: Variant) -> None:
    assert round_trip(result(types, "nested"), value) == value
    # option<option<string>>: the outer option tagged, so that some(none) and none stay apart
    assert round_trip(param(types, "nested", 0), option) == option


def test_floats_keep_their_bits(types: dict[str, Any]) -> None:
    f64 = param(types, "scalars", 6)
    assert math.isnan(round_trip(f64, float("nan")))
    assert round_trip(f64, -0.0) == 0.0 and math.copysign(1, round_trip(f64, -0.0)) == -1
