"""The WIT-typed codec: wasmtime values <-> protobuf and JSON, driven by real component types."""

from __future__ import annotations

import ctypes
import math
from typing import Any

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from agent.values.codec import CodecError, Unsupported
from agent.values.signature import Signature, compile_type
from agent.values.writergen import compile_writer
from neon._proto import values_pb2

ENGINE = wasmtime.Engine()

SINK = """
(component
  (import "test:kitchen/sink" (instance
    (type $entry' (record (field "ts" string) (field "level" u8)))
    (export "entry" (type $entry (eq $entry')))
    (type $v' (variant (case "a") (case "b" u32) (case "c" string)))
    (export "v" (type $v (eq $v')))
    (type $same' (variant (case "x" string) (case "y" string)))
    (export "same" (type $same (eq $same')))
    (type $e' (enum "low" "high"))
    (export "e" (type $e (eq $e')))
    (type $f' (flags "read" "write" "exec"))
    (export "f" (type $f (eq $f')))
    (export "parse" (func (param "raw" string) (result (result $entry (error string)))))
    (export "same-result" (func (param "r" (result string (error string))) (result (result (error string)))))
    (export "variants" (func (param "v" $v) (param "s" $same) (result $e)))
    (export "flags" (func (param "f" $f) (result (option (option u32)))))
    (export "tuple" (func (param "t" (tuple char f64 f32 s8 u64 bool)) (result (list u8))))
    (export "lists" (func (param "l" (list (list string))) (result (list s64))))
    (export "nothing" (func))
  ))
)
"""


@pytest.fixture(scope="module")
def funcs() -> dict[str, Any]:
    comp = wc.Component(ENGINE, SINK)
    (inst,) = (e.ty for e in comp.type.imports(ENGINE).values())
    return {name: ext.ty for name, ext in inst.exports(ENGINE).items() if isinstance(ext.ty, wc.FuncType)}


def _wasmtime_roundtrip(ty: Any, value: Any) -> Any:
    """Lower a value through wasmtime's own converter and lift it back: proof wasmtime accepts it."""
    store = wasmtime.Store(ENGINE)
    raw = ffi.wasmtime_component_val_t()
    ty.convert_to_c(store, value, ctypes.pointer(raw))
    return ty.convert_from_c(raw)


def _record(**fields: Any) -> wc.Record:
    rec = wc.Record()
    for key, val in fields.items():
        setattr(rec, key, val)
    return rec


def test_result_of_record_or_string_roundtrips(funcs: dict[str, Any]) -> None:
    ty = funcs["parse"].result
    codec = compile_type(ty)
    ok = _record(ts="2026-11-24T08:00:00Z", level=3)
    for value, as_json in ((ok, {"ok": {"ts": "2026-11-24T08:00:00Z", "level": 3}}), ("bad line", {"err": "bad line"})):
        msg = codec.to_proto(value)
        back = codec.from_proto(values_pb2.Value.FromString(msg.SerializeToString()))
        assert back == value and _wasmtime_roundtrip(ty, back) == value
        assert codec.to_json(value) == as_json
        assert codec.from_json(as_json) == value
    assert codec.to_proto("bad").case.index == 1 and codec.to_proto(ok).case.index == 0


def test_ambiguous_result_uses_tags_and_never_confuses_cases(funcs: dict[str, Any]) -> None:
    sig = Signature.of(funcs["same-result"], "same-result")
    codec = sig.params[0][1]
    ok, err = wc.Variant("ok", "same text"), wc.Variant("err", "same text")
    assert codec.to_proto(ok).case.index == 0 and codec.to_proto(err).case.index == 1
    assert codec.from_proto(codec.to_proto(err)) == err
    assert _wasmtime_roundtrip(funcs["same-result"].params[0][1], codec.from_json({"err": "same text"})) == err
    # result<_, string>: the ok case has no payload.
    res = sig.result
    assert res is not None and res.to_json(None) == "ok" and res.from_json("ok") is None
    assert res.from_json({"err": "boom"}) == "boom"


