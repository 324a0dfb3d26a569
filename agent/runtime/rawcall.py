"""Call a component function and read its result straight from wasmtime's C value.

wasmtime-py's ``Func.__call__`` lifts a result into Python objects, one ctypes
access and one free at a time; a forwarded call then encodes those objects
into protobuf. A :class:`Plan` calls the function through the same C API and
hands ``lift`` the address of the C result (for a forwarded call,
:meth:`agent.values.signature.Signature.wire_result`, which writes the serialized ``Value``
directly), then frees that result once, whole, and runs the function's
``post_return`` (which ``Func.__call__`` leaves to its caller). What does not
change from call to call (the store's context, the function's handle, the
argument and result slots) is set up once per instance and function.

The C calls around the guest's that run no guest code and take a microsecond
(freeing a value, setting the epoch deadline) go through a handle on the same
library that keeps the GIL: ctypes would release it around each and let any
waiting thread in, a switch each time, on every call's path. The guest's own
code (the call, ``post_return``) still runs without the GIL, so other threads
and other instances carry on meanwhile.

This reads wasmtime-py's ctypes bindings (``wasmtime._ffi``), which are
versioned with it; tests/unit/agent/values/test_codec_properties.py checks the lowering and the
lifting against wasmtime-py's own for random types, and the e2e tests run it
for every forwarded call.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from ctypes import POINTER, addressof, byref, pointer
from typing import Any, Callable

from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component._enter import enter_wasm

from agent.values.clayout import KIND, OF, VAL

_HELD = ctypes.PyDLL(ffi.dll._name)  # the library wasmtime-py loaded, its functions called holding the GIL


def _held(name: str, argtypes: list[Any]) -> Any:
    function = getattr(_HELD, name)
    function.argtypes, function.restype = argtypes, None
    return function


_val_delete = _held("wasmtime_component_val_delete", [POINTER(ffi.wasmtime_component_val_t)])
_set_epoch_deadline = _held("wasmtime_context_set_epoch_deadline", [POINTER(ffi.wasmtime_context_t), ctypes.c_uint64])
_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value

# A string value: its kind, then (at OF) the byte vector's size and data pointer (agent.values.clayout checks that
# layout); and where a bytes object's data starts (CPython's layout, checked here).
_STRING_SLOT = struct.Struct(f"@B{OF - KIND - 1}xNP")
_BYTES_DATA = bytes.__basicsize__ - 1
_probe = b"neon-grid"
if KIND != 0 or ctypes.string_at(id(_probe) + _BYTES_DATA, len(_probe)) != _probe:
    raise ImportError("agent.runtime.rawcall cannot place a string argument: unexpected value or bytes layout")


def set_epoch_deadline(store: Any, ticks: int) -> None:
    """``store.set_epoch_deadline(ticks)``, holding the GIL."""
    _set_epoch_deadline(store._context(), ticks)


class Plan:
    """One export of one instance, set up to be called many times by one thread at a time (the
    instance's): the store's context and the function's handle resolved once, the argument and result
    slots allocated once, and the result read where it lies (``lift`` gets its address).

    A string argument is handed to wasmtime as a pointer into the Python bytes of its UTF-8, which
    the call only reads (``wasmtime_component_func_call`` borrows its arguments and copies them into
    the guest), so nothing is allocated in C for it nor freed after. Other arguments are lowered as
    wasmtime-py lowers them and freed after the call.
    """

    __slots__ = (
        "_store",
        "_context",
        "_handle",
        "_types",
        "_strings",
        "_count",
        "_args",
        "_args_view",
        "_result",
        "_result_ref",
        "_result_view",
        "_results",
        "address",
    )

    def __init__(self, func: wc.Func, store: Any) -> None:
        ftype = func.type(store)  # fixed once per function (agent.runtime.functypes.fix_type)
        self._store = store
        self._context = store._context()
        self._handle = byref(func._func)
        self._types = [ty for _, ty in ftype.params]
        self._strings = [type(ty) is wc.String for ty in self._types]
        self._count = len(self._types)
        self._args = (ffi.wasmtime_component_val_t * max(1, self._count))()
        self._args_view = memoryview(self._args).cast("B")
        self._result: Any = None
        self._result_ref: Any = None
        self._result_view: Any = None
        self._results = 0
        self.address = 0  # of the result slot, which lift() reads
        if ftype.result is not None:
            self._result = ffi.wasmtime_component_val_t()
            self._result_ref = byref(self._result)
            self._results = 1
            self.address = addressof(self._result)
            self._result_view = memoryview(self._result).cast("B")

    def call(self, args: Sequence[Any], ticks: int, lift: Callable[[int], Any]) -> Any:
        """Call with Python ``args`` within ``ticks`` epoch ticks, run ``post_return``, and return
        ``lift(address)`` of the C result (None for a function without one)."""
        if len(args) != self._count:
            raise TypeError(f"wrong number of parameters provided: given {len(args)}, expected {self._count}")
        _set_epoch_deadline(self._context, ticks)
        raw, view = self._args, self._args_view
        kept = []  # the bytes borrowed strings point into, alive until the call has returned
        lowered = []  # the slots wasmtime-py lowered into, freed after the call
        try:
            for i, value in enumerate(args):
                if self._strings[i] and type(value) is str:
                    data = value.encode()
                    kept.append(data)
                    _STRING_SLOT.pack_into(view, i * VAL, _STRING, len(data), id(data) + _BYTES_DATA)
                else:
                    self._types[i].convert_to_c(self._store, value, pointer(raw[i]))
                    lowered.append(i)
            _checked(_func_call(self._handle, self._context, raw, self._count, self._result_ref, self._results))
        finally:
            for i in lowered:
                _val_delete(byref(raw[i]))
        lifted = None
        if self._results:
            try:
                lifted = lift(self.address)
            finally:
                _val_delete(self._result_ref)
                self._result_view[KIND] = _BOOL  # a value with nothing to free, for the next call to write over
        _checked(_post_return(self._handle, self._context))
        return lifted


# The guest's own code: wasmtime-py's bindings of the library, which release the GIL around each call.
_func_call = ffi.dll.wasmtime_component_func_call
_post_return = ffi.dll.wasmtime_component_func_post_return


def _checked(error: Any) -> None:
    """Raise the ``wasmtime_error_t`` a call returned, if any, as wasmtime-py would."""
    if error:
        enter_wasm(lambda: error)
