"""A component's ``runtime`` settings (how the agent runs its instances): the type and its parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neon._validate import mapping, parse_duration, parse_size
from neon.errors import InvalidManifest

MODES = ("pooled", "per-call")


@dataclass(frozen=True)
class RuntimeSpec:
    """How the agent runs a component's instances."""

    mode: str = "pooled"
    instances: int = 1
    max_queue: int = 64
    memory_bytes: int = 256 * 1024 * 1024
    timeout_seconds: float = 30.0


def runtime_to_dict(rt: RuntimeSpec) -> dict[str, Any]:
    return {
        "mode": rt.mode,
        "instances": rt.instances,
        "maxQueue": rt.max_queue,
        "memory": rt.memory_bytes,
        "timeout": f"{rt.timeout_seconds:g}s",
    }


def _int_in(value: Any, low: int, high: int, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidManifest(f"{path} must be an integer from {low} to {high}, got {value!r}", field=path)
    return value


def parse_runtime(doc: Any, path: str) -> RuntimeSpec:
    rt = mapping(doc, path, optional={"mode", "instances", "maxQueue", "memory", "timeout"})
    default = RuntimeSpec()
    mode = rt.get("mode", default.mode)
    if mode not in MODES:
        raise InvalidManifest(f"{path}.mode must be one of {', '.join(MODES)}, got {mode!r}", field=f"{path}.mode")
    memory = parse_size(rt["memory"], f"{path}.memory") if "memory" in rt else default.memory_bytes
    if not 1 << 20 <= memory <= 16 << 30:
        raise InvalidManifest(f"{path}.memory must be between 1Mi and 16Gi", field=f"{path}.memory")
    timeout = parse_duration(rt["timeout"], f"{path}.timeout") if "timeout" in rt else default.timeout_seconds
    if not 0.01 <= timeout <= 3600:
        raise InvalidManifest(f"{path}.timeout must be between 10ms and 1h", field=f"{path}.timeout")
    return RuntimeSpec(
        mode=mode,
        instances=_int_in(rt.get("instances", default.instances), 1, 256, f"{path}.instances"),
        max_queue=_int_in(rt.get("maxQueue", default.max_queue), 0, 100_000, f"{path}.maxQueue"),
        memory_bytes=memory,
        timeout_seconds=timeout,
    )
