"""Build guest components from source with real toolchains, cached by content.

componentize-py takes seconds per component, so every build is keyed by the
sha256 of its inputs (WIT, sources, world, toolchain version) and kept under
``$NEON_CACHE_DIR`` (default ``~/.cache/neon-grid``); a rebuild happens only
when an input changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from neon.errors import ComponentError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cache_dir() -> Path:
    return Path(os.environ.get("NEON_CACHE_DIR") or Path.home() / ".cache" / "neon-grid")


def _tree_hash(hasher: hashlib._Hash, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")


def _componentize_py() -> str:
    beside = Path(sys.executable).parent / "componentize-py"
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if not found:
        raise ComponentError("componentize-py is not installed; run: pip install -e '.[dev]'")
    return found


def build_python_guest(wit: Path, world: str, source: Path, module: str = "app") -> Path:
    """Build a Python guest with componentize-py; returns the cached .wasm path."""
    version = importlib.metadata.version("componentize-py")
    hasher = hashlib.sha256(f"componentize-py {version}\0{world}\0{module}\0".encode())
    _tree_hash(hasher, wit)
    _tree_hash(hasher, source)
    out = cache_dir() / "guests" / f"{world}-{hasher.hexdigest()[:20]}.wasm"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "out.wasm"
        proc = subprocess.run(
            [
                _componentize_py(),
                "-d",
                str(wit),
                "-w",
                world,
                "componentize",
                "-p",
                str(source),
                module,
                "-o",
                str(target),
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[:12])
            raise ComponentError(f"componentize-py failed for world {world} ({source}):\n{tail}", world=world)
        fd, tmp_out = tempfile.mkstemp(dir=out.parent, prefix=".build-")
        os.close(fd)
        shutil.copyfile(target, tmp_out)
        os.replace(tmp_out, out)
    return out


def build_log_analyzer() -> dict[str, Path]:
    """Build the log analyzer's components into ``examples/log-analyzer/build``."""
    base = EXAMPLES / "log-analyzer"
    build = base / "build"
    build.mkdir(exist_ok=True)
    built = {}
    for name, world in (("parser", "log-parser"), ("processor", "log-processor")):
        cached = build_python_guest(base / "wit", world, base / name)
        target = build / f"{name}.wasm"
        if (
            not target.exists()
            or target.stat().st_size != cached.stat().st_size
            or target.read_bytes() != cached.read_bytes()
        ):
            shutil.copyfile(cached, target)
        built[name] = target
    return built
