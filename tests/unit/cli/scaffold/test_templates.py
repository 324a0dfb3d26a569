"""Templates and build files: names that are WIT identifiers, one source per language, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.scaffold import build
from cli.scaffold.templates import LANGS, SOURCES, files
from neon import manifest
from neon.errors import InvalidArgument


@pytest.mark.parametrize("lang", LANGS)
def test_a_template_is_a_whole_project(lang: str, tmp_path: Path) -> None:
    made = files("log-tap", lang)
    assert "world log-tap {" in made["wit/world.wit"] and "package local:log-tap@0.1.0;" in made["wit/world.wit"]
    spec = manifest.load(made["app.yaml"], require_digests=False)
    assert spec.name == "log-tap" and spec.components[0].artifact == "build/log-tap.wasm"
    for relative, text in made.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    project = build.load(tmp_path)
    assert (project.lang, project.world, project.source) == (lang, "log-tap", tmp_path.resolve() / SOURCES[lang])
    assert project.output == tmp_path.resolve() / "build" / "log-tap.wasm"


@pytest.mark.parametrize("name", ["Hello", "hello_world", "1st", "-x", "x-", "a--b", "x" * 41, ""])
def test_names_that_are_not_wit_identifiers_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="lowercase words joined by '-'"):
        files(name, "python")


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="choose one of python, js, c"):
        files("hello", "cobol")


@pytest.mark.parametrize(
    "text, words",
    [
        (None, "has no neon.yaml"),
        ("[1, 2]", "expected a mapping"),
        ("name: x\nlang: python\n", "wit, world, source missing"),
        ("name: x\nlang: rust\nwit: wit\nworld: x\nsource: a.rs\n", "lang 'rust' is not one of"),
        ("name: x\nlang: c\nwit: nowhere\nworld: x\nsource: a.c\n", "wit .*nowhere does not exist"),
    ],
)
def test_a_bad_build_file_is_refused_naming_the_field(tmp_path: Path, text: str | None, words: str) -> None:
    if text is not None:
        (tmp_path / "neon.yaml").write_text(text)
    with pytest.raises(InvalidArgument, match=words):
        build.load(tmp_path)
