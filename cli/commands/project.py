"""``neon new NAME --lang python|js|c`` and ``neon build [DIR]``: a component project from a template, and its
build with the language's real toolchain."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cli.scaffold import build as builder
from cli.scaffold.templates import files
from neon.errors import InvalidArgument


def new(args: argparse.Namespace) -> int:
    root: Path = args.dir or Path(args.name)
    if root.exists() and any(root.iterdir()):
        raise InvalidArgument(f"{root} exists and is not empty; choose another NAME or --dir", field="dir")
    made = files(args.name, args.lang)
    for relative, text in made.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"created {root}/ ({args.lang}): {', '.join(sorted(made))}")
    print(f"next: neon build {root} && neon apply -f {root}/app.yaml --sign-with KEY --wait")
    print(f"      neon invoke {args.name} {args.name} greet '\"world\"'")
    return 0


def build(args: argparse.Namespace) -> int:
    project = builder.load(args.dir)
    started = time.monotonic()
    out = builder.build(project)
    print(
        f"built {out} ({project.lang}, world {project.world}, {out.stat().st_size} bytes, "
        f"{time.monotonic() - started:.1f}s)"
    )
    return 0
