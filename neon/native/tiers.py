"""Which compiler makes the agent's native code: wasmtime's optimizing Cranelift (the default), Cranelift
with optimizations off, or Winch, wasmtime's baseline compiler.

wasmtime-py's ``Config.strategy`` takes only "auto" and "cranelift"; the C setter also takes Winch (2), and
the library wasmtime-py ships has it. Compiled code depends on the compiler, so each tier keeps its own
compiled cache. Figures for each guest kind (compile time, a call's time, the same answers): bench/compile_tiers.py.
"""

from __future__ import annotations

import wasmtime
from wasmtime import _ffi as ffi

from neon.errors import InvalidArgument

CRANELIFT, CRANELIFT_O0, WINCH = "cranelift", "cranelift-O0", "winch"
TIERS = (CRANELIFT, CRANELIFT_O0, WINCH)
TIERED = "tiered"  # Winch first, Cranelift in the background (agent/runtime/tiering.py)
COMPILERS = (*TIERS, TIERED)
_STRATEGY = {CRANELIFT: 1, CRANELIFT_O0: 1, WINCH: 2}  # wasmtime_strategy_t: auto 0, cranelift 1, winch 2


def check_compiler(compiler: str, allowed: tuple[str, ...] = COMPILERS) -> str:
    if compiler not in allowed:
        raise InvalidArgument(f"--compiler must be one of {', '.join(allowed)}, got {compiler!r}", field="compiler")
    return compiler


def check_tier(tier: str) -> str:
    """One compiler (not ``tiered``, which is two)."""
    return check_compiler(tier, TIERS)


def apply_tier(config: wasmtime.Config, tier: str) -> None:
    """Make ``config`` compile with ``tier``."""
    ffi.wasmtime_config_strategy_set(config.ptr(), _STRATEGY[check_tier(tier)])
    if tier == CRANELIFT_O0:
        config.cranelift_opt_level = "none"


def cache_name(version: str, tier: str) -> str:
    """The compiled cache's folder for wasmtime ``version`` and ``tier`` (the default keeps its old name)."""
    return f"wasmtime-{version}" if tier == CRANELIFT else f"wasmtime-{version}-{tier}"
