"""A function's WIT types compiled once into codecs (:func:`compile_type`), and its :class:`Signature`:
arguments and result to and from protobuf and JSON, and the result's compiled encoder of C values."""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from wasmtime import component as wc

from agent.values.codec import Codec, CodecError, Unsupported, Value
from agent.values.compound import CasesCodec, EnumCodec, FlagsCodec, ListCodec, OptionCodec, RecordCodec, TupleCodec
from agent.values.encodergen import encoder
from agent.values.scalars import BoolCodec, BytesCodec, CharCodec, FloatCodec, IntCodec, StringCodec
from agent.values.writergen import Write, compile_writer

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
        self._writers: list[Write] | None = None  # compiled at the first args_to_wire

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
        if self._writers is None:
            self._writers = [compile_writer(c) for _, c in self.params]
        try:
            return [write(v) for write, v in zip(self._writers, args, strict=True)]
        except Exception:  # noqa: BLE001 - a value that does not fit: the codecs write it, or say where it misfits
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
        serialized ``Value``: the result type's compiled reader (:mod:`agent.values.encodergen`). Only called for
        a function with a result: :class:`agent.runtime.rawcall.Plan` returns None for one without."""
        return _no_result if self.result is None else encoder(self.result)

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
