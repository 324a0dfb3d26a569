"""How a host function's failure becomes a trap, and how a trap reads.

wasmtime-py parks a host function's Python exception in a process-global slot, which races between threads;
here it is kept in a thread-local (:func:`park`), and the call that trapped takes it back (:func:`take_pending`)
to name the cause or re-raise a Neon Grid error as itself.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import wasmtime

HostFunc = Callable[..., Any]


_pending = threading.local()


def park(err: BaseException) -> None:
    """Keep a host function's exception for the call that trapped on it (thread-local, see :func:`host_func`)."""
    _pending.error = err


def host_func(fn: HostFunc) -> HostFunc:
    """Adapt ``fn(*args)`` to wasmtime's ``(store, *args)`` host-function convention.

    wasmtime-py parks a host function's Python exception in a process-global
    slot, which races between threads; instead the exception is kept in a
    thread-local and the guest sees a trap carrying its message.
    """

    def call(_store: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - every failure must become a trap
            park(err)
            raise wasmtime.WasmtimeError(str(err)) from None

    return call


def take_pending() -> Exception | None:
    err = getattr(_pending, "error", None)
    _pending.error = None
    return err


def trap_message(err: Exception, cause: Exception | None) -> str:
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    # wasmtime puts the backtrace first and the reason last ("Caused by: ...").
    for i, line in enumerate(lines):
        if line.startswith("Caused by"):
            return "; ".join(lines[i + 1 : i + 3])
    return lines[0] if lines else type(err).__name__


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
