"""The log analyzer compiled from C (and its parser from Rust): the same rules as the Python guests, through the
agent's runtime, alone and fused with the C processor."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from agent.runtime.engine import ComponentInstance, ComponentTemplate, FunctionRef, Runtime
from controlplane.wit.composer import fuse
from controlplane.wit.interfaces import describe
from neon.runtime_spec import RuntimeSpec
from tests.support.helpers import AWKWARD_LINES, expected_batch, expected_parse

PARSER = "cyber-systems:logs/parser@0.1.0"
PROCESSOR = "cyber-systems:logs/processor@0.1.0"
TYPES = "cyber-systems:logs/types@0.1.0"


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    rt = Runtime(tmp_path / "compiled")
    yield rt
    rt.close()


def _instance(runtime: Runtime, path: Path, settings: RuntimeSpec | None = None) -> ComponentInstance:
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return ComponentTemplate(runtime, runtime.load(digest, path), path.stem, {}, settings).instantiate()


def _call_json(instance: ComponentInstance, ref: FunctionRef, args: list[Any]) -> Any:
    result = instance.template.signature(ref).result
    assert result is not None
    return result.to_json(instance.call(ref, args))


def test_native_guests_have_the_example_worlds(native_guests: dict[str, Path]) -> None:
    worlds = {name: describe(path) for name, path in native_guests.items()}
    assert list(worlds["parser"]["exports"]) == [PARSER]
    assert worlds["parser-rust"] == worlds["parser"]  # the same world, from Rust
    assert list(worlds["processor"]["exports"]) == [PROCESSOR]
    assert worlds["processor"]["imports"] == {TYPES: {}, PARSER: worlds["parser"]["exports"][PARSER]}
    assert list(worlds["monolith"]["exports"][""]) == ["process-batch"]
    # Freestanding C: no language runtime, no WASI, a few kilobytes.
    assert all(not world["wasi"] for world in worlds.values())
    assert all(path.stat().st_size < 16 * 1024 for path in native_guests.values())


@pytest.mark.parametrize("guest", ["parser", "parser-rust"])
def test_c_and_rust_parsers_follow_the_python_rules_line_for_line(
    native_guests: dict[str, Path], runtime: Runtime, guest: str
) -> None:
    parser = _instance(runtime, native_guests[guest])
    parse = FunctionRef(PARSER, "parse")
    got = [_call_json(parser, parse, [line]) for line in AWKWARD_LINES]
    assert got == [expected_parse(line) for line in AWKWARD_LINES]
    assert sum("ok" in g for g in got) == 7 and sum("err" in g for g in got) == len(AWKWARD_LINES) - 7


def _fuse_pair(native_guests: dict[str, Path], out: Path, parser: str = "parser") -> Path:
    fuse(
        ("processor", native_guests["processor"]),
        [("parser", native_guests[parser])],
        [("processor", PARSER, "parser")],
        out,
    )
    return out


@pytest.mark.parametrize("parser", ["parser", "parser-rust"])
def test_fused_c_pair_and_monolith_agree_with_the_python_rules(
    native_guests: dict[str, Path], runtime: Runtime, tmp_path: Path, parser: str
) -> None:
    pair = _instance(runtime, _fuse_pair(native_guests, tmp_path / "fused.wasm", parser))
    want = expected_batch(AWKWARD_LINES)
    assert want["entries"] and want["errors"]
    assert _call_json(pair, FunctionRef(PROCESSOR, "parse-batch"), [AWKWARD_LINES]) == want
    assert pair.call(FunctionRef(PROCESSOR, "process-batch"), [AWKWARD_LINES]) == len(want["entries"])
    monolith = _instance(runtime, native_guests["monolith"])
    assert monolith.call(FunctionRef("", "process-batch"), [AWKWARD_LINES]) == len(want["entries"])
    assert monolith.call(FunctionRef("", "process-batch"), [[]]) == 0


@pytest.mark.parametrize("parser", ["parser", "parser-rust"])
def test_each_call_starts_from_an_empty_arena(
    native_guests: dict[str, Path], runtime: Runtime, tmp_path: Path, parser: str
) -> None:
    # 100 calls with a 64 KiB line move over 12 MB through each guest's arena (the line, and the
    # reason that quotes it); under a 4 MiB cap that only fits if post-return empties the arena.
    fused = _fuse_pair(native_guests, tmp_path / "fused.wasm", parser)
    pair = _instance(runtime, fused, RuntimeSpec(memory_bytes=4 << 20))
    line = "x" * (64 << 10)
    batch = FunctionRef(PROCESSOR, "parse-batch")
    for _ in range(100):
        (reason,) = _call_json(pair, batch, [[line]])["errors"]
        assert reason == f"line 1: {expected_parse(line)['err']}"
    # The same cap refuses one call that needs more than it, so the cap is in force.
    with pytest.raises(Exception, match="(?i)memory|trap|unreachable"):
        pair.call(batch, [[line * 40]])
