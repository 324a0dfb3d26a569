"""The host objects an instance holds handles to, and which instance's table the running thread uses.

A host function hands the guest an ``own`` handle as an :class:`Owned` (its rep in the instance's
:class:`Table`, its type id); a handle the guest passes back is looked up (``borrow``) or taken out
(``own``) of the same table. wasmtime runs no host destructor when a store is dropped, so what the guest
never dropped goes with the table.
"""

from __future__ import annotations

import threading
from typing import Any

from wasmtime.component import ResourceHost


class HostTrap(Exception):
    """Raised by an implementation to trap the guest (a broken rule of the interface)."""


class Owned:
    """A host object handed to the guest as an ``own`` handle: its rep in the instance's table, its type.
    (Not a tuple: wasmtime-py tells a variant's cases apart by their Python classes.)"""

    __slots__ = ("rep", "type_id")

    def __init__(self, rep: int, type_id: int) -> None:
        self.rep = rep
        self.type_id = type_id


class Table:
    """The host objects one instance holds handles to (its store's)."""

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self._shared: dict[int, int] = {}  # a rep given by its object (see keep) -> its handles beyond the first
        self._next = 1

    def own(self, type_id: int, obj: Any) -> ResourceHost:
        """``obj`` kept under a new handle, as wasmtime-py's value (for a call through its bindings)."""
        owned = self.keep(type_id, obj)
        return ResourceHost.own(owned.rep, type_id)

    def keep(self, type_id: int, obj: Any, rep: int | None = None) -> Owned:
        """``obj`` kept under a new handle, as a host function returns it. With ``rep``, every handle to
        ``obj`` has that rep (a native host function knows the object by it: see agent.platform.kv_native),
        and ``obj`` stays until the last of them is dropped; reps of the table's own are below 2**31."""
        if rep is None:
            rep = self._next
            self._next += 1
        elif rep in self.items:
            self._shared[rep] = self._shared.get(rep, 0) + 1
            return Owned(rep, type_id)
        self.items[rep] = obj
        return Owned(rep, type_id)

    def get(self, rep: int) -> Any:
        try:
            return self.items[rep]
        except KeyError:
            raise HostTrap(f"resource handle {rep} is not live") from None

    def release(self, rep: int) -> Any:
        obj = self.get(rep)
        if (more := self._shared.pop(rep, 0)) > 0:
            if more > 1:
                self._shared[rep] = more - 1
            return obj
        del self.items[rep]
        dropped = getattr(obj, "dropped", None)
        if dropped is not None:
            dropped()
        return obj

    @property
    def live(self) -> int:
        return len(self.items)


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
