"""What native code is made for: the configuration of the agents' wasmtime engines, and the key that names it.

Code wasmtime compiles runs only in an engine of the same wasmtime version, target, CPU features and
configuration (``Component.deserialize`` refuses any other). An *engine key* names all four::

    wasmtime-50.0.0/x86_64-linux/cranelift+epoch/3f2a9c01d4e7

An agent asks the control plane for an artifact's code under its engine key; the control plane makes it when its
own engine for that key is the same (the same kind of machine), and the agent compiles for itself otherwise.
Both sides build their engine's configuration here, so that what one compiles the other can load.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from neon.errors import InvalidArgument
from neon.native.tiers import TIERS, apply_tier, check_tier

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
# What the configuration sets besides the compiler: a change here must change the key (code made before it would
# not load, or would load with other semantics).
SETTINGS = "epoch"
# The x86 features Cranelift detects on its host and compiles for (as /proc/cpuinfo names them); other flags do
# not change the code, so machines that differ only in them share it.
_X86_FEATURES = frozenset(
    "pni ssse3 sse4_1 sse4_2 popcnt avx avx2 bmi1 bmi2 abm fma cx16 "
    "avx512f avx512vl avx512dq avx512bw avx512vbmi avx512bitalg".split()
)
_KEY = re.compile(r"^wasmtime-([0-9A-Za-z.+-]+)/([a-z0-9_]+-[a-z0-9]+)/([A-Za-z0-9-]+)\+([a-z0-9+]+)/([0-9a-f]{12})$")


def make_config(tier: str) -> wasmtime.Config:
    """A fresh configuration for an engine that compiles with ``tier`` (a config is consumed by its engine)."""
    made = wasmtime.Config()
    made.epoch_interruption = True
    apply_tier(made, tier)
    return made


@dataclass(frozen=True)
class EngineKey:
    """Which engines can run a piece of native code."""

    wasmtime: str
    target: str  # e.g. x86_64-linux
    tier: str  # the compiler (neon.native.tiers)
    features: str  # 12 hex digits naming the CPU features the compiler used
    settings: str = SETTINGS

    def __str__(self) -> str:
        return f"wasmtime-{self.wasmtime}/{self.target}/{self.tier}+{self.settings}/{self.features}"

    @classmethod
    def parse(cls, text: str, field: str = "engine") -> EngineKey:
        match = _KEY.match(text)
        if match is None:
            raise InvalidArgument(
                f"{field} {text!r} is not an engine key (wasmtime-VERSION/ARCH-OS/COMPILER+SETTINGS/FEATURES)",
                field=field,
            )
        version, target, tier, settings, features = match.groups()
        if tier not in TIERS:
            raise InvalidArgument(
                f"{field} {text!r} names the compiler {tier!r}; an engine key's is one of {', '.join(TIERS)}",
                field=field,
            )
        return cls(version, target, tier, features, settings)


def local_key(tier: str) -> EngineKey:
    """The key of an engine made here with :func:`make_config` for ``tier``."""
    return EngineKey(WASMTIME_VERSION, _target(), check_tier(tier), _features())


def _target() -> str:
    return f"{platform.machine().lower()}-{sys.platform}"


@functools.cache
def _features() -> str:
    return hashlib.sha256(" ".join(sorted(cpu_features())).encode()).hexdigest()[:12]


def cpu_features(cpuinfo: str | None = None) -> set[str]:
    """The CPU features that change the code compiled here (``cpuinfo``: /proc/cpuinfo's text, read if None):
    on x86 the ones Cranelift detects, elsewhere every flag the kernel lists."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            return flags & _X86_FEATURES if "sse2" in flags else flags
    return set()
