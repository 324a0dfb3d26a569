"""A host function's arguments read, and its result written, where wasmtime keeps them.

wasmtime-py converts a host function's values through ctypes structures: every field access makes a Python
object, every nested value is built as a structure and then copied, and a variant's case is found by
trying the Python classes of each case. Here each type gets, once, a reader and a writer of the uniform
form :mod:`agent.runtime.glue` speaks (a ``result`` or ``variant`` as ``Variant(case, payload)``, an
``option`` as None or its payload, a resource as its host object or :class:`Owned`, ``list<u8>`` as bytes),
working on ``wasmtime_component_val_t`` at its address with :mod:`struct` and a few C calls.

Ownership follows wasmtime-py's own conversions exactly: a reader frees what it read (a string's bytes,
a list's array, a boxed payload) and leaves a freed value as ``bool false``; a writer allocates through
wasmtime's own functions, so wasmtime frees what it is handed. A writer sets a value's kind after its
payload, so a value a failed writer leaves behind is still a ``bool`` and safe to free. Flags and error
contexts go through wasmtime-py's conversions, as before.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Callable
from ctypes import c_bool, c_char_p, c_size_t, c_uint32, c_void_p
from typing import Any

import wasmtime
from wasmtime import StoreContext
from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component import Variant

from agent.runtime.handles import HostTrap, Owned, current
from agent.values.clayout import (
    ENTRY,
    ENTRY_VAL,
    MEMORY,
    OF,
    POINTER_LAYOUT,
    RESULT_VAL,
    VAL,
    VARIANT_VAL,
    VEC_LAYOUT,
    text,
)

Read = Callable[[int, int], Any]  # (store context, value's address) -> the value
Write = Callable[[int, Any, int], None]  # (store context, value, where it goes)

# The whole address space, writable (what MEMORY reads): values are written where wasmtime will read them.
_W = memoryview((ctypes.c_ubyte * sys.maxsize).from_address(0)).cast("B")

_K = {name: getattr(ffi, f"WASMTIME_COMPONENT_{name}").value for name in (
    "BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "F32", "F64", "CHAR", "STRING", "LIST",
    "RECORD", "TUPLE", "VARIANT", "ENUM", "OPTION", "RESULT", "RESOURCE",
)}  # fmt: skip
_OK = struct.Struct("@?")


def c_function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A C function of wasmtime's library with plain integer arguments (not wasmtime-py's declaration of it)."""
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, ffi.dll))


_val_new = c_function("wasmtime_component_val_new", c_void_p, c_void_p)
_val_delete = c_function("wasmtime_component_val_delete", None, c_void_p)
_bytes_new = c_function("wasm_byte_vec_new", None, c_void_p, c_size_t, c_char_p)
_bytes_delete = c_function("wasm_byte_vec_delete", None, c_void_p)
_list_new = c_function("wasmtime_component_vallist_new_uninit", None, c_void_p, c_size_t)
_list_delete = c_function("wasmtime_component_vallist_delete", None, c_void_p)
_record_new = c_function("wasmtime_component_valrecord_new_uninit", None, c_void_p, c_size_t)
_record_delete = c_function("wasmtime_component_valrecord_delete", None, c_void_p)
_tuple_new = c_function("wasmtime_component_valtuple_new_uninit", None, c_void_p, c_size_t)
_tuple_delete = c_function("wasmtime_component_valtuple_delete", None, c_void_p)
_any_to_host = c_function("wasmtime_component_resource_any_to_host", c_void_p, c_void_p, c_void_p, c_void_p)
_any_delete = c_function("wasmtime_component_resource_any_delete", None, c_void_p)
_host_new = c_function("wasmtime_component_resource_host_new", c_void_p, c_bool, c_uint32, c_uint32)
_host_rep = c_function("wasmtime_component_resource_host_rep", c_uint32, c_void_p)
_host_delete = c_function("wasmtime_component_resource_host_delete", None, c_void_p)
_host_to_any = c_function("wasmtime_component_resource_host_to_any", c_void_p, c_void_p, c_void_p, c_void_p)


def raise_error(error: int | None) -> None:
    if error:
        raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))


def _store(ctx: int) -> StoreContext:
    return StoreContext(ctypes.cast(ctx, ctypes.POINTER(ffi.wasmtime_context_t)))


def _box() -> int:
    """A new heap value (``bool false``) for a payload; wasmtime frees it with the value that points to it."""
    boxed: int = _val_new(bytes(VAL))  # wasmtime moves the value out, leaving zeros: a fresh buffer each time
    return boxed


def _free_box(address: int) -> None:
    _W[address] = 0  # what it held was freed by its reader: free the box alone
    _val_delete(address)


# ------------------------------------------------------------------------------------ scalars --

