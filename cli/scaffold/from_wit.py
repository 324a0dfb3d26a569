"""What ``neon new NAME --lang python|js --wit DIR [--world W]`` writes for a world of the user's own WIT (no
I/O): an implementation of every function the world exports, each answering its result type's zero value
(``""``, ``0``, an empty list, ``none``, ``ok`` of a zero) so that the project builds, applies and answers
``neon invoke`` before a line is written; a function whose result has no zero value (a record, a variant...)
raises, saying so. Each carries its WIT signature as a comment.

The WIT comes resolved, as ``wasm-tools component wit DIR --json`` prints it. Worlds that export resources
are refused (their classes are the component's design, not boilerplate). C takes scalars and strings only
(:mod:`cli.scaffold.c_stubs`: its canonical ABI is written out by hand).
"""

from __future__ import annotations

import json
import keyword
from dataclasses import dataclass
from typing import Any

from cli.scaffold.c_stubs import c_source
from neon.errors import InvalidArgument

INTEGERS = {"u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64"}
# JavaScript's reserved words: a parameter named so gets a trailing _
JS_RESERVED = frozenset(
    "await break case catch class const continue debugger default delete do else enum export extends false finally "
    "for function if implements import in instanceof interface let new null package private protected public return "
    "static super switch this throw true try typeof var void while with yield".split()
)


@dataclass(frozen=True)
class Function:
    name: str  # as WIT spells it
    params: tuple[tuple[str, Any], ...]
    result: Any  # a type reference (a primitive's name, a type id) or None
    interface: str = ""  # the exported interface it is in ("": the world's own)
    export: str = ""  # the core export's name (``ns:pkg/iface@version#func``, or the function's own)


@dataclass(frozen=True)
class Scaffold:
    world: str
    source: str  # the implementation's text
    first: str  # a function to try, as ``neon invoke`` names it (``iface.func`` or ``func``)
    args: tuple[str, ...]  # its arguments, each as JSON (zero values)


def scaffold(resolved: dict[str, Any], world: str | None, lang: str, project: str) -> Scaffold:
    """The implementation of ``world`` (None: the only world of the WIT's own package) in ``lang``."""
    if lang not in ("python", "js", "c"):
        raise InvalidArgument(f"--lang {lang!r}: choose one of python, js, c", field="lang")
    picked = _world(resolved, world)
    functions = _exports(resolved, picked)
    if not functions:
        raise InvalidArgument(f"world {picked['name']} exports no function: nothing to implement", field="world")
    types = _Types(resolved["types"])
    if lang == "c":
        source = c_source(project, picked["name"], functions, types.kind_name)
    else:
        source = (_python if lang == "python" else _javascript)(project, picked["name"], functions, types)
    first = functions[0]
    invoked = f"{first.interface}.{first.name}" if first.interface else first.name
    args = tuple(json.dumps(types.zero_json(t)) for _, t in first.params)
    return Scaffold(picked["name"], source, invoked, args)


def _world(resolved: dict[str, Any], name: str | None) -> dict[str, Any]:
    worlds = resolved.get("worlds", [])
    own = resolved["packages"][-1] if resolved.get("packages") else {"worlds": {}}
    if name is None:
        ids = list(own.get("worlds", {}).values())
        if len(ids) != 1:
            listed = ", ".join(sorted(own.get("worlds", {}))) or "none"
            raise InvalidArgument(
                f"the WIT's package has {len(ids)} worlds ({listed}): pick one with --world", field="world"
            )
        found: dict[str, Any] = worlds[ids[0]]
        return found
    for candidate in worlds:
        if candidate["name"] == name:
            return dict(candidate)
    listed = ", ".join(sorted(w["name"] for w in worlds)) or "none"
    raise InvalidArgument(f"--world {name}: the WIT has no such world (its worlds: {listed})", field="world")


def _exports(resolved: dict[str, Any], world: dict[str, Any]) -> list[Function]:
    out: list[Function] = []
    for key, item in world.get("exports", {}).items():
        if "function" in item:
            out.append(_function(item["function"], ""))
        elif "interface" in item:
            iface = resolved["interfaces"][item["interface"]["id"]]
            name = iface.get("name") or key
            for type_id in iface.get("types", {}).values():
                if resolved["types"][type_id]["kind"] == "resource":
                    what = resolved["types"][type_id]["name"]
                    raise InvalidArgument(
                        f"world {world['name']} exports resource {what} (interface {name}): scaffolding writes "
                        "functions; write a resource's class by hand",
                        field="world",
                    )
            package = resolved["packages"][iface["package"]]["name"] if "package" in iface else ""
            space, _, version = package.partition("@")
            qualified = f"{space}/{name}" + (f"@{version}" if version else "") if space else name
            out += [_function(f, name, qualified) for f in iface.get("functions", {}).values()]
    return out


def _function(doc: dict[str, Any], interface: str, qualified: str = "") -> Function:
    if doc.get("kind") != "freestanding":
        raise InvalidArgument(
            f"{doc['name']}: only plain functions are scaffolded, not resources' methods", field="world"
        )
    params = tuple((p["name"], p["type"]) for p in doc.get("params", []))
    export = f"{qualified}#{doc['name']}" if qualified else doc["name"]
    return Function(doc["name"], params, doc.get("result"), interface, export)


