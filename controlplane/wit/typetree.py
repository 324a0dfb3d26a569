"""A component's WIT as a client reads it (``Control.DescribeComponent``), from wasm-tools' JSON of its world:
per interface, each function's signature as WIT text and as a tree of types (``neon.v1.WitType`` as a dict),
and the named types the functions use as WIT definitions.

Unlike :mod:`controlplane.wit.interfaces`, which renders types by structure so that two components agree on
an interface exactly when the strings match, this keeps the names a developer wrote (``log-entry``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from controlplane.wit.interfaces import interface_name, resolve_of
from neon.toolchain_exports import TOOLCHAIN_EXPORTS


@functools.lru_cache(maxsize=64)
def describe_artifact(digest: str, path: Path) -> dict[str, Any]:
    """:func:`describe_world` of a stored artifact (kept per digest: an artifact never changes)."""
    return describe_world(resolve_of(path))


def describe_world(resolve: dict[str, Any]) -> dict[str, Any]:
    """``exports`` and ``imports`` (non-WASI interfaces, as ``neon.v1.WitInterface`` dicts), and the names of
    the WASI interfaces imported and exported, of the component's world."""
    world = resolve["worlds"][-1]
    out: dict[str, Any] = {"exports": [], "imports": [], "wasi_imports": [], "wasi_exports": []}
    for direction in ("exports", "imports"):
        loose: list[dict[str, Any]] = []  # functions of the world itself
        for key, item in world[direction].items():
            if "function" in item:
                loose.append(item["function"])
                continue
            if "interface" not in item:
                continue  # a type the world exports or imports on its own
            iface_id = item["interface"]["id"]
            name = interface_name(resolve, iface_id) or key
            if name.startswith("wasi:"):
                out[f"wasi_{direction}"].append(name)
                continue
            functions = resolve["interfaces"][iface_id].get("functions", {}).values()
            described = _Interface(resolve, name, direction == "exports").describe(list(functions))
            if described["functions"]:
                out[direction].append(described)
        if loose:
            out[direction].append(_Interface(resolve, "", direction == "exports").describe(loose))
    for key in ("wasi_imports", "wasi_exports"):
        out[key].sort()
    out["exports"].sort(key=lambda i: i["name"])
    out["imports"].sort(key=lambda i: i["name"])
    return out