_SCALARS: dict[type, tuple[str, str]] = {
    wc.Bool: ("BOOL", "?"),
    wc.S8: ("S8", "b"),
    wc.U8: ("U8", "B"),
    wc.S16: ("S16", "h"),
    wc.U16: ("U16", "H"),
    wc.S32: ("S32", "i"),
    wc.U32: ("U32", "I"),
    wc.S64: ("S64", "q"),
    wc.U64: ("U64", "Q"),
    wc.F32: ("F32", "f"),
    wc.F64: ("F64", "d"),
}


def _number(kind: int, fmt: str) -> tuple[Read, Write]:
    packer = struct.Struct("@" + fmt)
    boolean = fmt == "?"

    def read(_ctx: int, address: int) -> Any:
        return packer.unpack_from(MEMORY, address + OF)[0]

    def write(_ctx: int, value: Any, address: int) -> None:
        if boolean and not isinstance(value, bool):
            raise TypeError(f"expected a bool, got {value!r}")
        packer.pack_into(_W, address + OF, value)
        _W[address] = kind

    return read, write


def _scalar(ty: Any) -> tuple[Read, Write] | None:
    for cls, (kind_name, fmt) in _SCALARS.items():
        if isinstance(ty, cls):
            return _number(_K[kind_name], fmt)
    if isinstance(ty, wc.Char):
        code, kind = struct.Struct("@I"), _K["CHAR"]

        def read_char(_ctx: int, address: int) -> Any:
            return chr(code.unpack_from(MEMORY, address + OF)[0])

        def write_char(_ctx: int, value: Any, address: int) -> None:
            code.pack_into(_W, address + OF, ord(value))
            _W[address] = kind

        return read_char, write_char
    return None


# ---------------------------------------------------------------------- strings and byte lists --


def _text(kind: int) -> tuple[Read, Write]:
    """A string, or an enum's case name: a byte vector in the value."""

    def read(_ctx: int, address: int) -> str:
        found = text(address + OF).decode()
        _bytes_delete(address + OF)
        return found

    def write(_ctx: int, value: Any, address: int) -> None:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        data = value.encode()
        _bytes_new(address + OF, len(data), data)
        _W[address] = kind

    return read, write


def _read_bytes(_ctx: int, address: int) -> bytes:
    count, data = VEC_LAYOUT.unpack_from(MEMORY, address + OF)
    found = MEMORY[data + OF : data + count * VAL : VAL].tobytes() if count else b""
    _list_delete(address + OF)
    return found


_U8 = _K["U8"]


def _write_bytes(_ctx: int, value: Any, address: int) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    count = len(value)
    _list_new(address + OF, count)
    if count:
        data = POINTER_LAYOUT.unpack_from(MEMORY, address + OF + VEC_LAYOUT.size - POINTER_LAYOUT.size)[0]
        _W[data : data + count * VAL : VAL] = bytes((_U8,)) * count
        _W[data + OF : data + count * VAL : VAL] = value
    _W[address] = _K["LIST"]


# ------------------------------------------------------------------------------- resources --


def _rep(ctx: int, address: int) -> int:
    """The rep of the host resource the value at ``address`` names, its handle taken out (a ``u32``: a rep, left
    by a native host function that took the handle and handed the call on: kv_get.c)."""
    if MEMORY[address] == _K["U32"]:
        return int.from_bytes(MEMORY[address + OF : address + OF + 4], sys.byteorder)
    handle = POINTER_LAYOUT.unpack_from(MEMORY, address + OF)[0]
    POINTER_LAYOUT.pack_into(_W, address + OF, 0)
    _W[address] = 0
    host = c_void_p()
    error = _any_to_host(ctx, handle, ctypes.byref(host))
    _any_delete(handle)
    raise_error(error)
    rep: int = _host_rep(host)
    _host_delete(host)
    return rep


def _read_own(ctx: int, address: int) -> Any:
    return current().release(_rep(ctx, address))


def _read_borrow(ctx: int, address: int) -> Any:
    return current().get(_rep(ctx, address))


def _own_writer(ty: Any) -> Write:
    kind = _K["RESOURCE"]

    def write(ctx: int, value: Any, address: int) -> None:
        if type(value) is not Owned:
            ty.convert_to_c(_store(ctx), value, ctypes.cast(address, ctypes.POINTER(ffi.wasmtime_component_val_t)))
            return
        host = _host_new(True, value.rep, value.type_id)
        handle = c_void_p()
        error = _host_to_any(ctx, host, ctypes.byref(handle))
        _host_delete(host)
        raise_error(error)
        POINTER_LAYOUT.pack_into(_W, address + OF, handle.value)
        _W[address] = kind

    return write


# ------------------------------------------------------------------------- options, variants --