class _Types:
    """The resolved WIT's types: how one is written in WIT, and its zero value in Python, JavaScript and JSON."""

    def __init__(self, types: list[dict[str, Any]]) -> None:
        self.types = types

    def _kind(self, ref: Any) -> tuple[str, Any]:
        while isinstance(ref, int):
            kind = self.types[ref]["kind"]
            if isinstance(kind, dict) and "type" in kind:
                ref = kind["type"]  # an alias: follow it
                continue
            if isinstance(kind, dict):
                ((name, body),) = kind.items()
                return name, body
            return str(kind), None
        return str(ref), None

    def kind_name(self, ref: Any) -> str:
        """What ``ref`` is once aliases are followed: a primitive's name, or list, option, record..."""
        return self._kind(ref)[0]

    def wit(self, ref: Any) -> str:
        if ref is None:
            return ""
        if isinstance(ref, int) and self.types[ref].get("name"):
            return str(self.types[ref]["name"])
        kind, body = self._kind(ref)
        if kind in ("list", "option"):
            return f"{kind}<{self.wit(body)}>"
        if kind == "result":
            inner = [self.wit(body.get("ok")) or "_", self.wit(body.get("err"))]
            return f"result<{', '.join(x for x in inner if x)}>" if inner != ["_", ""] else "result"
        if kind == "tuple":
            return f"tuple<{', '.join(self.wit(t) for t in body['types'])}>"
        return kind

    def zero(self, ref: Any, lang: str) -> str | None:
        """The zero value's source, or None when the type has none here."""
        if ref is None:
            return "None" if lang == "python" else "undefined"
        kind, body = self._kind(ref)
        js = lang == "js"
        if kind == "string":
            return '""'
        if kind == "bool":
            return "false" if js else "False"
        if kind in INTEGERS:
            return "0n" if js and kind in ("u64", "s64") else "0"
        if kind in ("f32", "f64"):
            return "0.0"
        if kind == "char":
            return '" "'
        if kind == "list":
            return "[]"
        if kind == "option":
            return "undefined" if js else "None"
        if kind == "result":
            return self.zero(body.get("ok"), lang)
        if kind == "tuple":
            parts = [self.zero(t, lang) for t in body["types"]]
            if any(p is None for p in parts):
                return None
            return f"[{', '.join(p for p in parts if p)}]" if js else f"({', '.join(p for p in parts if p)},)"
        return None

    def zero_json(self, ref: Any) -> Any:
        """A zero value to invoke with (null where there is none to make up)."""
        kind, body = self._kind(ref)
        zeros = {"string": "", "bool": False, "char": " ", "f32": 0.0, "f64": 0.0, "list": []}
        if kind in INTEGERS:
            return 0
        if kind == "tuple":
            return [self.zero_json(t) for t in body["types"]]
        return zeros.get(kind)


def _snake(name: str) -> str:
    snake = name.replace("-", "_")
    return snake + "_" if keyword.iskeyword(snake) else snake


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _camel(name: str) -> str:
    first, *rest = name.split("-")
    return first + "".join(part.capitalize() for part in rest)


def _js_param(name: str) -> str:
    camel = _camel(name)
    return camel + "_" if camel in JS_RESERVED else camel


def _signature(fn: Function, types: _Types) -> str:
    params = ", ".join(f"{name}: {types.wit(t)}" for name, t in fn.params)
    result = f" -> {types.wit(fn.result)}" if fn.result is not None else ""
    return f"{fn.name}: func({params}){result}"


def _python(project: str, world: str, functions: list[Function], types: _Types) -> str:
    lines = [f'"""The {project} component (componentize-py): implements world {world} of wit/."""', ""]
    lines += ["import wit_world", "from wit_world import exports", "", ""]
    by_interface: dict[str, list[Function]] = {}
    for fn in functions:
        by_interface.setdefault(fn.interface, []).append(fn)
    for interface, fns in by_interface.items():
        base = f"exports.{_pascal(interface)}" if interface else "wit_world.WitWorld"
        lines.append(f"class {_pascal(interface) if interface else 'WitWorld'}({base}):")
        for fn in fns:
            params = "".join(f", {_snake(name)}" for name, _ in fn.params)
            zero = types.zero(fn.result, "python")
            body = (
                f"return {zero}  # write {fn.name} here"
                if zero is not None
                else f'raise NotImplementedError("{fn.name}: write it in src/app.py")'
            )
            lines += [f"    def {_snake(fn.name)}(self{params}):", f'        """{_signature(fn, types)}"""']
            lines += [f"        {body}", ""]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _javascript(project: str, world: str, functions: list[Function], types: _Types) -> str:
    lines = [f"// The {project} component (componentize-js): implements world {world} of wit/.", ""]

    def body(fn: Function, indent: str) -> list[str]:
        zero = types.zero(fn.result, "js")
        if zero is None:
            return [f"{indent}throw new Error('{fn.name}: write it in src/component.js');"]
        return (
            [f"{indent}return {zero}; // write {fn.name} here"]
            if fn.result is not None
            else [f"{indent}// write {fn.name} here"]
        )

    by_interface: dict[str, list[Function]] = {}
    for fn in functions:
        by_interface.setdefault(fn.interface, []).append(fn)
    for interface, fns in by_interface.items():
        if interface:
            lines.append(f"export const {_camel(interface)} = {{")
            for fn in fns:
                params = ", ".join(_js_param(name) for name, _ in fn.params)
                lines += [
                    f"  // {_signature(fn, types)}",
                    f"  {_camel(fn.name)}({params}) {{",
                    *body(fn, "    "),
                    "  },",
                ]
            lines += ["};", ""]
        else:
            for fn in fns:
                params = ", ".join(_js_param(name) for name, _ in fn.params)
                lines += [f"// {_signature(fn, types)}", f"export function {_camel(fn.name)}({params}) {{"]
                lines += [*body(fn, "  "), "}", ""]
    return "\n".join(lines).rstrip() + "\n"
