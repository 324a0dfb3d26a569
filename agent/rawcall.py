"""Call a component function and read its result straight from wasmtime's C value.

wasmtime-py's ``Func.__call__`` lifts a result into Python objects, one ctypes
access and one free at a time; a forwarded call then encodes those objects
into protobuf. :func:`call_lifting` lowers the arguments as wasmtime-py does,
calls the function through the same C API, and hands the C result to ``lift``
(for a forwarded call, :meth:`agent.codec.Signature.wire_result`, which
writes the serialized ``Value`` directly), then frees that result once, whole.
It then runs the function's ``post_return`` (which ``Func.__call__`` leaves to its caller).

The C calls around the guest's that run no guest code and take a microsecond
(freeing a value, making a string, setting the epoch deadline) go through a
handle on the same library that keeps the GIL: ctypes would release it around
each and let any waiting thread in, a switch each time, on every call's path.
The guest's own code (the call, ``post_return``) still runs without the GIL,
so other threads and other instances carry on meanwhile.

This reads wasmtime-py's ctypes bindings (``wasmtime._ffi``), which are
versioned with it; tests/test_codec_properties.py checks the lifting against
the Python path for random types, and the e2e tests run it for every
forwarded call.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, byref, pointer
from typing import Any, Callable

from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component._enter import enter_wasm

_HELD = ctypes.PyDLL(ffi.dll._name)  # the library wasmtime-py loaded, its functions called holding the GIL


def _held(name: str, argtypes: list[Any]) -> Any:
    function = getattr(_HELD, name)
    function.argtypes, function.restype = argtypes, None
    return function


_val_delete = _held("wasmtime_component_val_delete", [POINTER(ffi.wasmtime_component_val_t)])
_byte_vec_new = _held("wasm_byte_vec_new", [POINTER(ffi.wasm_byte_vec_t), ctypes.c_size_t, ctypes.c_char_p])
_set_epoch_deadline = _held("wasmtime_context_set_epoch_deadline", [POINTER(ffi.wasmtime_context_t), ctypes.c_uint64])
_STRING = ffi.WASMTIME_COMPONENT_STRING.value


def set_epoch_deadline(store: Any, ticks: int) -> None:
    """``store.set_epoch_deadline(ticks)``, holding the GIL."""
    _set_epoch_deadline(store._context(), ticks)


def _lower(ty: Any, store: Any, value: Any, into: Any) -> None:
    """Lower a Python value into the C value ``into``: strings here, the rest as wasmtime-py does."""
    if type(ty) is wc.String and type(value) is str:
        data = value.encode()
        into.kind = _STRING
        _byte_vec_new(byref(into.of.string), len(data), data)
    else:
        ty.convert_to_c(store, value, pointer(into))


def call_lifting(func: wc.Func, store: Any, args: list[Any], lift: Callable[[Any], Any]) -> Any:
    """Call ``func`` with Python ``args``, run its ``post_return``, and return ``lift(result)`` of its
    C result (None without one)."""
    ftype = func.type(store)  # fixed once per function (agent.wasm_types.fix_type)
    params = ftype.params
    if len(args) != len(params):
        raise TypeError(f"wrong number of parameters provided: given {len(args)}, expected {len(params)}")
    context = store._context()
    handle = byref(func._func)
    raw = (ffi.wasmtime_component_val_t * len(args))()
    lowered = 0
    try:
        for (_, ty), value in zip(params, args, strict=True):
            _lower(ty, store, value, raw[lowered])
            lowered += 1
        result = ffi.wasmtime_component_val_t() if ftype.result is not None else None  # zeroed: written over
        into, count = (byref(result), 1) if result is not None else (None, 0)
        _checked(_func_call(handle, context, raw, lowered, into, count))
        try:
            lifted = lift(result) if result is not None else None
        finally:
            if result is not None:
                _val_delete(byref(result))
    finally:
        for i in range(lowered):
            _val_delete(byref(raw[i]))
    _checked(_post_return(handle, context))
    return lifted


# The guest's own code: wasmtime-py's bindings of the library, which release the GIL around each call.
_func_call = ffi.dll.wasmtime_component_func_call
_post_return = ffi.dll.wasmtime_component_func_post_return


def _checked(error: Any) -> None:
    """Raise the ``wasmtime_error_t`` a call returned, if any, as wasmtime-py would."""
    if error:
        enter_wasm(lambda: error)
