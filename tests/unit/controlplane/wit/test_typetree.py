"""A component's WIT as DescribeComponent gives it: read by wasm-tools from WIT text covering every kind of
type, and from the example's real componentize-py guests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controlplane.wit.interfaces import resolve_of
from controlplane.wit.typetree import describe_artifact, describe_world
from neon._proto import control_pb2

SHAPES = """\
package demo:shapes@1.2.0;

interface types {
  record point { x: s64, y: u64 }
}

interface shapes {
  use types.{point};
  enum color { red, green }
  flags perms { read, write }
  variant shape { circle(f64), dot, poly(list<point>) }
  type names = list<string>;
  resource canvas;
  draw: func(s: shape, at: option<point>, tag: tuple<char, bool>) -> result<_, string>;
  paint: func(c: borrow<canvas>, colors: names, p: perms) -> result<color>;
  nothing: func();
}

world app {
  import types;
  import log: func(line: string);
  export shapes;
  export version: func() -> u32;
}
"""
SHAPES_IFACE = "demo:shapes/shapes@1.2.0"


def _world(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "shapes.wit").write_text(SHAPES)
    return describe_world(resolve_of(tmp_path / "shapes.wit"))


def test_every_kind_of_type_as_wit_text_and_as_a_tree(tmp_path: Path) -> None:
    world = _world(tmp_path)
    exports = {i["name"]: i for i in world["exports"]}
    assert sorted(exports) == ["", SHAPES_IFACE], "the world's own export is listed under the empty name"
    shapes = {f["name"]: f for f in exports[SHAPES_IFACE]["functions"]}
    assert {name: f["wit"] for name, f in shapes.items()} == {
        "draw": "draw: func(s: shape, at: option<point>, tag: tuple<char, bool>) -> result<_, string>",
        "paint": "paint: func(c: borrow<canvas>, colors: names, p: perms) -> result<color>",
        "nothing": "nothing: func()",
    }
    assert shapes["draw"]["invoke_as"] == f"{SHAPES_IFACE}#draw"
    assert "result" not in shapes["nothing"]
    assert sorted(exports[SHAPES_IFACE]["types"]) == [
        "enum color { red, green }",
        "flags perms { read, write }",
        "record point { x: s64, y: u64 }",
        "resource canvas",
        "type names = list<string>",
        "variant shape { circle(f64), dot, poly(list<point>) }",
    ]
    shape, at, tag = (p["type"] for p in shapes["draw"]["params"])
    point = {
        "kind": "record",
        "name": "point",
        "wit": "point",
        "fields": [
            {"name": "x", "type": {"kind": "s64", "wit": "s64"}},
            {"name": "y", "type": {"kind": "u64", "wit": "u64"}},
        ],
    }
    assert shape == {
        "kind": "variant",
        "name": "shape",
        "wit": "shape",
        "fields": [
            {"name": "circle", "type": {"kind": "f64", "wit": "f64"}},
            {"name": "dot"},
            {"name": "poly", "type": {"kind": "list", "element": point, "wit": "list<point>"}},
        ],
    }
    assert at == {"kind": "option", "element": point, "wit": "option<point>"}
    assert [f["type"]["kind"] for f in tag["fields"]] == ["char", "bool"]
    assert shapes["draw"]["result"] == {
        "kind": "result",
        "err": {"kind": "string", "wit": "string"},
        "wit": "result<_, string>",
    }
    canvas, names, perms = (p["type"] for p in shapes["paint"]["params"])
    assert canvas == {"kind": "borrow", "names": ["canvas"], "wit": "borrow<canvas>"}
    assert names["name"] == "names" and names["element"] == {"kind": "string", "wit": "string"}
    assert perms["names"] == ["read", "write"] and perms["kind"] == "flags"
    assert shapes["paint"]["result"]["ok"]["names"] == ["red", "green"]
    assert [f["invoke_as"] for f in exports[""]["functions"]] == ["version"]
    (imported,) = world["imports"]  # `types` has no functions; `log` is the world's own import
    assert imported["name"] == "" and [f["wit"] for f in imported["functions"]] == ["log: func(line: string)"]
    assert "invoke_as" not in imported["functions"][0], "an import is not invocable"


def test_the_description_is_the_message_clients_read(tmp_path: Path) -> None:
    message = control_pb2.ComponentDescription(app="a", component="c", **_world(tmp_path))
    parsed = control_pb2.ComponentDescription.FromString(message.SerializeToString())
    draw = next(f for i in parsed.exports for f in i.functions if f.name == "draw")
    assert draw.params[0].type.fields[2].type.element.fields[1].type.kind == "u64"
    assert not draw.result.HasField("ok") and draw.result.err.kind == "string"


def test_the_examples_guests_without_their_toolchains_exports(log_analyzer: dict[str, Path]) -> None:
    parser = describe_artifact("parser", log_analyzer["parser"])
    (exported,) = parser["exports"]  # componentize-py's `exports#init` is left out
    assert exported["name"] == "cyber-systems:logs/parser@0.1.0"
    (parse,) = exported["functions"]
    assert parse["wit"] == "parse: func(raw: string) -> result<log-entry, string>"
    assert parse["result"]["ok"]["fields"][1]["type"] == {
        "kind": "enum",
        "name": "level",
        "wit": "level",
        "names": ["debug", "info", "warn", "error"],
    }
    assert "wasi:filesystem/preopens@0.2.9" in parser["wasi_imports"]
    archiver = describe_artifact("archiver", log_analyzer["archiver"])
    counts = next(f for i in archiver["exports"] for f in i["functions"] if f["name"] == "counts")
    assert counts["wit"] == "counts: func() -> level-counts"
    assert {f["type"]["kind"] for f in counts["result"]["fields"]} == {"u64"}
    processor = describe_artifact("processor", log_analyzer["processor"])
    assert [i["name"] for i in processor["imports"]] == ["cyber-systems:logs/parser@0.1.0"]
