"""wasmtime's pooling allocator at the agent: slots reused, a full pool named with its fix, limits checked."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from wasmtime import component as wc

from agent.runtime.allocator import MAX_INSTANCES, PoolLimits
from agent.runtime.engine import ComponentTemplate, Runtime
from neon.errors import ComponentError, InvalidArgument

# A component with one core instance and one memory: one slot of each kind per instance.
SMALL = "(component (core module $m (memory 1)) (core instance (instantiate $m)))"


def test_a_full_pool_refuses_with_the_flag_to_raise_and_a_dropped_instance_frees_its_slot(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, PoolLimits(2))
    try:
        assert runtime.allocator == "pooling allocator, 2 component instances"
        template = ComponentTemplate(runtime, wc.Component(runtime.engine, SMALL), "test/small", {})
        first, second = template.instantiate(), template.instantiate()
        with pytest.raises(ComponentError) as refused:
            template.instantiate()
        assert "--max-instances" in refused.value.message and "holds 2 component instances" in refused.value.message
        del first
        gc.collect()
        third = template.instantiate()  # the first one's slot, reset
        assert third is not second
    finally:
        runtime.close()


def test_without_a_pool_instances_are_made_on_demand_without_a_limit(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, None)
    try:
        assert runtime.allocator == "on demand"
        template = ComponentTemplate(runtime, wc.Component(runtime.engine, SMALL), "test/small", {})
        kept = [template.instantiate() for _ in range(5)]
        assert len(kept) == 5
    finally:
        runtime.close()


@pytest.mark.parametrize("instances", [-1, 0, MAX_INSTANCES + 1])
def test_a_pool_size_out_of_range_is_refused_naming_the_flag(instances: int) -> None:
    with pytest.raises(InvalidArgument, match="--max-instances"):
        PoolLimits(instances)


def test_code_compiled_without_the_pool_loads_into_a_pooled_engine(tmp_path: Path) -> None:
    """The compiled cache is shared by agents whatever their allocator: the allocator is not in the code."""
    plain = Runtime(tmp_path / "shared", None)
    source = tmp_path / "small.wat"
    source.write_text(SMALL)
    plain.load("sha256:small", source)
    assert plain.compiled == 1
    pooled = Runtime(tmp_path / "shared", PoolLimits(4))
    component = pooled.load("sha256:small", source)
    assert pooled.compiled == 0  # deserialized from the other runtime's cache entry
    ComponentTemplate(pooled, component, "test/small", {}).instantiate()
    plain.close()
    pooled.close()
