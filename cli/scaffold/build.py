"""``neon build [DIR]``: build a component project (its ``neon.yaml``) with the real toolchain of its language,
cached by content as the tests' guests are, into ``DIR/build/NAME.wasm``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from cli.devcluster.guests import build_c_guest, build_js_guest, build_python_guest
from cli.scaffold.templates import LANGS, check_name
from neon.errors import InvalidArgument

BUILD_FILE = "neon.yaml"


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    lang: str
    wit: Path
    world: str
    source: Path

    @property
    def output(self) -> Path:
        return self.root / "build" / f"{self.name}.wasm"


def load(root: Path) -> Project:
    """The project in ``root``, its build file checked field by field."""
    root = root.resolve()
    path = root / BUILD_FILE
    if not path.is_file():
        raise InvalidArgument(
            f"{root} has no {BUILD_FILE}: make a project with `neon new NAME --lang ...`", field="dir"
        )
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InvalidArgument(f"{path}: not YAML ({err})", field=BUILD_FILE) from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: expected a mapping of name, lang, wit, world, source", field=BUILD_FILE)
    missing = [k for k in ("name", "lang", "wit", "world", "source") if not isinstance(doc.get(k), str)]
    if missing:
        raise InvalidArgument(f"{path}: {', '.join(missing)} missing (each a string)", field=BUILD_FILE)
    if doc["lang"] not in LANGS:
        raise InvalidArgument(f"{path}: lang {doc['lang']!r} is not one of {', '.join(LANGS)}", field="lang")
    project = Project(root, check_name(doc["name"]), doc["lang"], root / doc["wit"], doc["world"], root / doc["source"])
    for what, where in (("wit", project.wit), ("source", project.source)):
        if not where.exists():
            raise InvalidArgument(f"{path}: {what} {where} does not exist", field=what)
    return project


def build(project: Project) -> Path:
    """Build (or take from the cache) and copy to ``build/NAME.wasm``; returns that path."""
    if project.lang == "python":
        built = build_python_guest(project.wit, project.world, _python_dir(project), module=project.source.stem)
    elif project.lang == "js":
        built = build_js_guest(project.wit, project.world, project.source)
    else:
        built = build_c_guest(project.wit, project.world, (project.source,))
    project.output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, project.output)
    return project.output


def _python_dir(project: Project) -> Path:
    """componentize-py takes a directory of modules: the source's (src/, apart from the build output)."""
    if project.source.is_dir():
        raise InvalidArgument(f"source {project.source} must be a .py file (the module to run)", field="source")
    return project.source.parent
