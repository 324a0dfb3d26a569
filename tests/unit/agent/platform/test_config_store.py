"""wasi:config/store against real guests (Python and JavaScript): what the config gives is read, a key it does
not give is none and counted, and a guest that imports the interface starts without any config."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.platform.config_store import ConfigMisses, config_imports
from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime
from agent.runtime.pool import InstancePool


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = Runtime(tmp_path_factory.mktemp("compiled"))
    yield rt
    rt.close()


def _pool(runtime: Runtime, wasm: Path, values: dict[str, str], misses: ConfigMisses) -> InstancePool:
    component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
    imports = config_imports(runtime.import_names(component), values, misses)
    assert list(imports) == ["wasi:config/store@0.2.0-draft-2024-09-27"], imports
    pool = InstancePool(ComponentTemplate(runtime, component, "test/settings", imports))
    pool.warm()
    return pool


@pytest.mark.parametrize("lang", ["python", "js"])
def test_the_guest_reads_what_its_config_gives(runtime: Runtime, settings_guests: dict[str, Path], lang: str) -> None:
    misses = ConfigMisses()
    pool = _pool(runtime, settings_guests[lang], {"retention": "500", "api-token": "s3cr3t"}, misses)
    try:
        assert pool.call(FunctionRef("", "get"), ["retention"]) == "500"
        assert pool.call(FunctionRef("", "get"), ["api-token"]) == "s3cr3t"
        assert sorted(pool.call(FunctionRef("", "get-all"), [])) == [("api-token", "s3cr3t"), ("retention", "500")]
        assert misses.count == 0
        assert pool.call(FunctionRef("", "get"), ["colour"]) is None  # not given: none, and counted
        assert pool.call(FunctionRef("", "get"), ["colour"]) is None
        assert (misses.count, misses.keys) == (2, ["colour"])
        assert misses.note() == "asked 2 time(s) for config it was not given: colour"
    finally:
        pool.close()


def test_without_config_the_guest_starts_and_gets_none(runtime: Runtime, settings_guests: dict[str, Path]) -> None:
    notified: list[int] = []
    misses = ConfigMisses(lambda: notified.append(misses.count))
    pool = _pool(runtime, settings_guests["python"], {}, misses)
    try:
        assert pool.call(FunctionRef("", "get-all"), []) == []
        assert pool.call(FunctionRef("", "get"), ["anything"]) is None
        assert notified == [1], "a miss asks for a status report"
    finally:
        pool.close()


def test_components_that_do_not_import_it_get_nothing() -> None:
    assert config_imports(["wasi:cli/environment@0.2.0", "acme:x/y@1.0.0"], {"k": "v"}, ConfigMisses()) == {}
    both = config_imports(
        ["wasi:config/store@0.2.0-draft", "wasi:config/store@0.2.0-draft-2024-09-27"], {}, ConfigMisses()
    )
    assert sorted(both) == ["wasi:config/store@0.2.0-draft", "wasi:config/store@0.2.0-draft-2024-09-27"]
