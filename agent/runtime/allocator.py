"""How the agent's wasmtime engine makes instances: wasmtime's pooling allocator, with copy-on-write memory images.

On demand (wasmtime-py's default), every instance maps its memories, tables and stacks with ``mmap`` and
unmaps them when dropped; with threads on two cores, each unmap stops the other core to flush its TLB. The
pooling allocator reserves slots for ``instances`` component instances once, when the engine is made, and
reuses them: an instance's memory is reset in place (``madvise``), and its initial contents are mapped
copy-on-write from the compiled image instead of copied. Measured here (bench/runtime.py and issue 23's
notes): making, calling and dropping the C parser from two threads went from 2,605 to 4,986 a second.

wasmtime-py does not offer the pooling allocator; the library it ships exports its C setters
(``wasmtime_pooling_allocation_*``), reached through ``wasmtime._ffi`` as the rest of the runtime does.

The pool is reserved address space, not memory: each memory slot is wasmtime's 4 GiB reservation plus its
guard, about 8 TiB for the default 1,000 instances, committed only as guests touch it; so the pool holds at
most :data:`MAX_INSTANCES` (a pool larger than the address space crashed wasmtime 51 on its first instance).
When the pool is full, instantiating fails with a message naming ``neon agent --max-instances``. If the
engine cannot be made with the pool (address space limited by ``ulimit -v``), the agent falls back to
on-demand allocation and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import wasmtime
from wasmtime import _ffi as ffi

from neon.errors import InvalidArgument
from neon.observe import log

_log = log.get("neon.agent.runtime")

# What the largest guests here need per component instance (counted by instantiating each kind in a pool
# too small for it): componentize-py 14 core instances, 1 memory, 2 tables; componentize-js 4, 1, 2; C 1, 1, 1.
# A fused group of four componentize-py components needs four times that, so these are averages with room.
CORE_PER_INSTANCE = 16
MEMORIES_PER_INSTANCE = 2
TABLES_PER_INSTANCE = 4
TABLE_ELEMENTS = 100_000  # componentize-py's indirect-call tables hold tens of thousands of functions
# The metadata of one instance (its imports, exports, resource tables): wasmtime's default, 1 MiB, refuses the log
# analyzer's fused group of four componentize-py components at compile time; 2 MiB takes it. Reserved, not used.
COMPONENT_INSTANCE_SIZE = 16 << 20
CORE_INSTANCE_SIZE = 4 << 20
# Bytes at the start of a memory reset with memset when its slot is reused, instead of handed back to the kernel
# (which costs page faults when the next instance touches them). Measured (bench/runtime.py, per-call call of
# the C parser / instantiating the componentize-py one): 0: 84 / 231 us; 256 KiB: 57 / 252 us; 1 MiB: 58 / 327 us.
KEEP_RESIDENT = 256 << 10


MAX_INSTANCES = 10_000  # 20,000 memory slots of 4 GiB: about 80 TiB of the 128 TiB a process can address


@dataclass(frozen=True)
class PoolLimits:
    """How many component instances this node may have alive at once (pooled and per-request)."""

    instances: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.instances <= MAX_INSTANCES:
            raise InvalidArgument(
                f"--max-instances {self.instances} is out of range: the pool holds 1 to {MAX_INSTANCES} component "
                "instances (0 allocates on demand, without a pool)",
                field="max_instances",
            )

    def describe(self) -> str:
        return f"pooling allocator, {self.instances} component instances"


DEFAULT_POOL = PoolLimits()


def pooled_engine(make_config: Callable[[], wasmtime.Config], limits: PoolLimits | None) -> tuple[wasmtime.Engine, str]:
    """An engine for ``make_config()`` using the pooling allocator within ``limits`` (None: on demand); and which
    allocator it got. (A config is consumed by the engine made from it, even when that fails.)"""
    config = make_config()
    if limits is not None:
        pool = ffi.wasmtime_pooling_allocation_config_new()
        try:
            _set_limits(pool, limits)
            ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
        finally:
            ffi.wasmtime_pooling_allocation_config_delete(pool)
        ffi.wasmtime_config_memory_init_cow_set(config.ptr(), True)
    try:
        return wasmtime.Engine(config), limits.describe() if limits is not None else "on demand"
    except wasmtime.WasmtimeError as err:
        if limits is None:
            raise
        _log.warning("the pooling allocator is not available here; instances are allocated on demand", error=str(err))
        return pooled_engine(make_config, None)


def full_pool_hint(message: str, limits: PoolLimits | None) -> str:
    """``message`` with what to do when it says the pool is full or too small for the component."""
    if limits is not None and "pooling allocator" in message:
        return f"{message} (run the agent with --max-instances 0 to allocate such components on demand)"
    if limits is None or "limit" not in message or "reached" not in message:
        return message
    return (
        f"{message} (this node's instance pool holds {limits.instances} component instances; "
        "raise neon agent --max-instances, or lower runtime.instances)"
    )


def _set_limits(pool: object, limits: PoolLimits) -> None:
    n = limits.instances
    ffi.wasmtime_pooling_allocation_config_total_component_instances_set(pool, n)
    ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pool, n * CORE_PER_INSTANCE)
    ffi.wasmtime_pooling_allocation_config_total_memories_set(pool, n * MEMORIES_PER_INSTANCE)
    ffi.wasmtime_pooling_allocation_config_total_tables_set(pool, n * TABLES_PER_INSTANCE)
    ffi.wasmtime_pooling_allocation_config_table_elements_set(pool, TABLE_ELEMENTS)
    ffi.wasmtime_pooling_allocation_config_max_component_instance_size_set(pool, COMPONENT_INSTANCE_SIZE)
    ffi.wasmtime_pooling_allocation_config_max_core_instance_size_set(pool, CORE_INSTANCE_SIZE)
    ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pool, KEEP_RESIDENT)
