"""wasmtime's C component values (``wasmtime_component_val_t``) read as plain bytes.

Reading a value field by field through ctypes costs a Python object per access;
copying a value (or an array of them) out of memory once and unpacking it with
:mod:`struct` costs a few. :meth:`agent.codec.Codec.lift` reads results this way.
Offsets and sizes come from wasmtime-py's own ctypes declarations; the layout
facts the readers rely on are checked here, at import.
"""

from __future__ import annotations

import struct
from ctypes import addressof, sizeof, string_at
from typing import Any

from wasmtime import _ffi as ffi


def _offset(declared: Any, field: str) -> int:
    """Where ``field`` lies in a ctypes structure, as wasmtime-py declares it."""
    return int(getattr(declared, field).offset)


VAL = sizeof(ffi.wasmtime_component_val_t)  # bytes of one value
KIND = _offset(ffi.wasmtime_component_val_t, "kind")
OF = _offset(ffi.wasmtime_component_val_t, "of")  # where the union (the value itself) starts
ENTRY = sizeof(ffi.wasmtime_component_valrecord_entry_t)  # one record field: its name, then its value
ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry_t, "val")
NAME = sizeof(ffi.wasm_name_t)
RESULT_VAL = _offset(ffi.wasmtime_component_valresult_t, "val")  # after is_ok
VARIANT_VAL = _offset(ffi.wasmtime_component_valvariant_t, "val")  # after the case name

OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
RESULT = ffi.WASMTIME_COMPONENT_RESULT.value

# A byte vector (a string, a name) and a list, record, tuple or flags value: a count, then a pointer.
_VEC = struct.Struct("@NP")
_POINTER = struct.Struct("@P")

for _vec in (
    ffi.wasm_byte_vec_t,
    ffi.wasmtime_component_vallist_t,
    ffi.wasmtime_component_valrecord_t,
    ffi.wasmtime_component_valtuple_t,
    ffi.wasmtime_component_valflags_t,
):
    if (_offset(_vec, "size"), _offset(_vec, "data"), sizeof(_vec)) != (0, _VEC.size - _POINTER.size, _VEC.size):
        raise ImportError(f"wasmtime-py's {_vec.__name__} is not laid out as (size_t size, pointer data)")
if _offset(ffi.wasmtime_component_valvariant_t, "discriminant") != 0 or VARIANT_VAL != NAME:
    raise ImportError("wasmtime-py's wasmtime_component_valvariant_t is not laid out as (name, pointer)")


def of_value(value: Any) -> bytes:
    """The bytes of a ctypes ``wasmtime_component_val_t``."""
    return string_at(addressof(value), VAL)


def at(pointer: int) -> bytes:
    """The bytes of the value a pointer points to."""
    return string_at(pointer, VAL)


def items(buf: bytes, at: int, size: int) -> tuple[int, bytes]:
    """The items of the list, record, tuple or flags value at ``at`` in ``buf``: how many, and their
    bytes (``size`` each: :data:`VAL`, :data:`ENTRY` or :data:`NAME`)."""
    count, data = _VEC.unpack_from(buf, at + OF)
    return count, (string_at(data, count * size) if count else b"")


def pointer(buf: bytes, offset: int) -> int:
    found: int = _POINTER.unpack_from(buf, offset)[0]
    return found


def text(buf: bytes, offset: int) -> bytes:
    """The bytes of a byte vector (a string, an enum case or a flag name) at ``offset`` in ``buf``."""
    size, data = _VEC.unpack_from(buf, offset)
    return string_at(data, size) if size else b""