def _option(ty: Any) -> tuple[Read, Write]:
    """An option as None or its payload; an option of an option (where None could mean either) as
    ``Variant("none")`` or ``Variant("some", inner)``."""
    payload_read, payload_write = pair(ty.payload)
    kind, tagged = _K["OPTION"], isinstance(ty.payload, wc.OptionType)

    def read(ctx: int, address: int) -> Any:
        boxed = POINTER_LAYOUT.unpack_from(MEMORY, address + OF)[0]
        if not boxed:
            return Variant("none") if tagged else None
        found = payload_read(ctx, boxed)
        _free_box(boxed)
        return Variant("some", found) if tagged else found

    def write(ctx: int, value: Any, address: int) -> None:
        present = value is not None
        if tagged:
            if not isinstance(value, Variant) or value.tag not in ("none", "some"):
                raise TypeError(f"expected Variant('none') or Variant('some', payload), got {value!r}")
            present, value = value.tag == "some", value.payload
        boxed = 0
        if present:
            boxed = _box()
            payload_write(ctx, value, boxed)
        POINTER_LAYOUT.pack_into(_W, address + OF, boxed)
        _W[address] = kind

    return read, write


def _cases(ty: Any) -> dict[str, tuple[Read, Write] | None]:
    return {name: (pair(t) if t is not None else None) for name, t in ty._cases()}


def _payload(ctx: int, value: Variant, case: tuple[Read, Write] | None) -> int:
    if case is None:
        if value.payload is not None:
            raise TypeError(f"case {value.tag} has no payload, got {value.payload!r}")
        return 0
    boxed = _box()
    case[1](ctx, value.payload, boxed)
    return boxed


def _take_payload(ctx: int, boxed: int, case: tuple[Read, Write] | None) -> Any:
    if case is None or not boxed:
        if boxed:
            _val_delete(boxed)
        return None
    found = case[0](ctx, boxed)
    _free_box(boxed)
    return found


def _result(ty: Any) -> tuple[Read, Write]:
    cases = _cases(ty)
    ok, err, kind = cases["ok"], cases["err"], _K["RESULT"]
    at_val = OF + RESULT_VAL

    def read(ctx: int, address: int) -> Variant:
        is_ok = _OK.unpack_from(MEMORY, address + OF)[0]
        boxed = POINTER_LAYOUT.unpack_from(MEMORY, address + at_val)[0]
        return Variant("ok" if is_ok else "err", _take_payload(ctx, boxed, ok if is_ok else err))

    def write(ctx: int, value: Any, address: int) -> None:
        if not isinstance(value, Variant) or value.tag not in cases:
            raise TypeError(f"expected Variant('ok' or 'err', payload), got {value!r}")
        is_ok = value.tag == "ok"
        boxed = _payload(ctx, value, ok if is_ok else err)
        _OK.pack_into(_W, address + OF, is_ok)
        POINTER_LAYOUT.pack_into(_W, address + at_val, boxed)
        _W[address] = kind

    return read, write


def _variant(ty: Any) -> tuple[Read, Write]:
    cases = _cases(ty)
    names = {name: name.encode() for name in cases}
    kind, at_val = _K["VARIANT"], OF + VARIANT_VAL

    def read(ctx: int, address: int) -> Variant:
        tag = text(address + OF).decode()
        _bytes_delete(address + OF)
        boxed = POINTER_LAYOUT.unpack_from(MEMORY, address + at_val)[0]
        return Variant(tag, _take_payload(ctx, boxed, cases.get(tag)))

    def write(ctx: int, value: Any, address: int) -> None:
        if not isinstance(value, Variant) or value.tag not in cases:
            raise TypeError(f"expected Variant(one of {sorted(cases)}, payload), got {value!r}")
        boxed = _payload(ctx, value, cases[value.tag])
        name = names[value.tag]
        _bytes_new(address + OF, len(name), name)
        POINTER_LAYOUT.pack_into(_W, address + at_val, boxed)
        _W[address] = kind

    return read, write


# -------------------------------------------------------------------- lists, tuples, records --


ReadItems = Callable[[int, int, int], list[Any]]
WriteItems = Callable[[int, Any, int, int], None]


def _sequence(
    kind_name: str,
    new: Any,
    delete: Any,
    reads: Callable[[int], Read],
    writes: Callable[[int], Write],
    stride: int,
    offset: int,
) -> tuple[ReadItems, WriteItems]:
    """Reading and writing ``count`` items of an array value (a list's, a tuple's or a record's)."""
    kind = _K[kind_name]

    def read(ctx: int, address: int, count: int) -> list[Any]:
        _, data = VEC_LAYOUT.unpack_from(MEMORY, address + OF)
        items = []
        for i in range(count):
            at = data + i * stride + offset
            items.append(reads(i)(ctx, at))
            _W[at] = 0  # read and freed: left as bool false, as wasmtime-py leaves it
        delete(address + OF)
        return items

    def write(ctx: int, values: Any, address: int, count: int) -> None:
        new(address + OF, count)
        _, data = VEC_LAYOUT.unpack_from(MEMORY, address + OF)
        for i, value in enumerate(values):
            writes(i)(ctx, value, data + i * stride + offset)
        _W[address] = kind

    return read, write


