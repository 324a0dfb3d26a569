"""The node's compiled cache: code read back only under this node's seal; code from a source (the control plane)
taken, kept sealed, or refused and reported, the runtime then compiling for itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.runtime.code_cache import CodeCache, code_key
from agent.runtime.engine import Runtime
from neon.errors import InvalidArgument, Untrusted

SMALL = "(component (core module $m (memory 1)) (core instance (instantiate $m)))"
ENGINE = "wasmtime-50.0.0/x86_64-linux/cranelift+epoch/0123456789ab"


def test_sealed_code_reads_back_and_code_changed_on_disk_is_refused_and_removed(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path / "cache", ENGINE, code_key(tmp_path / "cache.key"))
    cache.write("sha256:aa", b"native code")
    assert cache.has("sha256:aa") and cache.read("sha256:aa") == b"native code"
    cache.path("sha256:aa").write_bytes(b"native code, changed")  # someone who can write the directory
    assert cache.read("sha256:aa") is None
    assert cache.refused == 1 and not cache.has("sha256:aa") and not cache.path("sha256:aa").exists()
    assert cache.read("sha256:aa") is None and cache.refused == 1  # gone: nothing more to refuse


def test_code_sealed_with_another_key_or_for_another_artifact_or_engine_is_refused(tmp_path: Path) -> None:
    theirs = CodeCache(tmp_path / "cache", ENGINE, code_key(tmp_path / "their.key"))
    theirs.write("sha256:aa", b"their code")
    mine = CodeCache(tmp_path / "cache", ENGINE, code_key(tmp_path / "my.key"))
    assert mine.read("sha256:aa") is None and mine.refused == 1

    mine.write("sha256:bb", b"code of bb")
    (tmp_path / "cache" / "sha256-cc.cwasm").write_bytes(b"code of bb")  # an entry copied under another name
    (tmp_path / "cache" / "sha256-cc.cwasm.seal").write_bytes(mine._seal_path("sha256:bb").read_bytes())
    assert mine.read("sha256:cc") is None and mine.refused == 2
    other_engine = CodeCache(tmp_path / "cache", ENGINE.replace("cranelift", "winch"), code_key(tmp_path / "my.key"))
    assert other_engine.read("sha256:bb") is None and other_engine.refused == 1


def test_an_entry_without_its_seal_is_refused(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path / "cache", ENGINE, code_key(tmp_path / "cache.key"))
    cache.path("sha256:aa").write_bytes(b"planted code")
    assert not cache.has("sha256:aa")
    assert cache.read("sha256:aa") is None and cache.refused == 1 and not cache.path("sha256:aa").exists()


def test_the_code_key_is_made_private_once_and_one_open_to_others_is_refused_naming_chmod(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    first = code_key(key_file)
    assert len(first) == 32 and code_key(key_file) == first
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    os.chmod(key_file, 0o644)
    with pytest.raises(InvalidArgument, match="chmod 600"):
        code_key(key_file)
    os.chmod(key_file, 0o600)
    key_file.write_bytes(b"short")
    with pytest.raises(InvalidArgument, match="holds 5 bytes"):
        code_key(key_file)


class _Source:
    """A control plane handing out code (``code``), refusing (``error``), or having none (None)."""

    def __init__(self, code: bytes | None = None, error: Exception | None = None) -> None:
        self.code, self.error = code, error
        self.asked: list[tuple[str, str]] = []
        self.refusals: list[tuple[str, str, str]] = []

    def fetch(self, artifact: str, engine: str) -> bytes | None:
        self.asked.append((artifact, engine))
        if self.error is not None:
            raise self.error
        return self.code

    def refused(self, artifact: str, engine: str, reason: str) -> None:
        self.refusals.append((artifact, engine, reason))


def test_the_runtime_loads_code_from_its_source_keeps_it_sealed_and_compiles_only_without_it(tmp_path: Path) -> None:
    wat = tmp_path / "small.wat"
    wat.write_text(SMALL)
    maker = Runtime(tmp_path / "elsewhere", None)  # the control plane's compile, as far as this node knows
    maker.load("sha256:small", wat)
    made = maker.code.read("sha256:small")
    assert made is not None
    maker.close()

    runtime = Runtime(tmp_path / "node", None)
    runtime.source = source = _Source(made)
    assert runtime.load("sha256:small", wat) is not None
    assert (runtime.fetched, runtime.compiled, source.asked) == (1, 0, [("sha256:small", runtime.engine_key)])
    runtime.close()
    restarted = Runtime(tmp_path / "node", None)  # its sealed copy: neither asked nor compiled again
    restarted.source = again = _Source(made)
    restarted.load("sha256:small", wat)
    assert (restarted.fetched, restarted.compiled, again.asked) == (0, 0, [])
    restarted.close()


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        (_Source(b"\0asm not code wasmtime made"), "wasmtime would not load it"),
        (_Source(error=Untrusted("native code ... is refused: the signature does not match")), None),
        (_Source(None), None),  # the control plane makes no code for this engine
    ],
)
def test_code_the_source_cannot_give_or_wasmtime_refuses_is_compiled_here(
    tmp_path: Path, source: _Source, refusal: str | None
) -> None:
    wat = tmp_path / "small.wat"
    wat.write_text(SMALL)
    runtime = Runtime(tmp_path / "node", None)
    runtime.source = source
    assert runtime.load("sha256:small", wat) is not None
    assert (runtime.fetched, runtime.compiled) == (0, 1)
    if refusal is None:
        assert source.refusals == []
    else:
        ((artifact, engine, reason),) = source.refusals
        assert (artifact, engine) == ("sha256:small", runtime.engine_key) and reason.startswith(refusal)
    runtime.close()
