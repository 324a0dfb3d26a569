"""Host functions implemented in Python, linked below wasmtime-py's bindings.

wasmtime-py's own trampoline reads a host function's type through the C API on every call, moves a
``list<u8>`` one Python int per byte (about 2 µs a byte: a 64 KiB body took 270 ms), and builds every
nested value as a ctypes structure. Here each function's type is read once (:func:`agent.runtime.functypes.fix`),
and its arguments are read and its result written where wasmtime keeps them (:mod:`agent.runtime.cvalues`).

Implementations take and return plain Python: a resource as its host object (an :class:`Owned` going
out), a ``result`` or ``variant`` as ``Variant(case, payload)``, an ``option`` as None or its payload,
``list<u8>`` as bytes.

Every ``borrow<T>`` a host function receives is released before the implementation runs (the call traps
otherwise: "borrow handles still remain at the end of the call"), and every ``own<T>`` handed to the host
is taken out of the store's table, exactly once.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_size_t, c_void_p
from typing import Any, Callable, NamedTuple

import wasmtime
from wasmtime import component as wc
from wasmtime.component import ResourceType, _linker

from agent.runtime import cvalues
from agent.runtime.functypes import fix
from agent.runtime.handles import HostTrap, Owned, Table, current, using
from agent.runtime.traps import park
from agent.values.clayout import VAL

__all__ = ["HostTrap", "Impl", "Owned", "Table", "add_func", "current", "using"]

Impl = Callable[..., Any]


# ------------------------------------------------------------------------- the trampoline --

# wasmtime's host function callback with every pointer as a plain integer (wasmtime-py's declaration makes a
# ctypes object of each): the arguments and the result are read and written at their addresses.
_RAW = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t)


@_RAW  # type: ignore[untyped-decorator]
def _raw_trampoline(idx: int | None, ctx: int, _ty: int, args: int, _n: int, results: int, _m: int) -> int:
    try:
        _HANDLES[idx or 0](ctx, args or 0, results or 0)
    except wasmtime.WasmtimeError as err:
        return ctypes.cast(err._consume(), c_void_p).value or 0
    except Exception as err:  # noqa: BLE001 - nothing may unwind into wasmtime
        park(err)
        return ctypes.cast(wasmtime.WasmtimeError(str(err))._consume(), c_void_p).value or 0
    return 0


_HANDLES = _linker.FUNCTIONS.handles  # the slab's own dict: one lookup a call, not a method call


class Native(NamedTuple):
    """A host function in native code, registered over a Python one it hands what it does not answer to:
    ``callback`` (wasmtime's callback type), ``env(trampoline, index, finalize)`` making its environment from
    the Python function's, and ``finalize`` freeing that environment (and, through it, the Python one)."""

    callback: int
    env: Callable[[int, int, int], int]
    finalize: int


_add_func = cvalues.c_function(
    "wasmtime_component_linker_instance_add_func", c_void_p, c_void_p, c_char_p, c_size_t, c_void_p, c_void_p, c_void_p
)
_TRAMPOLINE_ADDRESS = ctypes.cast(_raw_trampoline, c_void_p).value or 0
_FINALIZE_ADDRESS = ctypes.cast(_linker.func_finalize, c_void_p).value or 0


def add_func(inst: wc.LinkerInstance, name: str, impl: Impl, fty: Any, native: Native | None = None) -> None:
    """Define ``name`` in ``inst`` as ``impl`` with the uniform values; ``fty`` is its FuncType. With
    ``native``, the native function answers the calls and hands ``impl`` those it does not."""
    reads = [(i * VAL, cvalues.pair(fix(t))[0]) for i, (_, t) in enumerate(fty.params)]
    write = cvalues.pair(fix(fty.result))[1] if fty.result is not None else None
    arguments = _arguments(reads)

    def call(ctx: int, args: int, results: int) -> None:
        try:
            out = impl(*arguments(ctx, args))
            if write is not None:
                write(ctx, out, results)
        except Exception as err:  # noqa: BLE001 - every failure becomes a trap the caller can name
            park(err)  # the trap's cause, for the call that trapped (it names it, or re-raises a NeonGridError)
            raise wasmtime.WasmtimeError(f"{name}: {err}") from None

    raw = name.encode()
    idx = _linker.FUNCTIONS.allocate(call)
    callback, env, finalize = _TRAMPOLINE_ADDRESS, idx, _FINALIZE_ADDRESS
    if native is not None:
        callback, env, finalize = native.callback, native.env(callback, idx, finalize), native.finalize
        if not env:
            _linker.FUNCTIONS.deallocate(idx)
            raise MemoryError(f"no memory for the native {name}")
    address = ctypes.cast(inst.ptr(), c_void_p).value
    cvalues.raise_error(_add_func(address, raw, len(raw), callback, env, finalize))


def _arguments(reads: list[tuple[int, cvalues.Read]]) -> Callable[[int, int], tuple[Any, ...]]:
    """What reads a call's arguments; the common arities without a loop."""
    if len(reads) == 1:
        ((_, first),) = reads
        return lambda ctx, args: (first(ctx, args),)
    if len(reads) == 2:
        (_, first), (at, second) = reads
        return lambda ctx, args: (first(ctx, args), second(ctx, args + at))
    return lambda ctx, args: tuple(read(ctx, args + at) for at, read in reads)


def dtor(_store: Any, rep: int) -> None:
    """A guest dropped its handle to a host resource."""
    current().release(rep)


def imported_instances(engine: wasmtime.Engine, component: wc.Component) -> dict[str, dict[str, Any]]:
    """Every interface ``component`` imports -> its items (name -> the import's item, whose ``ty`` is a
    function or resource type)."""
    return {
        name: dict(ext.ty.exports(engine).items())
        for name, ext in component.type.imports(engine).items()
        if isinstance(ext.ty, wc.ComponentInstanceType)
    }


def resource_groups(items: dict[str, dict[str, Any]], first: int = 1) -> dict[tuple[str, str], int]:
    """(interface, resource) -> a host type id, from ``first`` on, shared by every name of the same resource
    type (a ``use``d type is the same in each interface that names it)."""
    seen: list[ResourceType] = []
    groups: dict[tuple[str, str], int] = {}
    for iface, exports in items.items():
        for item, ext in exports.items():
            if isinstance(ext.ty, ResourceType):
                index = next((i for i, r in enumerate(seen) if r == ext.ty), None)
                if index is None:
                    seen.append(ext.ty)
                    index = len(seen) - 1
                groups[(iface, item)] = first + index
    return groups


def define_instances(
    root: wc.LinkerInstance,
    interfaces: frozenset[str],
    items: dict[str, dict[str, Any]],
    groups: dict[tuple[str, str], int],
    impl_for: Callable[[str, str], Impl],
    natives: dict[tuple[str, str], Native] | None = None,
) -> None:
    """Define each of ``interfaces`` in ``root``: its resources as the host resource types ``groups`` names,
    its functions as ``impl_for(interface, function)`` (under ``natives[(interface, function)]`` if given)."""
    for iface in sorted(interfaces):
        with root.add_instance(iface) as inst:
            for item, ext in items[iface].items():
                if isinstance(ext.ty, ResourceType):
                    inst.add_resource(item, ResourceType.host(groups[(iface, item)]), dtor)
                elif isinstance(ext.ty, wc.FuncType):
                    add_func(inst, item, impl_for(iface, item), ext.ty, (natives or {}).get((iface, item)))


class Hosts:
    """The WASI hosts of one component (wasi:http's, wasi:keyvalue's) as one
    :class:`agent.runtime.engine.WasiHost`: each defines its interfaces, and an instance's resources of all of
    them live in one table."""

    def __init__(self, *hosts: Any) -> None:
        self.hosts = [h for h in hosts if h is not None]
        self.interfaces: frozenset[str] = frozenset().union(*(h.interfaces for h in self.hosts))

    def define(self, root: wc.LinkerInstance, denials: Any) -> None:
        for host in self.hosts:
            host.define(root, denials)

    def scope(self) -> using:
        return using(Table())


def combined(*hosts: Any) -> Any:
    """One host for the component: None for none, the host itself for one, :class:`Hosts` for more."""
    present = [h for h in hosts if h is not None]
    if len(present) < 2:
        return present[0] if present else None
    return Hosts(*present)
