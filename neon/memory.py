"""The C heap of a long-running process kept compact (glibc; elsewhere these do nothing).

glibc gives each thread that allocates while another holds the heap's lock an arena of its own, up to eight
per core, and keeps what is freed in each arena for that arena's next allocations. An agent has a hundred
threads (its pools, started whole: neon.threads) and, at every hot swap, compiles and loads a component of
tens of megabytes through wasmtime, whose allocations are glibc's: spread over many arenas, what one swap
frees is kept where the next swap does not look, and the process's memory creeps up swap after swap.
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None)
except OSError:  # pragma: no cover - a platform without dlopen(NULL)
    _libc = None


def limit_arenas(count: int | None = None) -> bool:
    """At most ``count`` heap arenas (default: one per core, at least two) for allocations from here on;
    whether the C library took it."""
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, count or max(2, os.cpu_count() or 1)))


def give_back() -> bool:
    """Hand the heap's free memory back to the system (after a big release: a component replaced); whether
    any was."""
    trim = getattr(_libc, "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False