def test_variant_enum_flags_option_tuple_bytes(funcs: dict[str, Any]) -> None:
    variants = Signature.of(funcs["variants"], "variants")
    v, same = (c for _, c in variants.params)
    # Payload classes differ (none, int, str), so wasmtime passes bare payloads: None is case "a".
    for value, as_json in ((None, "a"), (7, {"b": 7}), ("x", {"c": "x"})):
        assert v.from_proto(v.to_proto(value)) == value
        assert v.to_json(value) == as_json and v.from_json(as_json) == value
        assert _wasmtime_roundtrip(funcs["variants"].params[0][1], value) == value
    assert [v.to_proto(x).case.index for x in (None, 7, "x")] == [0, 1, 2]
    assert same.from_json({"y": "z"}) == wc.Variant("y", "z")
    assert variants.result is not None and variants.result.from_json("high") == "high"

    flags = Signature.of(funcs["flags"], "flags")
    f = flags.params[0][1]
    assert f.from_proto(f.to_proto({"exec", "read"})) == {"read", "exec"}
    assert f.to_json({"exec", "read"}) == ["read", "exec"]
    opt = flags.result
    assert opt is not None
    # option<option<u32>>: both cases can be "nothing", so wasmtime tags them.
    cases = (
        (wc.Variant("none"), None),
        (wc.Variant("some", None), {"some": None}),
        (wc.Variant("some", 5), {"some": 5}),
    )
    for value, as_json in cases:
        assert opt.from_proto(opt.to_proto(value)) == value
        assert opt.to_json(value) == as_json and opt.from_json(as_json) == value
        assert _wasmtime_roundtrip(funcs["flags"].result, value) == value

    tup = Signature.of(funcs["tuple"], "tuple")
    t = tup.params[0][1]
    value = ("é", math.inf, 1.5, -128, 2**64 - 1, True)
    assert t.from_proto(t.to_proto(value)) == value
    # proto3's JSON mapping: 64-bit integers as strings both ways (numbers are accepted too), narrower ones as numbers
    assert t.to_json(value) == ["é", "Infinity", 1.5, -128, "18446744073709551615", True]
    assert t.from_json(["é", "Infinity", 1.5, "-128", "18446744073709551615", True]) == value
    assert t.from_json(["é", "Infinity", 1.5, -128, 2**64 - 1, True]) == value
    for bad in ("1e3", "0x10", " 1", "18446744073709551616", True):
        with pytest.raises(CodecError):
            t.from_json(["é", 0.0, 0.0, 0, bad, True])
    nan = t.from_proto(t.to_proto(("a", math.nan, math.nan, 0, 0, False)))
    assert math.isnan(nan[1]) and math.isnan(nan[2])
    assert tup.result is not None and tup.result.to_proto(b"\x00\xff").bytes == b"\x00\xff"
    assert tup.result.from_json("AP8=") == b"\x00\xff" and tup.result.from_json([0, 255]) == b"\x00\xff"


def test_bad_values_name_the_place(funcs: dict[str, Any]) -> None:
    tup = Signature.of(funcs["tuple"], "tuple")
    with pytest.raises(CodecError) as err:
        tup.args_from_json([["ab", 1.0, 1.0, 0, 0, True]])
    assert err.value.path == "t[0]"
    with pytest.raises(CodecError, match=r"t\[3\]: 128 is out of range for s8"):
        tup.args_from_json([["a", 1.0, 1.0, 128, 0, True]])
    with pytest.raises(CodecError, match="takes 1 argument"):
        tup.args_from_json([])
    parse = Signature.of(funcs["parse"], "parse")
    assert parse.result is not None
    with pytest.raises(CodecError, match=r"^ok.level: expected u8"):
        parse.result.from_json({"ok": {"ts": "x", "level": "high"}})
    with pytest.raises(CodecError, match="unknown record field"):
        parse.result.from_json({"ok": {"ts": "x", "level": 1, "extra": 2}})
    with pytest.raises(CodecError, match="expected string on the wire"):
        parse.args_from_proto([values_pb2.Value(u64=1)])
    # to_wire (what the arguments fall back to when the compiled writer refuses them) names a deep misfit too.
    entry = wc.Record()
    entry.ts, entry.level = "x", 300
    with pytest.raises(CodecError, match=r"^ok.level: 300 is out of range for u8") as deep:
        parse.result.to_wire(entry)
    assert deep.value.path == "ok.level"
    entry.level = 3
    assert parse.result.to_wire(entry) == parse.result.to_proto(entry).SerializeToString()
    del entry.ts
    with pytest.raises(CodecError, match="record has no field 'ts'"):
        parse.result.to_wire(entry)


