"""Tiered compiling: start a component on code made fast, and move it to optimized code made in the background.

``neon agent --compiler tiered``: an artifact is first compiled with Winch (3 to 5 times faster than Cranelift;
bench/compile_tiers.py), so the component serves in seconds; then Cranelift compiles it in the background, and
the shell swaps the component's instances over to that code as it swaps in a new version (calls in flight
finish, none fails). Code Cranelift made before (the compiled cache) is used at once. Each compiler has its
own engine: a component is instantiated only in the engine that compiled it.
"""

from __future__ import annotations

from pathlib import Path

from agent.runtime.allocator import PoolLimits
from agent.runtime.engine import CodeSource, Runtime
from neon.native.tiers import CRANELIFT, TIERED, WINCH, check_compiler


class Tiers:
    """The runtime a component starts on, and the optimizing one it moves to (when tiered)."""

    def __init__(self, cache_dir: Path, pool: PoolLimits | None, compiler: str) -> None:
        tiered = check_compiler(compiler) == TIERED
        self.first = Runtime(cache_dir, pool, WINCH if tiered else compiler)
        self.optimized = Runtime(cache_dir, pool, CRANELIFT) if tiered else None

    def use(self, source: CodeSource) -> None:
        """Ask ``source`` for code before compiling any (each runtime for its own engine key)."""
        for runtime in (self.first, self.optimized):
            if runtime is not None:
                runtime.source = source

    def start_on(self, digest: str) -> Runtime:
        """The runtime to start an artifact on: the optimized one once its code is there."""
        if self.optimized is not None and self.optimized.has_code(digest):
            return self.optimized
        return self.first

    def better_than(self, runtime: Runtime) -> Runtime | None:
        """The runtime to move a component started on ``runtime`` to, if any."""
        return self.optimized if self.optimized is not None and runtime is not self.optimized else None

    def describe(self) -> str:
        if self.optimized is None:
            return self.first.tier
        return f"tiered ({self.first.tier} first, {self.optimized.tier} in the background)"

    def close(self) -> None:
        self.first.close()
        if self.optimized is not None:
            self.optimized.close()
