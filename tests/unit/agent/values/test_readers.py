"""Reading a forwarded call's serialized result (agent.values.readers): canonical bytes read directly,
anything else decoded through the generated classes, with the same values and the same errors."""

from __future__ import annotations

import pytest

from agent.values.codec import CodecError
from agent.values.compound import EnumCodec, RecordCodec
from agent.values.readergen import result_reader
from agent.values.scalars import StringCodec
from agent.values.signature import Signature, compile_type
from neon._proto import values_pb2
from tests.unit.agent.values.test_codec_properties import wasmtime_type

Value = values_pb2.Value
ENTRY = RecordCodec([("level", EnumCodec(["debug", "info", "warn", "error"])), ("message", StringCodec())])


def _entry(level: int, message: str) -> Value:
    return Value(list=values_pb2.ValueList(values=[Value(case=values_pb2.Case(index=level)), Value(string=message)]))


def test_canonical_and_other_encodings_read_alike() -> None:
    decode = result_reader(Signature([], ENTRY, "parse"))
    canonical = _entry(3, "login failed").SerializeToString()
    record = decode(canonical)
    assert (record.level, record.message) == ("error", "login failed")
    # The same value with its items written in two runs (protobuf merges them) and an unknown field after.
    split = Value(list=values_pb2.ValueList(values=[Value(case=values_pb2.Case(index=3))])).SerializeToString()
    split += Value(list=values_pb2.ValueList(values=[Value(string="login failed")])).SerializeToString()
    record = decode(split + b"\xf8\x01\x01")
    assert (record.level, record.message) == ("error", "login failed")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (Value(string="not a record"), "expected record"),
        (_entry(7, "x"), "bad enum case 7"),
        (Value(list=values_pb2.ValueList(values=[Value(case=values_pb2.Case(index=1))])), "expected 2 record fields"),
    ],
)
def test_a_result_that_does_not_fit_fails_as_from_proto_words_it(value: Value, error: str) -> None:
    decode = result_reader(Signature([], ENTRY, "parse"))
    with pytest.raises(CodecError, match=error):
        decode(value.SerializeToString())
    with pytest.raises(CodecError, match=error):
        Signature([], ENTRY, "parse").result_from_proto(value)


def test_no_result() -> None:
    assert result_reader(Signature([], None, "ping"))(None) is None
    with pytest.raises(CodecError, match="carries no result"):
        result_reader(Signature([], ENTRY, "parse"))(None)
    option = compile_type(wasmtime_type(("option", "u32")), "f")
    assert result_reader(Signature([], option, "f"))(Value(case=values_pb2.Case(index=0)).SerializeToString()) is None
