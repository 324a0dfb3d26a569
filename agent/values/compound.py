"""Codecs of WIT's compound types: lists, records, tuples, variants, options, results, enums and
flags, and wasmtime-py's rule for when a variant-like value is tagged."""

from __future__ import annotations

from typing import Any, Sequence

from wasmtime import component as wc

from agent.values.codec import Codec, Unsupported, Value, _fail, _sub
from neon._proto import values_pb2


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
