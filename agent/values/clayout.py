"""wasmtime's C component values (``wasmtime_component_val_t``) read where they lie.

Reading a value field by field through ctypes costs a Python object per access.
Instead the process's memory is one read-only buffer (:data:`MEMORY`), and a
value's fields are unpacked from it with :mod:`struct` at the value's address;
strings are sliced out of it. :func:`agent.values.encodergen.encoder` reads results this
way. Offsets and sizes come from wasmtime-py's own ctypes declarations; the
layout facts the readers rely on are checked here, at import.

Reading an address that is not a live value's is undefined, as with any ctypes
access: the readers are only ever given addresses wasmtime wrote.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from ctypes import sizeof
from typing import Any

from wasmtime import _ffi as ffi

# The whole address space as bytes, read-only: slicing it reads memory, nothing is copied until then.
MEMORY = memoryview((ctypes.c_ubyte * sys.maxsize).from_address(0)).cast("B").toreadonly()


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
VEC_LAYOUT = struct.Struct("@NP")
POINTER_LAYOUT = struct.Struct("@P")

for _vec in (
    ffi.wasm_byte_vec_t,
    ffi.wasmtime_component_vallist_t,
    ffi.wasmtime_component_valrecord_t,
    ffi.wasmtime_component_valtuple_t,
    ffi.wasmtime_component_valflags_t,
):
    if (_offset(_vec, "size"), _offset(_vec, "data"), sizeof(_vec)) != (
        0,
        VEC_LAYOUT.size - POINTER_LAYOUT.size,
        VEC_LAYOUT.size,
    ):
        raise ImportError(f"wasmtime-py's {_vec.__name__} is not laid out as (size_t size, pointer data)")
if ffi.wasmtime_component_val_t.kind.size != 1 or KIND != 0:
    raise ImportError("wasmtime-py's wasmtime_component_val_t does not start with a one-byte kind")
if _offset(ffi.wasmtime_component_valvariant_t, "discriminant") != 0 or VARIANT_VAL != NAME:
    raise ImportError("wasmtime-py's wasmtime_component_valvariant_t is not laid out as (name, pointer)")


def vec(address: int) -> tuple[int, int]:
    """The vector at ``address`` (a string's bytes, a list's items...): how many, and where they start."""
    count, data = VEC_LAYOUT.unpack_from(MEMORY, address)
    return count, data


def pointer(address: int) -> int:
    found: int = POINTER_LAYOUT.unpack_from(MEMORY, address)[0]
    return found


def text(address: int) -> bytes:
    """The bytes of the byte vector at ``address`` (a string, an enum case or a flag name)."""
    size, data = VEC_LAYOUT.unpack_from(MEMORY, address)
    return MEMORY[data : data + size].tobytes()
