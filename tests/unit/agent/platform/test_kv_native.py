"""The native get's library: built once per source and layout into a directory only the agent reads, refused
when it was built for another value layout, and a missing compiler said, not hidden."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from agent.platform import kv_native


def test_it_is_built_once_into_a_private_directory_and_loads(tmp_path: Path) -> None:
    directory = tmp_path / "native"
    first = kv_native.build(directory)
    built_at = first.stat().st_mtime_ns
    assert kv_native.build(directory) == first and first.stat().st_mtime_ns == built_at  # not built again
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    library = kv_native.Library(first)
    assert library.counts() == library.counts()  # readable; nothing answered by this test


def test_a_library_built_for_another_layout_is_refused(tmp_path: Path) -> None:
    wrong = [d.replace("-DVAL_SIZE=", "-DVAL_SIZE=4") for d in kv_native.defines()]  # 32 -> 432
    target = tmp_path / "kv_get-other.so"
    subprocess.run(
        ["cc", "-O2", "-shared", "-fPIC", *wrong, "-o", str(target), str(kv_native.SOURCE), "-lpthread"], check=True
    )
    with pytest.raises(OSError, match="built for another wasmtime") as refused:
        kv_native.Library(target)
    assert "VAL_SIZE=4" in str(refused.value) and "build it again" in str(refused.value)


def test_a_file_that_is_not_the_library_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-x", "c", "-o", str(other), "-"], input=b"int x;", check=True)
    with pytest.raises(OSError, match="not a kv_get library"):
        kv_native.Library(other)


def test_without_a_compiler_the_build_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(OSError):
        kv_native.build(tmp_path / "native")
    assert not any((tmp_path / "native").iterdir())  # no partial file left behind


def test_a_library_built_beforehand_is_taken_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = kv_native.build(tmp_path / "image")
    monkeypatch.setenv(kv_native.LIBRARY_ENV, str(built))
    assert kv_native.build(tmp_path / "elsewhere") == built
    assert not (tmp_path / "elsewhere").exists()
    assert os.access(built, os.R_OK)


def test_a_slot_used_again_gives_its_handles_a_new_rep(tmp_path: Path) -> None:
    """A handle that outlived its bucket's slot names the old generation: the library hands its get to
    Python (kv_get.c compares generations) instead of reading the slot's next bucket."""
    import sqlite3

    for name in ("a", "b"):
        with sqlite3.connect(tmp_path / f"{name}.sqlite") as db:
            db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL)")
    library = kv_native.library(tmp_path / "native")
    assert library is not None
    first = library.open(tmp_path / "a.sqlite")
    assert first is not None and first & kv_native.NATIVE_REP
    library.close(first)
    second = library.open(tmp_path / "b.sqlite")
    assert second is not None
    slot_mask = (1 << kv_native.SLOT_BITS) - 1
    assert second & slot_mask == first & slot_mask and second != first
    library.close(second)
    assert library.open(tmp_path / "missing" / "c.sqlite") is None  # SQLite cannot open it: gets stay in Python