def _list(ty: Any) -> tuple[Read, Write]:
    element_read, element_write = pair(ty.element)
    read_items, write_items = _sequence(
        "LIST", _list_new, _list_delete, lambda _: element_read, lambda _: element_write, VAL, 0
    )

    def read(ctx: int, address: int) -> list[Any]:
        return read_items(ctx, address, VEC_LAYOUT.unpack_from(MEMORY, address + OF)[0])

    def write(ctx: int, value: Any, address: int) -> None:
        items = list(value)
        write_items(ctx, items, address, len(items))

    return read, write


def _tuple(ty: Any) -> tuple[Read, Write]:
    elements = [pair(t) for t in ty.elements]
    read_items, write_items = _sequence(
        "TUPLE", _tuple_new, _tuple_delete, lambda i: elements[i][0], lambda i: elements[i][1], VAL, 0
    )
    count = len(elements)

    def read(ctx: int, address: int) -> tuple[Any, ...]:
        return tuple(read_items(ctx, address, count))

    def write(ctx: int, value: Any, address: int) -> None:
        items = tuple(value)
        if len(items) != count:
            raise TypeError(f"expected a tuple of {count}, got {len(items)} items")
        write_items(ctx, items, address, count)

    return read, write


def _record(ty: Any) -> tuple[Read, Write]:
    fields = [(name, name.encode(), pair(t)) for name, t in ty.fields]
    read_items, write_items = _sequence(
        "RECORD", _record_new, _record_delete, lambda i: fields[i][2][0], lambda i: fields[i][2][1], ENTRY, ENTRY_VAL
    )
    count = len(fields)

    def read(ctx: int, address: int) -> wc.Record:
        record = wc.Record()
        for (name, _, _), value in zip(fields, read_items(ctx, address, count), strict=True):
            setattr(record, name, value)
        return record

    def write(ctx: int, value: Any, address: int) -> None:
        write_items(ctx, [getattr(value, name) for name, _, _ in fields], address, count)
        _, data = VEC_LAYOUT.unpack_from(MEMORY, address + OF)
        for i, (_, raw, _) in enumerate(fields):
            _bytes_new(data + i * ENTRY, len(raw), raw)

    return read, write


# ---------------------------------------------------------------------------- by type, once --


def _stock(ty: Any) -> tuple[Read, Write]:
    """wasmtime-py's own conversions, for the types read and written nowhere else here (flags: no type inside
    them, so their uniform form is wasmtime-py's)."""

    def read(ctx: int, address: int) -> Any:
        return ty.convert_from_c(ffi.wasmtime_component_val_t.from_address(address))

    def write(ctx: int, value: Any, address: int) -> None:
        ty.convert_to_c(_store(ctx), value, ctypes.cast(address, ctypes.POINTER(ffi.wasmtime_component_val_t)))

    return read, write


def pair(ty: Any) -> tuple[Read, Write]:
    """The reader and the writer of ``ty`` (a type read once by :func:`agent.runtime.functypes.fix`), made for
    each host function as it is linked. Nothing keeps them beyond the function: a cache here, keyed by the type,
    held every linked component's types and functions for good (1.8 MB for each template of an HTTP component,
    so a node growing by that with every hot swap)."""
    return _make(ty)


def _make(ty: Any) -> tuple[Read, Write]:
    scalar = _scalar(ty)
    if scalar is not None:
        return scalar
    if isinstance(ty, wc.String):
        return _text(_K["STRING"])
    if isinstance(ty, wc.EnumType):
        return _text(_K["ENUM"])
    if isinstance(ty, wc.ListType):
        return (_read_bytes, _write_bytes) if isinstance(ty.element, wc.U8) else _list(ty)
    if isinstance(ty, wc.OwnType):
        return _read_own, _own_writer(ty)
    if isinstance(ty, wc.BorrowType):
        return _read_borrow, _unwritable("a borrow")
    if isinstance(ty, wc.OptionType):
        return _option(ty)
    if isinstance(ty, wc.ResultType):
        return _result(ty)
    if isinstance(ty, wc.VariantType):
        return _variant(ty)
    if isinstance(ty, wc.TupleType):
        return _tuple(ty)
    if isinstance(ty, wc.RecordType):
        return _record(ty)
    return _stock(ty)


def _unwritable(what: str) -> Write:
    def write(_ctx: int, _value: Any, _address: int) -> None:
        raise HostTrap(f"a host function cannot return {what}")

    return write
