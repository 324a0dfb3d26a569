"""Component function types read once, instead of on every call.

wasmtime-py reads a function's type through the C API on every call: the
function's parameters and result, and while lowering and lifting values each
record's fields, each result's ok and err, and so on, building new Python
objects each time. For the example's ``parse`` that was a third of a direct
call (bench/runtime.py). :func:`fix_type` reads the whole type tree of one
function once and pins it on the function: every property that walked the C
API answers from what was read, through a subclass of the type's own class,
so lowering and lifting run wasmtime-py's own code unchanged.
"""

from __future__ import annotations

from typing import Any

from wasmtime import component as wc

# Type class name -> its properties that read through the C API (values that are types, or lists of them).
_PROPERTIES: dict[str, tuple[str, ...]] = {
    "FuncType": ("params", "result"),
    "ListType": ("element",),
    "RecordType": ("fields",),
    "TupleType": ("elements",),
    "VariantType": ("cases",),
    "EnumType": ("names",),
    "FlagsType": ("names",),
    "OptionType": ("payload",),
    "ResultType": ("ok", "err"),
}
_FIXED: dict[type, type] = {}


def fix_type(func: wc.Func, store: Any) -> Any:
    """Read ``func``'s type once and make ``func`` use it from now on; returns the fixed type."""
    fixed = fix(func.type(store))
    pin_type(func, fixed)
    return fixed


def pin_type(func: wc.Func, fixed: Any) -> None:
    """Make ``func`` answer ``fixed`` (a type read by :func:`fix`, e.g. for another instance of its component)."""

    def read(_store: Any) -> Any:
        return fixed

    func.type = read  # type: ignore[method-assign,assignment]


def fix(ty: Any) -> Any:
    """Read a type tree once and pin it on its objects (in place); returns ``ty``."""
    names = _PROPERTIES.get(type(ty).__name__)
    if names is None or type(ty) in _FIXED.values():
        return ty  # a scalar type (nothing to read), or fixed already
    values = {name: _fix_value(getattr(ty, name)) for name in names}
    cls = _FIXED.get(type(ty))
    if cls is None:
        cls = _FIXED[type(ty)] = _fixed_class(type(ty), names)
    ty.__class__ = cls
    ty._fixed = values
    return ty


def _fix_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_fix_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_fix_value(v) for v in value)
    if value is None or isinstance(value, (str, int)):
        return value
    return fix(value)


def _fixed_class(base: type, names: tuple[str, ...]) -> type:
    """``base`` with each of ``names`` answered from ``self._fixed``, and variants' tagging decided once."""
    members: dict[str, Any] = {name: property(_reader(name)) for name in names}
    if hasattr(base, "_tagged"):

        def _tagged(self: Any) -> bool:
            tagged = self.__dict__.get("_tagged_once")
            if tagged is None:
                tagged = self.__dict__["_tagged_once"] = base._tagged(self)
            return bool(tagged)

        members["_tagged"] = _tagged
    return type(f"Fixed{base.__name__}", (base,), members)


def _reader(name: str) -> Any:
    def read(self: Any) -> Any:
        return self._fixed[name]

    return read
