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
message too: :func:`agent.values.encodergen.encoder` reads wasmtime's C value (``wasmtime_component_val_t``,
where it lies: :mod:`agent.values.clayout`) straight into a serialized ``Value``
(:mod:`agent.values.framing`), the bytes :meth:`Codec.to_proto` of the lifted object
would serialize to, through one function compiled per type (:mod:`agent.values.encodergen`).
It reads only; the caller frees the C value once, whole (:mod:`agent.runtime.rawcall`).
"""

from __future__ import annotations

from typing import Any, Callable

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
    # Its compiled encoder of C values, once made (agent.values.encodergen.encoder).
    _reader: Callable[[int], bytes] | None = None

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
