"""Compile one artifact into native code, in a process of its own (the control plane runs it for agents):

    python -m neon.native.compile COMPILER ARTIFACT OUT

Writes the serialized component to OUT (atomically); exits 1 with wasmtime's reason on stderr when the artifact
does not compile. A process of its own keeps the compiler's memory (gigabytes for a large fused group) and any
crash of it out of the control plane.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from neon.errors import NeonGridError
from neon.native.engine_key import make_config


def compile_file(tier: str, artifact: Path, out: Path) -> None:
    """Compile ``artifact`` with ``tier`` into ``out`` (raises wasmtime.WasmtimeError when it does not compile)."""
    engine = wasmtime.Engine(make_config(tier))
    code = wc.Component(engine, artifact.read_bytes()).serialize()
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".compile-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(code)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m neon.native.compile COMPILER ARTIFACT OUT", file=sys.stderr)
        return 2
    try:
        compile_file(argv[0], Path(argv[1]), Path(argv[2]))
    except (wasmtime.WasmtimeError, OSError, NeonGridError) as err:
        print(str(err).splitlines()[0] if str(err) else type(err).__name__, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