class _Interface:
    """One interface's functions and the named types they use."""

    def __init__(self, resolve: dict[str, Any], name: str, exported: bool) -> None:
        self.resolve = resolve
        self.name = name
        self.exported = exported
        self.named: dict[int, str] = {}  # type id -> its WIT definition, in the order first met

    def describe(self, functions: list[dict[str, Any]]) -> dict[str, Any]:
        described = []
        for func in sorted(functions, key=lambda f: f["name"]):
            name = func["name"]
            if name.startswith("[") or (self.exported and (self.name, name) in TOOLCHAIN_EXPORTS):
                continue  # resource methods and constructors are not called by name; toolchains' own exports
            described.append(self.function(func))
        return {"name": self.name, "functions": described, "types": list(self.named.values())}

    def function(self, func: dict[str, Any]) -> dict[str, Any]:
        params = [{"name": p["name"], "type": self.tree(p["type"])} for p in func.get("params", [])]
        doc: dict[str, Any] = {"name": func["name"], "params": params}
        text = ", ".join(f"{p['name']}: {p['type']['wit']}" for p in params)
        doc["wit"] = f"{func['name']}: func({text})"
        if func.get("result") is not None:
            doc["result"] = self.tree(func["result"])
            doc["wit"] += f" -> {doc['result']['wit']}"
        if self.exported:
            doc["invoke_as"] = f"{self.name}#{func['name']}" if self.name else func["name"]
        return doc

    def tree(self, ref: Any) -> dict[str, Any]:
        """The ``neon.v1.WitType`` of a type reference (a primitive's name or a type id)."""
        if isinstance(ref, str):
            return {"kind": ref, "wit": ref}
        ty = self.resolve["types"][ref]
        kind, name = ty["kind"], ty.get("name") or ""
        if isinstance(kind, str):  # a resource itself
            self.named.setdefault(ref, f"resource {name}")
            return {"kind": kind, "name": name, "wit": name}
        ((tag, body),) = kind.items()
        if tag == "type":  # `use x.{t}` (the same name) or `type t = ...` (an alias)
            inner = self.tree(body)
            if not name or name == inner.get("name"):
                return inner
            self.named.setdefault(ref, f"type {name} = {inner['wit']}")
            return inner | {"name": name, "wit": name}
        node = self._structure(tag, body)
        if name:
            self.named.setdefault(ref, _definition(tag, name, node))
            node |= {"name": name, "wit": name}
        return node

    def _structure(self, tag: str, body: Any) -> dict[str, Any]:
        if tag == "record":
            fields = [{"name": f["name"], "type": self.tree(f["type"])} for f in body["fields"]]
            return {"kind": "record", "fields": fields, "wit": _braced("record", fields)}
        if tag == "variant":
            cases = [
                {"name": c["name"]} | ({} if c.get("type") is None else {"type": self.tree(c["type"])})
                for c in body["cases"]
            ]
            return {"kind": "variant", "fields": cases, "wit": _braced("variant", cases)}
        if tag in ("enum", "flags"):
            names = [c["name"] for c in body["cases" if tag == "enum" else "flags"]]
            return {"kind": tag, "names": names, "wit": f"{tag} {{ {', '.join(names)} }}"}
        if tag in ("list", "option"):
            element = self.tree(body)
            return {"kind": tag, "element": element, "wit": f"{tag}<{element['wit']}>"}
        if tag == "tuple":
            types = [self.tree(t) for t in body["types"]]
            wit = f"tuple<{', '.join(t['wit'] for t in types)}>"
            return {"kind": "tuple", "fields": [{"name": "", "type": t} for t in types], "wit": wit}
        if tag == "result":
            node: dict[str, Any] = {"kind": "result"}
            for side in ("ok", "err"):
                if body.get(side) is not None:
                    node[side] = self.tree(body[side])
            node["wit"] = _result_wit(node.get("ok", {}).get("wit"), node.get("err", {}).get("wit"))
            return node
        if tag == "handle":
            ((mode, target),) = body.items()
            resource = self.tree(target)
            return {"kind": mode, "names": [resource["name"]], "wit": f"{mode}<{resource['name']}>"}
        if tag in ("future", "stream"):
            if body is None:
                return {"kind": tag, "wit": tag}
            element = self.tree(body)
            return {"kind": tag, "element": element, "wit": f"{tag}<{element['wit']}>"}
        return {"kind": tag, "wit": tag}  # anything newer than this reader


def _result_wit(ok: str | None, err: str | None) -> str:
    """As WIT writes a result: ``result<T, E>``, ``result<T>``, ``result<_, E>`` or ``result``."""
    if ok and err:
        return f"result<{ok}, {err}>"
    if err:
        return f"result<_, {err}>"
    return f"result<{ok}>" if ok else "result"


def _braced(keyword: str, fields: list[dict[str, Any]]) -> str:
    """A record's or variant's structure inline: ``record { level: string, message: string }``."""
    if keyword == "record":
        parts = [f"{f['name']}: {f['type']['wit']}" for f in fields]
    else:
        parts = [f["name"] + (f"({f['type']['wit']})" if "type" in f else "") for f in fields]
    return f"{keyword} {{ {', '.join(parts)} }}"


def _definition(tag: str, name: str, node: dict[str, Any]) -> str:
    """A named type's WIT definition: ``record log-entry { level: string, ... }``, ``type lines = list<string>``."""
    if tag in ("record", "variant", "enum", "flags"):
        return f"{tag} {name} " + str(node["wit"]).split(" ", 1)[1]
    return f"type {name} = {node['wit']}"