def test_the_compiled_writer_refuses_what_does_not_fit_and_the_signature_says_where(funcs: dict[str, Any]) -> None:
    """agent/values/writergen.py: a value that does not fit is never written; args_to_wire then asks the codecs,
    which name the place."""
    tup = Signature.of(funcs["tuple"], "tuple")
    good = ("a", 1.0, 1.0, -3, 7, True)
    assert tup.args_to_wire([good]) == [tup.params[0][1].to_proto(good).SerializeToString()]
    write = compile_writer(tup.params[0][1])
    for bad, where in [
        (("a", 1.0, 1.0, 128, 0, True), r"t\[3\]: 128 is out of range for s8"),
        (("a", 1.0, 1.0, 0, 0, 1), r"t\[5\]"),  # an int is not a bool
        (("a", 1.0, 1.0, 0, 0), "expected 6 tuple elements"),
        (("a", 1.0, 1.0, 0, -1, True), r"t\[4\]: -1 is out of range for u64"),
    ]:
        with pytest.raises(Exception):  # noqa: B017 - Misfit or the value's own error: never bytes
            write(bad)
        with pytest.raises(CodecError, match=where):
            tup.args_to_wire([bad])
    variants = Signature.of(funcs["variants"], "variants")
    with pytest.raises(CodecError, match="matches no case"):
        variants.args_to_wire([3.5, wc.Variant("x", "s")])
    with pytest.raises(CodecError, match="expected one of the cases"):
        variants.args_to_wire(["t", wc.Variant("z", "s")])
    parse = Signature.of(funcs["same-result"], "same-result")
    with pytest.raises(CodecError, match="not valid Unicode"):
        parse.args_to_wire([wc.Variant("ok", "\ud800")])


def test_function_without_result(funcs: dict[str, Any]) -> None:
    sig = Signature.of(funcs["nothing"], "nothing")
    assert sig.params == [] and sig.result is None
    assert sig.result_to_proto(None) is None and sig.result_to_json(None) is None


def test_resources_are_refused_with_the_function_name() -> None:
    comp = wc.Component(
        ENGINE,
        """
    (component
      (import "test:res/api" (instance
        (export "handle" (type $h (sub resource)))
        (export "open" (func (result (own $h))))
      ))
    )""",
    )
    (inst,) = (e.ty for e in comp.type.imports(ENGINE).values())
    func = inst.exports(ENGINE)["open"].ty
    with pytest.raises(Unsupported, match=r"open result uses a resource \(own\), which cannot cross nodes"):
        Signature.of(func, "open")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text())), st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1)))
def test_lists_roundtrip_property(lists: list[list[str]], numbers: list[int]) -> None:
    comp = wc.Component(ENGINE, SINK)
    (inst,) = (e.ty for e in comp.type.imports(ENGINE).values())
    sig = Signature.of(inst.exports(ENGINE)["lists"].ty, "lists")
    (args,) = sig.args_to_proto([lists])
    assert sig.args_from_proto([values_pb2.Value.FromString(args.SerializeToString())]) == [lists]
    assert sig.args_from_json([lists]) == [lists]
    assert sig.result is not None
    assert sig.result_from_proto(sig.result_to_proto(numbers)) == numbers
