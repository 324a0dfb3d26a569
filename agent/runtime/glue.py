"""Host functions implemented in Python, linked below wasmtime-py's bindings.

wasmtime-py's own trampoline reads a host function's type through the C API on every call, and moves a
``list<u8>`` one Python int per byte (about 2 µs a byte: a 64 KiB body took 270 ms). Here each
function's type is read once (:func:`agent.runtime.functypes.fix`), byte lists are copied with one
strided slice, and resources are mapped to the host objects of the calling instance's
:class:`Table`.

Implementations take and return plain Python: a resource as its host object, a ``result`` or
``variant`` as ``Variant(case, payload)``, an ``option`` as None or its payload, ``list<u8>`` as bytes.
wasmtime-py's own mapping depends on the type (a variant whose cases' Python classes differ is lowered
from the bare payload), so the adapters from and to that uniform form are computed per type, once.

Every ``borrow<T>`` a host function receives is released before the implementation runs (the call traps
otherwise: "borrow handles still remain at the end of the call"), and every ``own<T>`` handed to the host
is taken out of the store's table, exactly once. Resources cross as bare C pointers and reps, not as
wasmtime-py's ``ResourceAny``/``ResourceHost`` objects (four objects and their finalizers per handle).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable

import wasmtime
from wasmtime import _bindings as raw
from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component import ResourceHost, ResourceType, Variant, _linker
from wasmtime.component._enter import catch_exceptions

from agent.runtime.functypes import fix
from agent.runtime.traps import park
from agent.values.clayout import OF, VAL

Impl = Callable[..., Any]

_KIND_U8 = ffi.WASMTIME_COMPONENT_U8.value
_LIST = ffi.WASMTIME_COMPONENT_LIST
_RESOURCE = ffi.WASMTIME_COMPONENT_RESOURCE
_HOST_P = ctypes.POINTER(ffi.wasmtime_component_resource_host_t)
_ANY_P = ctypes.POINTER(ffi.wasmtime_component_resource_any_t)


class Owned:
    """A host object handed to the guest as an ``own`` handle: its rep in the instance's table, its type.
    (Not a tuple: wasmtime-py tells a variant's cases apart by their Python classes.)"""

    __slots__ = ("rep", "type_id")

    def __init__(self, rep: int, type_id: int) -> None:
        self.rep = rep
        self.type_id = type_id


class Table:
    """The host objects one instance holds handles to (its store's): wasmtime runs no host destructor
    when a store is dropped, so what the guest never dropped goes with the table."""

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self._next = 1

    def own(self, type_id: int, obj: Any) -> ResourceHost:
        """``obj`` kept under a new handle, as wasmtime-py's value (for a call through its bindings)."""
        owned = self.keep(type_id, obj)
        return ResourceHost.own(owned.rep, type_id)

    def keep(self, type_id: int, obj: Any) -> Owned:
        """``obj`` kept under a new handle, as a host function returns it (:func:`prepare`'s types lower it)."""
        rep = self._next
        self._next += 1
        self.items[rep] = obj
        return Owned(rep, type_id)

    def get(self, rep: int) -> Any:
        try:
            return self.items[rep]
        except KeyError:
            raise HostTrap(f"resource handle {rep} is not live") from None

    def release(self, rep: int) -> Any:
        obj = self.get(rep)
        del self.items[rep]
        dropped = getattr(obj, "dropped", None)
        if dropped is not None:
            dropped()
        return obj

    @property
    def live(self) -> int:
        return len(self.items)


class HostTrap(Exception):
    """Raised by an implementation to trap the guest (a broken rule of the interface)."""


_current = threading.local()


def current() -> Table:
    """The table of the instance this thread is calling into (set by :func:`using`)."""
    table: Table | None = getattr(_current, "table", None)
    if table is None:
        raise HostTrap("a host function ran outside a call into its instance")
    return table


class using:  # noqa: N801 - used as a context manager, like a function
    """``with using(table):`` host functions and destructors run by this thread use ``table``."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __enter__(self) -> Table:
        self.previous = getattr(_current, "table", None)
        _current.table = self.table
        return self.table

    def __exit__(self, *_exc: object) -> None:
        _current.table = self.previous


# ------------------------------------------------------------------ byte lists, one slice each --


def _bytes_from_c(c: Any) -> bytes:
    n = c.of.list.size
    data = ctypes.string_at(c.of.list.data, n * VAL)[OF::VAL] if n else b""
    ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))
    return data


def _bytes_to_c(_store: Any, val: Any, ptr: Any) -> None:
    if not isinstance(val, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(val).__name__}")
    n = len(val)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        buf = bytearray(n * VAL)
        buf[0::VAL] = bytes([_KIND_U8]) * n
        buf[OF::VAL] = val
        ctypes.memmove(raw.data, (ctypes.c_char * len(buf)).from_buffer(buf), len(buf))
    ptr.contents.kind = _LIST
    ptr.contents.of.list = raw


# -------------------------------------------------------------- resources, as pointers and reps --


def _take_resource(c: Any) -> Any:
    """A resource argument's ``resource_any`` pointer, taken from wasmtime's value (lifted by :func:`_rep`)."""
    return ffi.take_pointer(c.of, "resource")


def _rep(store: Any, any_ptr: Any) -> int:
    """The rep of the host resource behind ``any_ptr`` (a handle the guest passed), and ``any_ptr`` freed."""
    host = _HOST_P()
    error = raw._wasmtime_component_resource_any_to_host(store._context(), any_ptr, ctypes.byref(host))
    raw._wasmtime_component_resource_any_delete(any_ptr)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    rep: int = raw._wasmtime_component_resource_host_rep(host)
    raw._wasmtime_component_resource_host_delete(host)
    return rep


def _own_to_c(fallback: Callable[..., None]) -> Callable[[Any, Any, Any], None]:
    def convert(store: Any, val: Any, ptr: Any) -> None:
        if type(val) is not Owned:
            fallback(store, val, ptr)
            return
        host = raw._wasmtime_component_resource_host_new(True, val.rep, val.type_id)
        handle = _ANY_P()
        error = raw._wasmtime_component_resource_host_to_any(store._context(), host, ctypes.byref(handle))
        raw._wasmtime_component_resource_host_delete(host)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        ptr.contents.kind = _RESOURCE
        ptr.contents.of.resource = handle

    return convert


def _resource_classes(found: set[type]) -> None:
    """What a resource is in Python here: a bare pointer coming in, an :class:`Owned` going out."""
    found.update((_ANY_P, Owned, wc.ResourceAny, ResourceHost))


def prepare(ty: Any) -> Any:
    """Read a value type once; byte lists get the one-slice conversions, resources the pointer ones."""
    ty = fix(ty)
    _bytes_fast(ty, set())
    return ty


def _bytes_fast(ty: Any, seen: set[int]) -> None:
    if ty is None or id(ty) in seen:
        return
    seen.add(id(ty))
    if isinstance(ty, (wc.OwnType, wc.BorrowType)):
        ty.convert_from_c = _take_resource  # type: ignore[method-assign]
        ty.add_classes = _resource_classes  # type: ignore[method-assign,assignment]
        if isinstance(ty, wc.OwnType):
            ty.convert_to_c = _own_to_c(ty.convert_to_c)  # type: ignore[method-assign,assignment]
    elif isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            ty.convert_from_c = _bytes_from_c  # type: ignore[method-assign]
            ty.convert_to_c = _bytes_to_c  # type: ignore[method-assign,assignment]
        else:
            _bytes_fast(ty.element, seen)
    elif isinstance(ty, (wc.ResultType, wc.OptionType, wc.VariantType)):
        for _, case in ty._cases():
            _bytes_fast(case, seen)
        if _ambiguous(ty):
            ty._tagged = lambda: True  # type: ignore[method-assign]
    elif isinstance(ty, wc.TupleType):
        for element in ty.elements:
            _bytes_fast(element, seen)
    elif isinstance(ty, wc.RecordType):
        for _, field in ty.fields:
            _bytes_fast(field, seen)


def _ambiguous(ty: Any) -> bool:
    """Whether wasmtime-py, lowering a bare payload, could pick the wrong case: it tries the cases in order by
    the payload's Python class, and a case whose classes include ``object`` (an option, say) takes anything.
    ``result<option<T>, E>`` is one: its error would be lowered as ``ok``. Such a type is made tagged (it is
    lowered from ``Variant(case, payload)``)."""
    cases = ty._cases()
    return len(cases) > 1 and any(t is not None and object in _classes(t) for _, t in cases)


# --------------------------------------------------------- from wasmtime-py's values, and back --


def lift(ty: Any) -> Callable[[Any, Any], Any] | None:
    """From what wasmtime-py lifts to the uniform form (None: no change)."""
    if isinstance(ty, wc.OwnType):
        return lambda store, v: current().release(_rep(store, v))
    if isinstance(ty, wc.BorrowType):
        return lambda store, v: current().get(_rep(store, v))
    if isinstance(ty, wc.OptionType):
        some = lift(ty.payload)
        if ty._tagged():
            return lambda s, v: None if v.tag == "none" else (some(s, v.payload) if some else v.payload)
        return (lambda s, v: None if v is None else some(s, v)) if some else None
    if isinstance(ty, (wc.ResultType, wc.VariantType)):
        cases = [(name, t, lift(t) if t is not None else None, _classes(t)) for name, t in ty._cases()]
        if ty._tagged():
            subs = {name: sub for name, _, sub, _ in cases}

            def tagged(s: Any, v: Variant) -> Variant:
                sub = subs[v.tag]
                return Variant(v.tag, sub(s, v.payload) if sub is not None else v.payload)

            return tagged

        def untagged(s: Any, v: Any) -> Variant:
            for name, t, sub, classes in cases:
                if (t is None and v is None) or (t is not None and isinstance(v, classes)):
                    return Variant(name, sub(s, v) if sub else v)
            raise TypeError(f"no case of the variant takes {v!r}")

        return untagged
    if isinstance(ty, wc.ListType) and not isinstance(ty.element, wc.U8):
        element = lift(ty.element)
        return (lambda s, v: [element(s, x) for x in v]) if element else None
    if isinstance(ty, wc.TupleType):
        elements = [lift(t) for t in ty.elements]
        if any(elements):
            return lambda s, v: tuple(e(s, x) if e else x for e, x in zip(elements, v, strict=True))
    return None


def lower(ty: Any) -> Callable[[Any], Any] | None:
    """From the uniform form to what wasmtime-py lowers for ``ty`` (None: no change)."""
    if isinstance(ty, wc.OptionType):
        tagged, some = ty._tagged(), lower(ty.payload)

        def option(v: Any) -> Any:
            if v is None:
                return Variant("none") if tagged else None
            v = some(v) if some else v
            return Variant("some", v) if tagged else v

        return option
    if isinstance(ty, (wc.ResultType, wc.VariantType)):
        tagged = ty._tagged()
        subs = {name: (lower(t) if t is not None else None) for name, t in ty._cases()}

        def variant(v: Any) -> Any:
            if not isinstance(v, Variant):
                raise TypeError(f"expected Variant(case, payload), got {v!r}")
            sub = subs[v.tag]
            payload = sub(v.payload) if sub else v.payload
            return Variant(v.tag, payload) if tagged else payload

        return variant
    if isinstance(ty, wc.ListType) and not isinstance(ty.element, wc.U8):
        element = lower(ty.element)
        return (lambda v: [element(x) for x in v]) if element else None
    if isinstance(ty, wc.TupleType):
        elements = [lower(t) for t in ty.elements]
        if any(elements):
            return lambda v: tuple(e(x) if e else x for e, x in zip(elements, v, strict=True))
    return None


def _classes(ty: Any) -> tuple[type, ...]:
    found: set[type] = set()
    if ty is None:
        return (type(None),)
    ty.add_classes(found)
    return tuple(found)


# ------------------------------------------------------------------------- the trampoline --


@ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
def _trampoline(idx: Any, context: Any, _ty: Any, args: Any, _nargs: int, results: Any, _nresults: int) -> Any:
    def run(store: Any) -> None:
        _linker.FUNCTIONS.get(idx or 0)(store, args, results)

    return catch_exceptions(context, run)


def add_func(inst: wc.LinkerInstance, name: str, impl: Impl, fty: Any) -> None:
    """Define ``name`` in ``inst`` as ``impl`` with the uniform values; ``fty`` is its FuncType."""
    params = [prepare(t) for _, t in fty.params]
    result = prepare(fty.result) if fty.result is not None else None
    lifts = [lift(t) for t in params]
    shape = lower(result) if result is not None else None

    def call(store: Any, args: Any, results: Any) -> None:
        try:
            values = [t.convert_from_c(args[i]) for i, t in enumerate(params)]
            py = [f(store, v) if f else v for f, v in zip(lifts, values, strict=True)]
            out = impl(*py)
            if result is not None:
                result.convert_to_c(store, shape(out) if shape else out, results)
        except Exception as err:  # noqa: BLE001 - every failure becomes a trap the caller can name
            park(err)  # the trap's cause, for the call that trapped (it names it, or re-raises a NeonGridError)
            raise wasmtime.WasmtimeError(f"{name}: {err}") from None

    raw = name.encode()
    idx = _linker.FUNCTIONS.allocate(call)
    error = ffi.wasmtime_component_linker_instance_add_func(
        inst.ptr(), ctypes.create_string_buffer(raw), len(raw), _trampoline, idx, _linker.func_finalize
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


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
) -> None:
    """Define each of ``interfaces`` in ``root``: its resources as the host resource types ``groups`` names,
    its functions as ``impl_for(interface, function)``."""
    for iface in sorted(interfaces):
        with root.add_instance(iface) as inst:
            for item, ext in items[iface].items():
                if isinstance(ext.ty, ResourceType):
                    inst.add_resource(item, ResourceType.host(groups[(iface, item)]), dtor)
                elif isinstance(ext.ty, wc.FuncType):
                    add_func(inst, item, impl_for(iface, item), ext.ty)


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
